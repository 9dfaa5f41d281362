from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db
from ..states import machine

#: pending -> sent, or failed (refused for good, gave up retrying, or not sendable: no address,
#: the invoice was voided first).
EMAIL_DELIVERY_STATES = machine("email delivery", {"pending": {"sent", "failed"}, "sent": set(), "failed": set()})

#: What an email is about: a customer's invoice, a closed period's summary for finance, a
#: webhook endpoint that was disabled (told to finance).
INVOICE, PERIOD_SUMMARY, ENDPOINT_DISABLED = "invoice", "period_summary", "webhook_endpoint_disabled"
#: The customer's payment emails: a receipt, a failed charge, a charge awaiting their
#: authentication, money given back.
RECEIPT, PAYMENT_FAILED, ACTION_REQUIRED, REFUND = "receipt", "payment_failed", "payment_action_required", "refund"
#: Finance's: an invoice given up on, a charge disputed with the bank.
UNCOLLECTIBLE, DISPUTE = "invoice_uncollectible", "invoice_disputed"
#: Payouts: finance's (payouts await its review, a payout failed) and the provider's statement
#: (its payout was paid, the statement's PDF attached).
PAYOUTS_AWAITING_REVIEW, PAYOUT_FAILED = "payouts_awaiting_review", "payout_failed"
PAYOUT_STATEMENT = "payout_statement"
#: The customer's notice of an invoice still unpaid after its due date.
OVERDUE = "invoice_overdue"
#: The customer's notice that its usage of a subscription reached a threshold of the included units.
USAGE_THRESHOLD = "usage_threshold"
#: The customer's credit note (an invoice corrected), its PDF attached.
CREDIT_NOTE = "credit_note"
EMAIL_KINDS = (INVOICE, PERIOD_SUMMARY, ENDPOINT_DISABLED, RECEIPT, PAYMENT_FAILED, ACTION_REQUIRED, REFUND,
               UNCOLLECTIBLE, DISPUTE, PAYOUTS_AWAITING_REVIEW, PAYOUT_FAILED, PAYOUT_STATEMENT, OVERDUE,
               USAGE_THRESHOLD, CREDIT_NOTE)


class EmailDelivery(db.Model):
    """One email to send: for one event, of one kind, to one recipient; the unique constraint on
    exactly these makes "already recorded" a no-op, so nothing is sent twice. `recipient` is ''
    for a customer without an address (recorded failed, so that it shows)."""

    __tablename__ = "email_deliveries"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("events.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    invoice_id: Mapped[str | None] = mapped_column(sa.ForeignKey("invoices.id"))
    status: Mapped[str] = mapped_column(sa.String(16))
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    # When (real time) it may next be tried; its claim by a worker (a lease).
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(sa.String(32))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(sa.String(255))

    __table_args__ = (
        sa.UniqueConstraint("event_id", "kind", "recipient"),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        sa.Index("ix_email_deliveries_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_email_deliveries_invoice", "invoice_id"),
        sa.Index("ix_email_deliveries_ready", "next_attempt_at", postgresql_where=sa.text("status = 'pending'"),
                 sqlite_where=sa.text("status = 'pending'")),
    )
