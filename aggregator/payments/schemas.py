from __future__ import annotations

from marshmallow import Schema, fields, validate

from .. import money
from ..consolidate.schemas import InvoiceSchema
from ..fields import ListArgs, text
from .models import MANUAL_METHODS, METHODS, REFUND_REASONS


def _amount(attribute: str):
    return fields.Function(lambda obj: money.format_amount(getattr(obj, attribute), obj.currency),
                           metadata={"type": "string", "example": "19.99"})


class PaymentSchema(Schema):
    """An attempt to collect an invoice through the gateway, or a payment recorded outside it."""

    id = fields.String()
    object = fields.Constant("payment")
    invoice = fields.String(attribute="invoice_id")
    customer = fields.String(attribute="customer_id")
    gateway = fields.String(metadata={"enum": ["stripe", "manual"]})
    method = fields.String(metadata={"enum": list(METHODS)})
    trigger = fields.String(metadata={"enum": ["scheduled", "retry", "operator", "recorded"], "description":
                                      "scheduled: the charge day; retry: the retry schedule; operator: POST "
                                      "/v1/invoices/{id}/pay or the CLI; recorded: money received outside Stripe."})
    attempt = fields.Integer(allow_none=True, metadata={"description": "The invoice's gateway attempt number."})
    amount = _amount("amount")
    amount_refunded = _amount("amount_refunded")
    currency = fields.String()
    status = fields.String(metadata={"enum": ["pending", "requires_action", "succeeded", "failed", "canceled"],
                                     "description": "pending: sent (or about to be) and its outcome not known yet."})
    stripe_payment_intent = fields.String(attribute="stripe_payment_intent_id", allow_none=True)
    stripe_charge = fields.String(attribute="stripe_charge_id", allow_none=True)
    gateway_status = fields.String(allow_none=True, metadata={"description": "The gateway's own status word."})
    failure_code = fields.String(allow_none=True)
    decline_code = fields.String(allow_none=True)
    failure_message = fields.String(allow_none=True)
    hard_decline = fields.Boolean(metadata={
        "description": "A decline that no retry can fix (lost or stolen card, …): waits for a new payment method."})
    reference = fields.String(allow_none=True)
    received_on = fields.Date(allow_none=True)
    idempotency_key = fields.String(allow_none=True, metadata={"description": "Sent to Stripe: payment-<id>."})
    created_at = fields.DateTime()
    settled_at = fields.DateTime(allow_none=True)
    livemode = fields.Boolean()


class RefundSchema(Schema):
    id = fields.String()
    object = fields.Constant("refund")
    invoice = fields.String(attribute="invoice_id")
    payment = fields.String(attribute="payment_id")
    amount = _amount("amount")
    currency = fields.String()
    reason = fields.String(allow_none=True, metadata={"enum": [*REFUND_REASONS, None]})
    note = fields.String(allow_none=True)
    gateway = fields.String(metadata={"enum": ["stripe", "manual", "balance"], "description": (
        "balance: a credit note's credit to the customer's balance, taken off its next invoice")})
    status = fields.String(metadata={"enum": ["pending", "succeeded", "failed", "canceled"]})
    credit_note = fields.String(attribute="credit_note_id", allow_none=True, metadata={
        "description": "The credit note this refund settles, or that it issued (a refund asked for by itself)."})
    stripe_refund = fields.String(attribute="stripe_refund_id", allow_none=True)
    failure_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    settled_at = fields.DateTime(allow_none=True)
    livemode = fields.Boolean()


class RefundListArgs(ListArgs):
    invoice = fields.String()
    payment = fields.String()
    status = fields.String(validate=validate.OneOf(["pending", "succeeded", "failed", "canceled"]))


class PaymentListArgs(ListArgs):
    invoice = fields.String()
    customer = fields.String(metadata={"description": "Customer id or external_id."})
    status = fields.String(validate=validate.OneOf(["pending", "requires_action", "succeeded", "failed", "canceled"]))
    gateway = fields.String(validate=validate.OneOf(["stripe", "manual"]))


class ManualPaymentSchema(Schema):
    amount = fields.String(required=True, metadata={"example": "120.00", "description": "In the invoice's currency."})
    method = fields.String(required=True, validate=validate.OneOf(MANUAL_METHODS))
    reference = text(255, load_default=None, allow_none=True)
    received_on = fields.Date(required=True)


class RefundInputSchema(Schema):
    # allow_none=False: a `load_default` of None would otherwise let an explicit null through as
    # if the field were absent ("refund everything"); null is refused, naming the field
    amount = fields.String(load_default=None, allow_none=False, metadata={
        "example": "10.00", "description": "Default: all that is left to refund of the payment."})
    reason = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(REFUND_REASONS))
    note = text(500, load_default=None, allow_none=True)
    payment = fields.String(load_default=None, allow_none=False, metadata={
        "description": "The payment to refund (default: the latest succeeded one with enough left to refund)."})


class OverpaymentCreditSchema(Schema):
    """The customer's credit made of what a payment gave beyond the invoice's amount due,
    applied to its next invoice as a credit line."""

    id = fields.String()
    object = fields.Constant("credit")
    kind = fields.String(metadata={"enum": ["carried", "overpayment"]})
    amount = _amount("amount")
    currency = fields.String()
    source_invoice = fields.String(attribute="source_invoice_id")
    source_payment = fields.String(attribute="source_payment_id", allow_none=True)
    applied_invoice = fields.String(attribute="applied_invoice_id", allow_none=True)


class PaymentResultSchema(Schema):
    """What paying an invoice did: the invoice as it is now, the payment made (null when nothing
    was left to charge) and, for an overpayment, the credit it made."""

    object = fields.Constant("payment_result")
    invoice = fields.Nested(InvoiceSchema)
    payment = fields.Nested(PaymentSchema, allow_none=True)
    credit = fields.Nested(OverpaymentCreditSchema, allow_none=True)
