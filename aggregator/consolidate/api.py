"""Periods, invoices, FX rates and the test clock (admin keys)."""
from __future__ import annotations

from flask import Response, current_app, stream_with_context
from flask.views import MethodView

from .. import adapters as edge
from .. import testmode
from ..errors import NotFound
from ..fields import ListArgs, page_schema
from ..periods import service as periods
from ..web import Blueprint, clock_now, current, requires
from . import (
    close_service,
    einvoice_service,
    fx_service,
    invoice_service,
    line_export,
    pdf_service,
    test_clock_service,
    upcoming_service,
)
from .schemas import (
    AdvanceResultSchema,
    AdvanceSchema,
    CloseReportSchema,
    EInvoiceArgs,
    FxRateInputSchema,
    FxRateSchema,
    InvoiceListArgs,
    InvoiceSchema,
    PeriodListArgs,
    PeriodSchema,
    TestClockSchema,
    UpcomingInvoiceSchema,
    VoidSchema,
    upcoming_document,
)

blp = Blueprint("consolidate", __name__, url_prefix="/v1", description="Periods and invoices")


@blp.route("/periods", methods=["GET"])
@requires("admin")
@blp.arguments(PeriodListArgs(), location="query")
@blp.response(200, page_schema(PeriodSchema, "PeriodPage"))
def list_periods(args):
    principal = current()
    return periods.list_periods(principal, clock_now(principal), **args)


@blp.route("/periods/<start>", methods=["GET"])
@requires("admin")
@blp.response(200, PeriodSchema)
def get_period(start):
    principal = current()
    return periods.get_period(principal, periods.parse_period_name(start), clock_now(principal))


@blp.route("/periods/<start>/close", methods=["POST"])
@requires("admin")
@blp.response(200, CloseReportSchema)
def close_period(start):
    principal = current()
    report = close_service.close_period(principal.tenant_id, principal.livemode, periods.parse_period_name(start),
                                        clock_now(principal))
    report.pdfs = pdf_service.render_pending(edge.current(), tenant_id=principal.tenant_id,
                                             livemode=principal.livemode)
    return report


@blp.route("/invoices", methods=["GET"])
@requires("admin")
@blp.arguments(InvoiceListArgs(), location="query")
@blp.response(200, page_schema(InvoiceSchema, "InvoicePage"))
def list_invoices(args):
    return invoice_service.list_invoices(current(), **args)


@blp.route("/invoices/<invoice_id>", methods=["GET"])
@requires("admin")
@blp.response(200, InvoiceSchema)
def get_invoice(invoice_id):
    return invoice_service.get_invoice(current(), invoice_id)


@blp.route("/invoices/<invoice_id>/finalize", methods=["POST"])
@requires("admin")
@blp.response(200, InvoiceSchema)
def finalize_invoice(invoice_id):
    principal = current()
    invoice = invoice_service.finalize_invoice(principal, invoice_id, clock_now(principal))
    pdf_service.render_pending(edge.current(), only=[invoice.id])
    return invoice_service.get_invoice(principal, invoice_id)


@blp.route("/invoices/<invoice_id>/void", methods=["POST"])
@requires("admin")
@blp.arguments(VoidSchema())
@blp.response(200, InvoiceSchema)
def void_invoice(body, invoice_id):
    principal = current()
    return invoice_service.void_invoice(principal, invoice_id, body.get("reason"), clock_now(principal))


@blp.route("/invoices/<invoice_id>/pdf", methods=["GET"])
@requires("admin")
@blp.doc(responses={"200": {"description": "The invoice PDF",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def invoice_pdf(invoice_id):
    principal = current()
    invoice = invoice_service.get_invoice(principal, invoice_id)
    pdf = pdf_service.invoice_pdf(principal, invoice_id, edge.current().storage)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{invoice.number or invoice.id}.pdf"',
        "ETag": invoice.pdf_sha256})


@blp.route("/invoices/<invoice_id>/einvoice", methods=["GET"])
@requires("admin")
@blp.arguments(EInvoiceArgs(), location="query")
@blp.doc(responses={"200": {"description": "The invoice as an EN 16931 e-invoice: UN/CEFACT CII XML "
                                           "(Factur-X / ZUGFeRD, EN 16931 profile), as embedded in its PDF, "
                                           "or UBL 2.1",
                            "content": {"application/xml": {"schema": {"type": "string"}}}}})
def invoice_einvoice(args, invoice_id):
    """The invoice's e-invoice (finalized invoices only: a draft is `409 invoice_not_finalized`)."""
    invoice = invoice_service.find_invoice(current(), invoice_id)
    filename, xml = einvoice_service.invoice_einvoice(invoice, args["format"])
    return Response(xml, mimetype="application/xml", headers={"Content-Disposition": f'inline; filename="{filename}"'})


@blp.route("/invoices/<invoice_id>/lines.csv", methods=["GET"])
@requires("admin")
@blp.doc(responses={"200": {"description": "Every line of the invoice, one CSV row each (streamed): the file a "
                                           "very large invoice's PDF carries attached",
                            "content": {"text/csv": {"schema": {"type": "string"}}}}})
def invoice_lines_csv(invoice_id):
    """Every line of the invoice as CSV (line, kind, provider, provider_name, bill, description,
    service_start, service_end, amount, currency, original_amount, original_currency, fx_rate)."""
    name, chunks = line_export.invoice_lines_csv(current(), invoice_id)
    return Response(stream_with_context(chunks), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@blp.route("/fx_rates")
class FxRatesView(MethodView):
    @requires("admin")
    @blp.arguments(FxRateInputSchema())
    @blp.response(200, FxRateSchema)
    def put(self, body):
        principal = current()
        return fx_service.set_fx_rate(principal, body["base"], body["quote"], body["rate"],
                                   body["effective_date"], clock_now(principal))

    @requires("admin")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, page_schema(FxRateSchema, "FxRatePage"))
    def get(self, args):
        return fx_service.list_fx_rates(current(), **args)


def _test_mode_only():
    principal = current()
    if principal.livemode:
        raise NotFound("Test clocks exist in test mode only.")
    return principal


@blp.route("/test_clock", methods=["GET"])
@requires("admin")
@blp.response(200, TestClockSchema)
def get_test_clock():
    principal = _test_mode_only()
    return testmode.get_test_clock(principal.tenant_id, edge.current().clocks.base.now())


@blp.route("/test_clock/advance", methods=["POST"])
@requires("admin")
@blp.arguments(AdvanceSchema())
@blp.response(200, AdvanceResultSchema)
@blp.alt_response(202, schema=AdvanceResultSchema, description="With `wait: false`: the workers do the due work")
def advance_clock(body):
    """Move the test clock forward and run what became due, in order, each as of its instant.
    With `"wait": false`, answer 202 at once (status `advancing`) and leave it to the workers."""
    principal = _test_mode_only()
    result = test_clock_service.advance_test_clock(principal.tenant_id, body["to"], edge.current(), wait=body["wait"])
    return result, 200 if body["wait"] else 202


@blp.route("/customers/<customer>/upcoming_invoice", methods=["GET"])
@requires("admin", "provider")
@blp.response(200, UpcomingInvoiceSchema)
def upcoming_invoice(customer):
    """The invoice the customer would receive at the open period's close if nothing changed from now
    on: pending bills and subscription fees rated to now. Nothing is stored. A provider's key sees
    its own lines only."""
    principal = current()
    upcoming = upcoming_service.upcoming_invoice(principal, customer, clock_now(principal))
    return current_app.json.response(upcoming_document(upcoming))  # what UpcomingInvoiceSchema dumps
