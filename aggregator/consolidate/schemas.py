from __future__ import annotations

from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate

from .. import money
from ..accounts.tax_ids import TREATMENTS, recorded_treatment
from ..fields import AddressSchema, Currency, ListArgs, StrictBoolean, reasonable_instant, text
from .credit_notes import REASONS as CREDIT_NOTE_REASONS
from .models import COLLECTION, SETTLEMENTS


def _amount(attribute: str, currency_of=lambda obj: obj.currency):
    return fields.Function(lambda obj: money.format_amount(getattr(obj, attribute), currency_of(obj)),
                           metadata={"type": "string", "example": "19.99"})


MAX_FX_RATE = Decimal(1_000_000)

#: money.parse_rate's strings for ExchangeRate, for the OpenAPI document: above 0, at most
#: MAX_FX_RATE, at most 12 decimals.
EXCHANGE_RATE_PATTERN = (
    r"^(0\.(" + "|".join(f"0{{{zeros}}}[1-9][0-9]{{0,{11 - zeros}}}" for zeros in range(12)) + ")"
    r"|[1-9][0-9]{0,5}(\.[0-9]{1,12})?|1000000(\.0{1,12})?)$")


class ExchangeRate(fields.String):
    """A positive decimal string, up to 12 decimal places."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": EXCHANGE_RATE_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            rate = money.parse_rate(value, maximum=MAX_FX_RATE, places=12)
        except money.MoneyError as exc:
            raise ValidationError(str(exc)) from exc
        if rate == 0:
            raise ValidationError("A rate must be positive.")
        return rate


class PeriodRefSchema(Schema):
    start = fields.Date(attribute="period_start")
    end = fields.Date(attribute="period_end")


class InvoiceLineSchema(Schema):
    kind = fields.String(metadata={"enum": ["bill", "credit"]})
    bill = fields.String(attribute="bill_id", allow_none=True)
    provider = fields.String(attribute="provider_id", allow_none=True)
    description = fields.String()
    service_period = fields.Function(
        lambda line: {"start": line.service_start.isoformat(), "end": line.service_end.isoformat()}
        if line.service_start else None)
    amount = _amount("amount")
    original_amount = fields.Function(
        lambda line: money.format_amount(line.original_amount, line.original_currency)
        if line.original_currency else None)
    original_currency = fields.String(allow_none=True)
    fx_rate = fields.Function(lambda line: money.format_rate(line.fx_rate) if line.fx_rate is not None else None,
                              metadata={"type": ["string", "null"]})


class TaxIdOutSchema(Schema):
    type = fields.String(metadata={"example": "au_abn"})
    value = fields.String(metadata={"description": "Its compact form.", "example": "83914571673"})


class SellerSchema(Schema):
    legal_name = fields.String()
    address = fields.Nested(AddressSchema, allow_none=True)
    country = fields.String(allow_none=True)
    tax_ids = fields.List(fields.Nested(TaxIdOutSchema))
    tax_name = fields.String(metadata={"description": "What the tax is called: VAT, GST."})
    title = fields.String(metadata={"description": "The document's title: Invoice, Tax invoice."})
    charges_cards = fields.Boolean(metadata={
        "description": "Whether the tenant charged cards (had Stripe) in this mode."})
    payment_instructions = fields.Dict(allow_none=True, metadata={
        "description": "The tenant's bank details as the invoice printed them (see the tenant's setting)."})


class BuyerSchema(Schema):
    name = fields.String(metadata={"description": "The customer's name, else its external id."})
    address = fields.Nested(AddressSchema, allow_none=True)
    country = fields.String(allow_none=True)
    tax_ids = fields.List(fields.Nested(TaxIdOutSchema))
    card = fields.Boolean(metadata={"description": "Whether the customer had a card the charge run charges "
                                                   "(a Stripe customer and payment method)."})


class PartiesSchema(Schema):
    seller = fields.Nested(SellerSchema)
    buyer = fields.Nested(BuyerSchema)


class InvoiceSchema(Schema):
    id = fields.String()
    object = fields.Constant("invoice")
    number = fields.String(allow_none=True)
    customer = fields.String(attribute="customer_id")
    customer_external_id = fields.Function(lambda i: i.customer.external_id)
    period = fields.Function(lambda i: {"start": i.period_start.isoformat(), "end": i.period_end.isoformat()})
    status = fields.String(metadata={"enum": ["draft", "open", "paid", "uncollectible", "void"]})
    currency = fields.String()
    subtotal = _amount("subtotal")
    tax_rate = fields.String()
    tax = _amount("tax")
    tax_treatment = fields.Function(lambda i: recorded_treatment(i.tax_treatment, Decimal(i.tax_rate)), metadata={
        "type": "string", "enum": list(TREATMENTS),
        "description": "standard: tax charged at tax_rate; reverse_charge: none charged (tax_rate 0), the buyer, an "
                       "EU business in another member state, accounts for it; exempt: the customer is exempt or the "
                       "rate is 0."})
    parties = fields.Nested(PartiesSchema, allow_none=True, metadata={
        "description": "Seller and buyer as they were when the invoice was finalized (its documents never change "
                       "with later settings); null on a draft and on invoices finalized before parties were kept, "
                       "whose documents show the current settings."})
    total = _amount("total")
    amount_due = _amount("amount_due")
    carried_credit = _amount("carried_credit")
    due_date = fields.Date()
    amount_paid = _amount("amount_paid")
    amount_remaining = _amount("amount_remaining")
    amount_refunded = _amount("amount_refunded")
    paid_at = fields.DateTime(allow_none=True)
    collection = fields.String(allow_none=True, metadata={
        "enum": [*COLLECTION, None], "description": "How collection stands while the invoice is open: "
        + "; ".join(f"{k}: {v}" for k, v in COLLECTION.items())})
    next_charge_at = fields.DateTime(allow_none=True, metadata={
        "description": "When the next automatic charge is due (tenant's clock); null: none is scheduled."})
    attempt_count = fields.Integer(metadata={"description": "Charges attempted through the gateway."})
    disputed = fields.Boolean(metadata={"description": "A charge of it is disputed (finance is told)."})
    overdue = fields.Function(lambda i: i.overdue, metadata={
        "type": "boolean", "description": "Open and past the end of its due date (tenant's time zone)."})
    overdue_at = fields.DateTime(allow_none=True, metadata={
        "description": "When it became overdue (tenant's clock); kept once it is paid. null: never overdue."})
    lines = fields.List(fields.Nested(InvoiceLineSchema))
    pdf_url = fields.Function(lambda i: f"/v1/invoices/{i.id}/pdf" if i.pdf_path else None)
    pdf_sha256 = fields.String(allow_none=True)
    created_at = fields.DateTime()
    finalized_at = fields.DateTime(allow_none=True)
    voided_at = fields.DateTime(allow_none=True)
    void_reason = fields.String(allow_none=True)
    livemode = fields.Boolean()


class PeriodSchema(Schema):
    object = fields.Constant("period")
    start = fields.Date(metadata={"description": "The period's name."})
    end = fields.Date(metadata={"description": "Its last day."})
    start_at = fields.DateTime()
    end_at = fields.DateTime(metadata={"description": "The instant it ends (exclusive)."})
    status = fields.String(metadata={"enum": ["open", "closing", "closed"]})
    ended = fields.Boolean(metadata={"description": "Ended on the tenant's clock; if still open, its close is due."})
    livemode = fields.Boolean()
    closing_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    waiting = fields.String(allow_none=True, metadata={
        "enum": ["missing_fx_rates", "errors", None],
        "description": "Why a close that ran left the period closing; it runs again when an FX rate is set, "
                       "or when an operator closes the period again."})


class PeriodListArgs(ListArgs):
    starting_after = fields.Date(metadata={
        "description": "A period's start date: the page continues with older periods."})
    status = fields.String(validate=validate.OneOf(["open", "closing", "closed"]))


class InvoiceListArgs(ListArgs):
    period = fields.Date(metadata={"description": "A period's start date, e.g. 2026-10-25."})
    customer = fields.String(metadata={"description": "Customer id or external_id."})
    status = fields.String(validate=validate.OneOf(["draft", "open", "paid", "uncollectible", "void"]))
    overdue = fields.Boolean(truthy={"true"}, falsy={"false"}, metadata={
        "description": "true: only open invoices past the end of their due date; false: every other invoice."})


class EInvoiceArgs(Schema):
    format = fields.String(load_default="cii", validate=validate.OneOf(["cii", "ubl"]), metadata={
        "description": "cii: UN/CEFACT Cross Industry Invoice, the Factur-X / ZUGFeRD EN 16931 profile (what "
                       "the PDF embeds); ubl: OASIS UBL 2.1 Invoice (CreditNote for a credit note), EN 16931."})


class VoidSchema(Schema):
    reason = text(500, load_default=None, allow_none=True)


class FxRateInputSchema(Schema):
    base = Currency(required=True)
    quote = Currency(required=True)
    rate = ExchangeRate(required=True, metadata={"description": "Units of quote per one base, e.g. \"0.6521\"."})
    effective_date = fields.Date(required=True)


class FxRateSchema(Schema):
    id = fields.String()
    object = fields.Constant("fx_rate")
    base = fields.String()
    quote = fields.String()
    rate = fields.String()
    effective_date = fields.Date()
    created_at = fields.DateTime()


class CloseReportSchema(Schema):
    period = fields.String()
    status = fields.String(metadata={"enum": ["closing", "closed"]})
    invoices_created = fields.Integer()
    customers_waiting = fields.Integer(metadata={
        "description": "Customers not invoiced yet (missing FX rates, or totals beyond storage: see errors)."})
    errors = fields.List(fields.String())
    missing_fx_rates = fields.Function(lambda r: [{"base": b, "quote": q} for b, q in sorted(r.missing_fx_rates)])
    pdfs = fields.Nested(lambda: RenderReportSchema(), allow_none=True)


class RenderReportSchema(Schema):
    rendered = fields.Integer()
    failed = fields.Integer()


class DueWorkSchema(Schema):
    closes = fields.List(fields.Nested(CloseReportSchema))
    finalized = fields.Integer()
    pdfs = fields.Nested(RenderReportSchema)


class PendingWorkSchema(Schema):
    kind = fields.String(metadata={"example": "invoice.charge"})
    due_at = fields.DateTime(metadata={"description": "The instant (clock time) it became due."})
    reason = fields.String(metadata={
        "enum": ["waiting", "charge_outcome_unknown", "gateway_misconfigured", "failed"],
        "description": "waiting: not run yet (the workers take it, or it waits behind a failed unit); "
                       "charge_outcome_unknown: Stripe did not answer, the charge is looked up and retried; "
                       "gateway_misconfigured: Stripe refused the tenant's settings; failed: it raised."})
    retry_at = fields.DateTime(allow_none=True, metadata={
        "description": "When a worker tries it again (real time); the next advance tries it at once."})


class TestClockSchema(Schema):
    __test__ = False
    object = fields.Constant("test_clock")
    now = fields.DateTime()
    status = fields.String(metadata={"enum": ["ready", "advancing"], "description":
                                     "advancing: the workers are running what became due; ready: the advance "
                                     "is over (what could not be done now is in `pending`, retried)."})
    pending = fields.List(fields.Nested(PendingWorkSchema), metadata={
        "description": "Due work not done by the clock's time, one entry per kind, and why."})


class AdvanceSchema(Schema):
    to = fields.AwareDateTime(required=True, validate=reasonable_instant)
    wait = StrictBoolean(load_default=True, metadata={
        "description": "true (default): run what became due in this request and answer 200 with what ran; "
                       "false: answer 202 at once, the workers run it (GET /v1/test_clock shows when it is ready)."})


class AdvanceResultSchema(Schema):
    previous = fields.DateTime()
    now = fields.DateTime()
    status = fields.String(metadata={"enum": ["ready", "advancing"]})
    ran = fields.Nested(DueWorkSchema, allow_none=True)
    pending = fields.List(fields.Nested(PendingWorkSchema), metadata={
        "description": "Due work not done by the clock's new time (e.g. a charge Stripe did not answer), "
                       "one entry per kind, and why; retried after a backoff and by the next advance."})


class UpcomingLineSchema(InvoiceLineSchema):
    bill = fields.Function(lambda line: None if (line.bill_id or "").startswith("upcoming_") else line.bill_id,
                           metadata={"type": ["string", "null"],
                                     "description": "The pending bill; null for a fee rated from a subscription."})
    source = fields.Function(lambda line: "subscription" if (line.bill_id or "").startswith("upcoming_") else
                             ("credit" if line.kind == "credit" else "bill"),
                             metadata={"type": "string", "enum": ["bill", "subscription", "credit"]})


class UpcomingInvoiceSchema(Schema):
    object = fields.Constant("upcoming_invoice")
    customer = fields.String()
    period = fields.Function(lambda u: {"start": u.period.start.isoformat(), "end": u.period.end.isoformat()})
    currency = fields.String()
    subtotal = _amount("subtotal")
    tax_rate = fields.Function(lambda u: money.format_rate(u.draft.tax_rate))
    tax = _amount("tax")
    tax_treatment = fields.String(metadata={"enum": list(TREATMENTS),
                                            "description": "As the invoice's: reverse_charge is taxed at 0."})
    total = _amount("total")
    lines = fields.List(fields.Nested(UpcomingLineSchema))


def upcoming_document(upcoming) -> dict:
    """What UpcomingInvoiceSchema dumps for `upcoming` (the unit tests hold the two equal), built
    directly: a customer with many subscriptions and bills has thousands of lines, which
    marshmallow took longer to dump than the service took to rate."""
    currency = upcoming.currency
    lines = []
    for line in upcoming.lines:
        bill_id = line.bill_id or ""
        rated = bill_id.startswith("upcoming_")
        lines.append({
            "kind": line.kind, "bill": None if rated else line.bill_id, "provider": line.provider_id,
            "description": line.description,
            "service_period": {"start": line.service_start.isoformat(), "end": line.service_end.isoformat()}
            if line.service_start else None,
            "amount": money.format_amount(line.amount, currency),
            "original_amount": money.format_amount(line.original_amount, line.original_currency)
            if line.original_currency else None,
            "original_currency": line.original_currency,
            "fx_rate": money.format_rate(line.fx_rate) if line.fx_rate is not None else None,
            "source": "subscription" if rated else ("credit" if line.kind == "credit" else "bill"),
        })
    return {"object": "upcoming_invoice", "customer": upcoming.customer,
            "period": {"start": upcoming.period.start.isoformat(), "end": upcoming.period.end.isoformat()},
            "currency": currency, "subtotal": money.format_amount(upcoming.subtotal, currency),
            "tax_rate": money.format_rate(upcoming.draft.tax_rate), "tax": money.format_amount(upcoming.tax, currency),
            "tax_treatment": upcoming.tax_treatment,
            "total": money.format_amount(upcoming.total, currency), "lines": lines}


# --- credit notes -------------------------------------------------------------------------------

class CreditNoteSchema(Schema):
    id = fields.String()
    object = fields.Constant("credit_note")
    number = fields.String(metadata={"description": "{prefix}-CN-{YYYY}-{000123}: gapless per tenant, mode and year."})
    invoice = fields.String(attribute="invoice_id")
    invoice_number = fields.Function(lambda n: n.invoice.number, metadata={"type": "string"})
    customer = fields.String(attribute="customer_id")
    customer_external_id = fields.Function(lambda n: n.customer.external_id, metadata={"type": "string"})
    currency = fields.String()
    reason = fields.String(metadata={"enum": list(CREDIT_NOTE_REASONS)})
    memo = fields.String(allow_none=True)
    settlement = fields.String(metadata={"enum": list(SETTLEMENTS), "description": (
        "refund: given back through the refund of a payment; customer_balance: kept as the customer's credit, "
        "taken off its next invoice; reduce_due: taken off what the open invoice still asks.")})
    refund = fields.String(attribute="refund_id", allow_none=True)
    lines = fields.Function(lambda n: [{
        "invoice_line": line.bill_id, "provider": line.provider_id, "description": line.description,
        "amount": money.format_amount(line.amount, n.currency)} for line in n.lines],
        metadata={"type": "array", "items": {"type": "object", "properties": {
            "invoice_line": {"type": ["string", "null"]}, "provider": {"type": ["string", "null"]},
            "description": {"type": "string"}, "amount": {"type": "string"}}}})
    subtotal = _amount("subtotal")
    tax = _amount("tax")
    total = _amount("total")
    pdf_url = fields.Function(lambda n: f"/v1/credit_notes/{n.id}/pdf", metadata={"type": "string"})
    created_at = fields.DateTime()
    livemode = fields.Boolean()


class CreditNoteLineInputSchema(Schema):
    invoice_line = fields.String(required=True, validate=validate.Length(min=1, max=40), metadata={
        "description": "The line to credit: the id of the bill it shows (the invoice line's `bill`)."})
    amount = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=32), metadata={
        "description": "How much of the line, before tax (e.g. \"5.00\"); omitted: all that is left of it."})


class CreditNoteInputSchema(Schema):
    lines = fields.List(fields.Nested(CreditNoteLineInputSchema), validate=validate.Length(min=1, max=1000),
                        load_default=None)
    amount = fields.String(load_default=None, validate=validate.Length(max=32), metadata={
        "description": "Instead of lines: an amount of the invoice as a whole, tax included."})
    reason = fields.String(required=True, validate=validate.OneOf(CREDIT_NOTE_REASONS))
    memo = text(500, load_default=None, allow_none=True)
    settlement = fields.String(load_default=None, validate=validate.OneOf(SETTLEMENTS), metadata={
        "description": "Default: reduce_due for an open invoice, refund for one with money collected."})


class CreditNoteListArgs(ListArgs):
    invoice = fields.String(validate=validate.Length(max=40))
    customer = fields.String(validate=validate.Length(max=40))
