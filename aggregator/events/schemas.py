from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..fields import ListArgs

#: Every event type, with what it announces.
EVENT_TYPES = {
    "invoice.created": "An invoice was created at a period's close (a draft under manual review).",
    "invoice.finalized": "An invoice was finalized: numbered and open for payment.",
    "invoice.voided": "An invoice was voided.",
    "invoice.pdf_ready": "An invoice's PDF was rendered and stored.",
    "period.closed": "A period was closed: every customer with bills in it has its invoice.",
    "bills.invoiced": "A provider's bills of a closed period were invoiced (counts and sums per currency).",
    "invoice.paid": "An invoice was paid in full (by a charge, recorded payments, or nothing being due).",
    "invoice.payment_failed": "A charge of an invoice failed; data.next_retry_at tells when it is retried (null: "
                              "not automatically).",
    "invoice.payment_action_required": "A charge needs the customer's authentication (3-D Secure).",
    "invoice.marked_uncollectible": "An invoice's last retry failed: it was marked uncollectible.",
    "invoice.overdue": "An invoice was still unpaid at the end of its due date (tenant's time zone): it is "
                       "overdue (once; overdue_at), and its customer is emailed unless notifications say not.",
    "invoice.disputed": "The customer disputed a charge of the invoice with their bank (Stripe's "
                        "charge.dispute.created): the invoice is flagged disputed and finance is told.",
    "payment.succeeded": "A payment succeeded (a charge, or money recorded as received).",
    "payment.failed": "A charge attempt failed (declined, or refused before it was sent).",
    "refund.created": "A refund was created.",
    "refund.succeeded": "A refund succeeded.",
    "refund.failed": "A refund failed.",
    "credit_note.created": "A credit note corrected a finalized invoice (its number, lines, total and settlement: "
                           "refund, customer_balance or reduce_due); the customer is emailed it with its PDF.",
    "payout.created": "A payout was built for a provider and currency on a payout day (pending review, unless "
                      "the tenant approves payouts automatically).",
    "payout.approved": "Finance approved a payout (or it was approved automatically): it will be sent.",
    "payout.paid": "A payout was paid: Stripe made its transfer, finance recorded the bank transfer, or it had "
                   "nothing to transfer. Its provider is emailed its statement.",
    "payout.failed": "Stripe refused a payout's transfer: nothing was sent; its amount is brought into the "
                     "provider's next payout.",
    "payout.canceled": "A payout was canceled before it was sent: its amount is brought into the provider's next "
                       "payout.",
    "payouts.awaiting_review": "A payout day's payouts await finance's review (the run: its payout day, period, "
                               "and counts and amounts per currency).",
    "webhook_endpoint.disabled": "A webhook endpoint was disabled after its deliveries failed for about three days.",
    "plan.created": "A plan was created: a parent plan (the platform's) or a provider's own plan.",
    "plan.updated": "A plan was changed: its name, environments, quotas, grants or metadata, or new prices from a "
                    "period on.",
    "subscription.created": "A provider subscribed one of its customers to one of its plans.",
    "subscription.updated": "A subscription changed plan, quantity or metadata.",
    "subscription.canceled": "A subscription was ended (the instance was deleted), at an instant now or later.",
    "usage.threshold_reached": "A subscription's usage of a usage component reached one of its thresholds (% of "
                               "the included units): once per (subscription, component, threshold, period); "
                               "reached_at is the instant of the usage event that reached it. The customer is "
                               "emailed unless notifications say not.",
}


class EventSchema(Schema):
    """An event, as Stripe's Events API shows them; webhooks deliver exactly this JSON."""

    id = fields.String(metadata={"description": "evt_…: stable, also the webhook-id of its deliveries."})
    object = fields.Constant("event")
    type = fields.String(metadata={"enum": sorted(EVENT_TYPES)})
    created = fields.DateTime(metadata={"description": "When the change happened, on the tenant's clock."})
    livemode = fields.Boolean()
    tenant = fields.String(attribute="tenant_id")
    provider = fields.String(attribute="provider_id", allow_none=True, metadata={
        "description": "The provider the event is about, if it is about one provider only."})
    data = fields.Dict(metadata={"description": "{\"object\": the object as it was after the change}"})


class EventListArgs(ListArgs):
    type = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "An event type, or a prefix such as invoice.*"})
