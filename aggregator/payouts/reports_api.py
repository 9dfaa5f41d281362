"""Finance's payout report of an invoicing period (admin keys): JSON, CSV or PDF."""
from __future__ import annotations

from flask import Response
from marshmallow import Schema, fields, validate

from .. import adapters as edge
from .. import money
from ..fields import CalendarDate
from ..openapi import DATE_1970_2200
from ..web import Blueprint, current, requires
from . import report_service

blp = Blueprint("payout_reports", __name__, url_prefix="/v1", description="Payout reports")


def _amount(attribute: str, description: str | None = None):
    return fields.Function(lambda obj: money.format_amount(getattr(obj, attribute), obj.currency),
                           metadata={"type": "string", "example": "19.99",
                                     **({"description": description} if description else {})})


def _plan(attribute: str, description: str):
    return fields.Function(lambda row: money.format_amount(getattr(row.plan, attribute), row.currency),
                           metadata={"type": "string", "example": "19.99", "description": description})


def _figures(*names: str) -> dict:
    return {name: _amount(name) for name in names}


_ROW_AMOUNTS = ("gross", "revenue_share_gross", "pass_through_gross", "fee", "credits", "clawback",
                "brought_forward", "net", "amount")
#: beside them, the two that make the arithmetic whole (docs/invoices.md, Books and payout documents)
_ARITHMETIC = {
    "charges": _amount("charges", "The provider's bills other than its credits: charges + credits = gross; "
                                  "gross - fee + clawback = net."),
    "carry": _amount("carry", "A negative balance carried to the next payout (<= 0): "
                              "net + brought_forward = amount + carry."),
}

ProviderRowSchema = Schema.from_dict({
    "provider": fields.String(attribute="provider_id"), "provider_name": fields.String(),
    "currency": fields.String(), "bills": fields.Integer(metadata={"description": "Its payouts' lines."}),
    **_figures(*_ROW_AMOUNTS), **_ARITHMETIC,
    "status": fields.String(metadata={"description": "Its payouts' status; mixed when they differ."}),
    "payouts": fields.List(fields.String(), attribute="payout_ids"),
    "plan_gross": _plan("gross", "Of gross: what customers paid for the provider's plans (plan-rated bills)."),
    "plan_fee": _plan("fee", "Of fee: the platform's share of those (its parent plans' fees)."),
    "plan_profit": _plan("net", "Of net: the provider's profit on its plans (negative: priced below its parent)."),
}, name="PayoutReportRow")

CurrencyTotalSchema = Schema.from_dict({
    "currency": fields.String(), "providers": fields.Integer(), "bills": fields.Integer(), **_figures(*_ROW_AMOUNTS),
    **_ARITHMETIC,
}, name="PayoutReportTotal")

OutstandingInvoiceSchema = Schema.from_dict({
    "invoice": fields.String(attribute="invoice_id"), "number": fields.String(allow_none=True),
    "customer": fields.String(), "currency": fields.String(), "amount": _amount("amount", "Still due."),
}, name="PayoutReportOutstandingInvoice")

ReconciliationSchema = Schema.from_dict({
    "currency": fields.String(),
    "sources": fields.Integer(metadata={"description": "Payments, refunds and settled invoices paid out."}),
    **_figures("collected", "tax", "provider_payouts", "platform_revenue", "credits_applied", "credits_carried",
               "fx_difference", "converted_out", "converted_in", "payouts_net", "uncollected", "uncollectible"),
    "balanced": fields.Boolean(metadata={"description":
                                         "collected + converted_in == tax + provider_payouts + platform_revenue + "
                                         "credits_applied + credits_carried + fx_difference + converted_out, and "
                                         "provider_payouts == payouts_net."}),
    "uncollected_invoices": fields.List(fields.Nested(OutstandingInvoiceSchema)),
    "uncollectible_invoices": fields.List(fields.Nested(OutstandingInvoiceSchema)),
}, name="PayoutReconciliation")


class PayoutReportSchema(Schema):
    object = fields.Constant("payout_report")
    tenant = fields.String(attribute="tenant_id")
    tenant_name = fields.String()
    livemode = fields.Boolean()
    period = fields.Date(attribute="period_start")
    period_end = fields.Date()
    rows = fields.List(fields.Nested(ProviderRowSchema))
    totals = fields.List(fields.Nested(CurrencyTotalSchema))
    reconciliation = fields.List(fields.Nested(ReconciliationSchema))


class PayoutReportArgs(Schema):
    period = CalendarDate(required=True, metadata={"description": "The invoicing period (its start date).",
                                                   "pattern": DATE_1970_2200})
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv", "pdf"]))


@blp.route("/reports/payouts", methods=["GET"])
@requires("admin")
@blp.arguments(PayoutReportArgs(), location="query")
@blp.response(200, PayoutReportSchema)
@blp.doc(responses={200: {"content": {  # beside the JSON one: what `format` asks for
    "text/csv": {"schema": {"type": "string"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def payout_report(args):
    """The payouts of an invoicing period per provider, their totals, and the reconciliation of
    the money they pay out with what was collected (see docs/api.md, Payout reports).
    `format=csv`: text/csv, one line per provider and currency and a total per currency;
    `format=pdf`: application/pdf, with a chart of the net payout per provider."""
    report = report_service.payout_report(current(), args["period"])
    name = f"payouts-{report.period_start.isoformat()}"
    if args["format"] == "csv":
        return Response(report_service.report_csv(report), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if args["format"] == "pdf":
        return Response(report_service.report_pdf(report, edge.current().renderer), mimetype="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    return report
