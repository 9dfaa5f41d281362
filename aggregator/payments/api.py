"""Payments (admin keys): reading attempts and recorded payments, charging an invoice now,
recording money received outside Stripe."""
from __future__ import annotations

from flask.views import MethodView

from .. import adapters as edge
from ..fields import ListArgs, page_schema
from ..web import Blueprint, clock_now, current, requires
from . import service
from .schemas import ManualPaymentSchema, PaymentListArgs, PaymentResultSchema, PaymentSchema

blp = Blueprint("payments", __name__, url_prefix="/v1", description="Payments")
PaymentPage = page_schema(PaymentSchema, "PaymentPage")


@blp.route("/payments", methods=["GET"])
@requires("admin")
@blp.arguments(PaymentListArgs(), location="query")
@blp.response(200, PaymentPage)
def list_payments(args):
    """Gateway attempts and recorded payments, newest first."""
    return service.list_payments(current(), **args)


@blp.route("/payments/<payment_id>", methods=["GET"])
@requires("admin")
@blp.response(200, PaymentSchema)
def get_payment(payment_id):
    return service.get_payment(current(), payment_id)


@blp.route("/invoices/<invoice_id>/payments")
class InvoicePaymentsView(MethodView):
    @requires("admin")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, PaymentPage)
    def get(self, args, invoice_id):
        """One invoice's gateway attempts and recorded payments, newest first."""
        return service.list_invoice_payments(current(), invoice_id, **args)

    @requires("admin")
    @blp.arguments(ManualPaymentSchema())
    @blp.response(201, PaymentResultSchema)
    def post(self, body, invoice_id):
        """Record money received outside Stripe (a bank transfer, cash, a check) for an open
        invoice: a partial payment leaves the rest due, an overpayment becomes the customer's credit."""
        principal = current()
        return service.record_payment(principal, invoice_id, now=clock_now(principal), **body)


@blp.route("/invoices/<invoice_id>/pay", methods=["POST"])
@requires("admin")
@blp.response(200, PaymentResultSchema)
def pay_invoice(invoice_id):
    """Charge an open invoice now through Stripe (with nothing left to pay, it becomes paid)."""
    principal = current()
    return service.pay_invoice(principal, invoice_id, clock_now(principal), edge.current())
