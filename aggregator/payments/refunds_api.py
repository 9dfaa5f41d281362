"""Refunds (admin keys): refund (part of) a paid invoice, read refunds."""
from __future__ import annotations

from flask.views import MethodView

from .. import adapters as edge
from ..fields import ListArgs, page_schema
from ..web import Blueprint, clock_now, current, requires
from . import refund_service
from .schemas import RefundInputSchema, RefundListArgs, RefundSchema

blp = Blueprint("refunds", __name__, url_prefix="/v1", description="Refunds")

RefundPage = page_schema(RefundSchema, "RefundPage")


@blp.route("/invoices/<invoice_id>/refunds")
class InvoiceRefundsView(MethodView):
    @requires("admin")
    @blp.arguments(RefundInputSchema())
    @blp.response(201, RefundSchema)
    def post(self, body, invoice_id):
        """Refund a payment of the invoice, in full or in part, through the gateway that took it
        (Stripe) or recorded as manual. 409 `nothing_to_refund`, `refund_exceeds_payment` (pending
        refunds count), `payment_not_refundable`, `gateway_not_configured`; 422 on `amount`."""
        principal = current()
        return refund_service.refund_invoice(principal, invoice_id, body, clock_now(principal), edge.current())

    @requires("admin")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, RefundPage)
    def get(self, args, invoice_id):
        """The invoice's refunds, newest first."""
        return refund_service.list_invoice_refunds(current(), invoice_id, **args)


@blp.route("/refunds", methods=["GET"])
@requires("admin")
@blp.arguments(RefundListArgs(), location="query")
@blp.response(200, RefundPage)
def list_refunds(args):
    """This tenant's refunds in this mode, newest first."""
    return refund_service.list_refunds(current(), **args)


@blp.route("/refunds/<refund_id>", methods=["GET"])
@requires("admin")
@blp.response(200, RefundSchema)
def get_refund(refund_id):
    return refund_service.get_refund(current(), refund_id)
