from __future__ import annotations

from marshmallow import Schema, fields, validate

from .. import money
from ..fields import ListArgs, text
from . import arithmetic

PAYOUT_STATUSES = ["pending_review", "approved", "paid", "failed", "canceled"]


def _amount(attribute: str, description: str | None = None):
    return fields.Function(lambda obj: money.format_amount(getattr(obj, attribute), obj.currency),
                           metadata={"type": "string", "example": "19.99",
                                     **({"description": description} if description else {})})


class PayoutSchema(Schema):
    """What one provider is paid in one currency on one payout day."""

    id = fields.String()
    object = fields.Constant("payout")
    provider = fields.String(attribute="provider_id")
    currency = fields.String()
    status = fields.String(metadata={"enum": PAYOUT_STATUSES, "description":
                                     "pending_review: waits for finance; approved: being sent (Stripe) or waits "
                                     "for finance to record the bank transfer; paid; failed (Stripe refused the "
                                     "transfer: its amount is brought into the next payout); canceled (before it "
                                     "was sent: likewise)."})
    payout_date = fields.Date(attribute="run.payout_date", metadata={"description": "The payout day it was built on."})
    period = fields.Date(attribute="run.period_start", metadata={
        "description": "The invoicing period it mostly pays (the one before the period containing its payout day)."})
    line_count = fields.Integer(metadata={"description": "Its lines: a bill's part of one payment (or refund)."})
    charges = fields.Function(lambda obj: money.format_amount(arithmetic.charges(obj), obj.currency), metadata={
        "type": "string", "example": "19.99",
        "description": "What its bills other than credits collected: charges + credits = gross."})
    gross = _amount("gross", "What its bills collected, in the bill's currency (credits included).")
    revenue_share_gross = _amount("revenue_share_gross")
    pass_through_gross = _amount("pass_through_gross")
    fee = _amount("fee", "The platform's fee on the revenue-share bills.")
    credits = _amount("credits", "The provider's negative bills (credits to customers), <= 0.")
    clawback = _amount("clawback", "Refunded shares taken back, <= 0.")
    net = _amount("net", "gross - fee + clawback.")
    brought_forward = _amount("brought_forward", "From earlier payouts: a negative balance carried, or the "
                                                 "amount of a canceled or failed one.")
    amount = _amount("amount", "What is transferred: max(0, net + brought_forward).")
    carry = _amount("carry", "A negative balance carried to the next payout: min(0, net + brought_forward).")
    method = fields.String(metadata={"enum": ["stripe", "bank_transfer", "none"],
                                     "description": "none: nothing to transfer."})
    destination = fields.String(attribute="stripe_account_id", allow_none=True)
    stripe_transfer = fields.String(attribute="stripe_transfer_id", allow_none=True)
    transfer_group = fields.String(attribute="run_id")
    reference = fields.String(allow_none=True, metadata={"description": "A bank transfer's, recorded by finance."})
    failure_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    canceled_at = fields.DateTime(allow_none=True)
    livemode = fields.Boolean()


class PayoutLineSchema(Schema):
    object = fields.Constant("payout_line")
    bill = fields.String(attribute="bill_id")
    invoice = fields.String(attribute="invoice_id")
    source = fields.String(attribute="source_id", metadata={"description": "The payment, refund (negative line) "
                                                                            "or settled invoice it comes from."})
    customer = fields.String(metadata={"description": "The bill's customer: its name, else its external id."})
    description = fields.String(metadata={"description": "The bill's description."})
    service_period_start = fields.Date(allow_none=True)
    service_period_end = fields.Date(allow_none=True)
    revenue_share = fields.Boolean()
    amount = _amount("amount", "The bill's part of the source, in the bill's currency.")
    fee = _amount("fee")
    net = _amount("net")
    currency = fields.String()


class PayoutLinePageSchema(Schema):
    data = fields.List(fields.Nested(PayoutLineSchema))
    has_more = fields.Boolean()


class PayoutWithLinesSchema(PayoutSchema):
    lines = fields.Nested(PayoutLinePageSchema, metadata={
        "description": "Its first 100 lines; the rest: GET /v1/payouts/{id}/lines."})


class PayoutListArgs(ListArgs):
    period = fields.Date(metadata={"description": "The invoicing period (its start date) the payouts pay."})
    provider = fields.String()
    status = fields.String(validate=validate.OneOf(PAYOUT_STATUSES))


class ApprovePeriodSchema(Schema):
    period = fields.Date(required=True, metadata={"description": "Approve every payout of this period awaiting "
                                                               "review."})


class MarkPaidSchema(Schema):
    reference = text(255, required=True, metadata={"description": "The bank transfer's reference."})
