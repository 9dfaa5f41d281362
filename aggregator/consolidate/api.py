"""Periods, invoices, FX rates and the test clock (admin keys)."""
from __future__ import annotations

from flask import Response, current_app
from flask.views import MethodView

from ..errors import NotFound
from ..fields import ListArgs, page_schema
from ..testmode import advance_test_clock
from ..web import Blueprint, clock_now, current, requires
from . import service
from .schemas import (AdvanceResultSchema, AdvanceSchema, CloseReportSchema, FxRateInputSchema,
                      FxRateSchema, InvoiceListArgs, InvoiceSchema, PeriodListArgs, PeriodSchema,
                      TestClockSchema, VoidSchema)

blp = Blueprint("consolidate", __name__, url_prefix="/v1", description="Periods and invoices")


def _adapters():
    return current_app.extensions["aggregator.renderer"], current_app.extensions["aggregator.storage"]


@blp.route("/periods", methods=["GET"])
@requires("admin")
@blp.arguments(PeriodListArgs(), location="query")
@blp.response(200, page_schema(PeriodSchema, "PeriodPage"))
def list_periods(args):
    principal = current()
    return service.list_periods(principal, clock_now(principal), **args)


@blp.route("/periods/<start>", methods=["GET"])
@requires("admin")
@blp.response(200, PeriodSchema)
def get_period(start):
    principal = current()
    return service.get_period(principal, service.parse_period_name(start), clock_now(principal))


@blp.route("/periods/<start>/close", methods=["POST"])
@requires("admin")
@blp.response(200, CloseReportSchema)
def close_period(start):
    principal = current()
    return service.close_and_render(principal.tenant_id, principal.livemode,
                                    service.parse_period_name(start), clock_now(principal), *_adapters())


@blp.route("/invoices", methods=["GET"])
@requires("admin")
@blp.arguments(InvoiceListArgs(), location="query")
@blp.response(200, page_schema(InvoiceSchema, "InvoicePage"))
def list_invoices(args):
    return service.list_invoices(current(), **args)


@blp.route("/invoices/<invoice_id>", methods=["GET"])
@requires("admin")
@blp.response(200, InvoiceSchema)
def get_invoice(invoice_id):
    return service.get_invoice(current(), invoice_id)


@blp.route("/invoices/<invoice_id>/finalize", methods=["POST"])
@requires("admin")
@blp.response(200, InvoiceSchema)
def finalize_invoice(invoice_id):
    principal = current()
    invoice = service.finalize_invoice(principal, invoice_id, clock_now(principal))
    service.render_pdfs(principal.tenant_id, principal.livemode, *_adapters(), only=[invoice.id])
    return service.get_invoice(principal, invoice_id)


@blp.route("/invoices/<invoice_id>/void", methods=["POST"])
@requires("admin")
@blp.arguments(VoidSchema())
@blp.response(200, InvoiceSchema)
def void_invoice(body, invoice_id):
    principal = current()
    return service.void_invoice(principal, invoice_id, body.get("reason"), clock_now(principal))


@blp.route("/invoices/<invoice_id>/pdf", methods=["GET"])
@requires("admin")
@blp.doc(responses={"200": {"description": "The invoice PDF",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def invoice_pdf(invoice_id):
    principal = current()
    invoice = service.get_invoice(principal, invoice_id)
    pdf = service.invoice_pdf(principal, invoice_id, _adapters()[1])
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{invoice.number or invoice.id}.pdf"',
        "ETag": invoice.pdf_sha256})


@blp.route("/fx_rates")
class FxRatesView(MethodView):
    @requires("admin")
    @blp.arguments(FxRateInputSchema())
    @blp.response(200, FxRateSchema)
    def put(self, body):
        principal = current()
        return service.set_fx_rate(principal, body["base"], body["quote"], body["rate"],
                                   body["effective_date"], clock_now(principal))

    @requires("admin")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, page_schema(FxRateSchema, "FxRatePage"))
    def get(self, args):
        return service.list_fx_rates(current(), **args)


def _test_mode_only():
    principal = current()
    if principal.livemode:
        raise NotFound("Test clocks exist in test mode only.")
    return principal


@blp.route("/test_clock", methods=["GET"])
@requires("admin")
@blp.response(200, TestClockSchema)
def get_test_clock():
    return {"now": clock_now(_test_mode_only())}


@blp.route("/test_clock/advance", methods=["POST"])
@requires("admin")
@blp.arguments(AdvanceSchema())
@blp.response(200, AdvanceResultSchema)
def advance_clock(body):
    principal = _test_mode_only()
    base = current_app.extensions["aggregator.clocks"].base
    return advance_test_clock(principal.tenant_id, body["to"], base.now(), *_adapters())
