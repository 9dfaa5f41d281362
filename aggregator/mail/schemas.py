from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..fields import ListArgs
from .models import EMAIL_DELIVERY_STATES, EMAIL_KINDS


class EmailDeliverySchema(Schema):
    id = fields.String(metadata={"description": "edl_…; the email's Message-ID is <id@operator's domain>."})
    object = fields.Constant("email_delivery")
    livemode = fields.Boolean()
    kind = fields.String(metadata={"enum": list(EMAIL_KINDS), "description":
                                   "To the customer: invoice (its invoice with the PDF), receipt (it was paid), "
                                   "payment_failed (a charge was declined), payment_action_required (a charge "
                                   "awaits its authentication), refund (money given back). To finance: "
                                   "period_summary (a closed period), webhook_endpoint_disabled, "
                                   "invoice_uncollectible (the last retry failed), invoice_disputed (a charge "
                                   "was disputed), payouts_awaiting_review (a payout day's payouts await review), "
                                   "payout_failed (Stripe refused a payout's transfer). To a provider: "
                                   "payout_statement (its payout was paid; the statement's PDF attached)."})
    event = fields.String(attribute="event_id", metadata={"description": "The event that caused it (evt_…)."})
    invoice = fields.String(attribute="invoice_id", allow_none=True)
    recipient = fields.Function(lambda d: d.recipient or None, allow_none=True, metadata={
        "type": "string", "description": "null: the customer has no email address (the delivery failed)."})
    status = fields.String(metadata={"enum": sorted(EMAIL_DELIVERY_STATES.states)})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(metadata={"description": "While pending: when it is tried next."})
    last_error = fields.String(allow_none=True)
    created = fields.DateTime(attribute="created_at")
    sent_at = fields.DateTime(allow_none=True)
    message_id = fields.String(allow_none=True)


class EmailDeliveryListArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(sorted(EMAIL_DELIVERY_STATES.states)))
    event = fields.String(validate=validate.Length(min=1, max=40))
    invoice = fields.String(validate=validate.Length(min=1, max=40))
    recipient = fields.String(validate=validate.Length(min=1, max=320))
