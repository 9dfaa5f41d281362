from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db, id_column

GATEWAYS = ("stripe", "manual")
METHODS = ("card", "bank_transfer", "cash", "check", "other")
MANUAL_METHODS = ("bank_transfer", "cash", "check", "other")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "other")


class Payment(db.Model):
    """One attempt to collect an invoice through a gateway, or money received outside it.

    A gateway attempt is saved and committed `pending` before the gateway is called; its
    idempotency key (`payment-<id>`) is derived from it, so whatever happens to the call (a
    timeout, a crash) the outcome is found again rather than charged again. At most one attempt
    of an invoice is pending at a time (a partial unique index)."""

    __tablename__ = "payments"

    id: Mapped[str] = id_column("pay")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"))
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    gateway: Mapped[str] = mapped_column(sa.String(16))
    method: Mapped[str] = mapped_column(sa.String(16))
    # why it was made: the charge day, a retry, an operator (POST /pay, the CLI), a recorded payment
    trigger: Mapped[str] = mapped_column(sa.String(16))
    attempt: Mapped[int | None] = mapped_column(sa.SmallInteger)  # gateway attempts: 1, 2, … per invoice
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16))
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_payment_method: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))
    gateway_status: Mapped[str | None] = mapped_column(sa.String(40))  # the gateway's own word
    failure_code: Mapped[str | None] = mapped_column(sa.String(64))
    decline_code: Mapped[str | None] = mapped_column(sa.String(64))
    failure_message: Mapped[str | None] = mapped_column(sa.String(1000))
    hard_decline: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    requests: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")  # gateway calls made
    # real time until which the worker (or request) that sent it owns it; after, a pending
    # attempt is resumed (looked up, never sent anew) by the next charge run
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reference: Mapped[str | None] = mapped_column(sa.String(255))
    received_on: Mapped[date | None] = mapped_column(sa.Date)
    amount_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # on the tenant's clock (the due instant)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def idempotency_key(self) -> str:
        return f"payment-{self.id}"

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')",
                           name="status"),
        sa.CheckConstraint("gateway IN ('stripe', 'manual')", name="gateway"),
        sa.CheckConstraint("amount > 0", name="positive"),
        sa.CheckConstraint("amount_refunded BETWEEN 0 AND amount", name="refunds_within_amount"),
        sa.Index("ix_payments_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_payments_invoice", "invoice_id", "id"),
        # one attempt in flight per invoice: a second charge of it cannot even be started
        sa.Index("uq_payments_one_pending", "invoice_id", unique=True,
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
        sa.UniqueConstraint("invoice_id", "attempt"),
    )


class Refund(db.Model):
    """Money given back from one payment: through the gateway that took it (saved `pending`
    before the gateway is called, idempotency key `refund-<id>`), or recorded as manual."""

    __tablename__ = "refunds"

    id: Mapped[str] = id_column("re")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"))
    payment_id: Mapped[str] = mapped_column(sa.ForeignKey("payments.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str | None] = mapped_column(sa.String(32))
    note: Mapped[str | None] = mapped_column(sa.String(500))
    gateway: Mapped[str] = mapped_column(sa.String(16))
    status: Mapped[str] = mapped_column(sa.String(16))
    stripe_refund_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    failure_message: Mapped[str | None] = mapped_column(sa.String(1000))
    requests: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    # a claim by the worker that sends it (a killed worker's claim expires)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # the credit note it settles (credit_notes.refund_id names it back); NULL: a refund asked for
    # by itself, whose credit note is issued when it succeeds. gateway "balance": kept as the
    # customer's credit rather than given back (a credit note settled to the customer's balance)
    credit_note_id: Mapped[str | None] = mapped_column(sa.String(40), unique=True)

    @property
    def idempotency_key(self) -> str:
        return f"refund-{self.id}"

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name="status"),
        sa.CheckConstraint("amount > 0", name="positive"),
        sa.Index("ix_refunds_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_refunds_invoice", "invoice_id", "id"),
        sa.Index("ix_refunds_pending", "created_at", postgresql_where=sa.text("status = 'pending'"),
                 sqlite_where=sa.text("status = 'pending'")),
    )


class StripeEvent(db.Model):
    """An event Stripe sent to a tenant's webhook endpoint, stored raw (verified) before it is
    handled; unique by Stripe's id, so a redelivery is recognised."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = id_column("sevt")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    stripe_event_id: Mapped[str] = mapped_column(sa.String(255))
    type: Mapped[str] = mapped_column(sa.String(100))
    payload: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16))  # pending, handled, ignored
    attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "stripe_event_id"),
        sa.CheckConstraint("status IN ('pending', 'handled', 'ignored')", name="status"),
        sa.Index("ix_stripe_events_ready", "next_attempt_at", postgresql_where=sa.text("status = 'pending'"),
                 sqlite_where=sa.text("status = 'pending'")),
    )
