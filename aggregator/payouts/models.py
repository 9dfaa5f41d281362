from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, id_column


class PayoutRun(db.Model):
    """One payout day of a tenant in one mode: what was collected up to `due_at` (the payout
    day's start, tenant time) and not paid out before, gathered into one payout per provider and
    currency. Unique per (tenant, mode, payout_date): a run again is the same run."""

    __tablename__ = "payout_runs"

    id: Mapped[str] = id_column("prun")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    payout_date: Mapped[date] = mapped_column(sa.Date)
    period_start: Mapped[date] = mapped_column(sa.Date)  # the invoicing period it mostly pays
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (sa.UniqueConstraint("tenant_id", "livemode", "payout_date"),)


class PayoutSource(db.Model):
    """Money an invoice collected (a payment: `amount` > 0), gave back (a refund: < 0) or was
    settled by without money (an invoice whose credits cover it: 0), paid out in exactly one run:
    the primary key is the source's own id, so a payment's or refund's part of each bill is paid
    out at most once, whatever runs again or concurrently. `collected_before` is what the invoice
    had collected (net) before it: the source's lines are shares.difference of the invoice's
    collected shares at `collected_before + amount` and at `collected_before` (path independent)."""

    __tablename__ = "payout_sources"

    source_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16))  # payment, refund, settled
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("payout_runs.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"), index=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    collected_before: Mapped[int] = mapped_column(sa.BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    stripe_charge_id: Mapped[str | None] = mapped_column(sa.String(255))

    __table_args__ = (sa.CheckConstraint("kind IN ('payment', 'refund', 'settled')", name="kind"),)


class Payout(db.Model):
    """What one provider is paid in one currency on one payout day: the sum of its lines (its
    bills' nets in the run's sources), plus what it brought forward (a negative balance carried,
    or a canceled or failed payout's amount), never a negative transfer (shares.payout)."""

    __tablename__ = "payouts"

    id: Mapped[str] = id_column("po")
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    run_id: Mapped[str] = mapped_column(sa.ForeignKey("payout_runs.id"))
    provider_id: Mapped[str] = mapped_column(sa.String(40))
    currency: Mapped[str] = mapped_column(sa.String(3))
    status: Mapped[str] = mapped_column(sa.String(16), default="pending_review")
    # what its lines add up to (the bills' own currency): bills counted once per source they
    # appear in; gross = fee + net; revenue_share/pass_through split the gross; credits: the
    # provider's negative bills; clawback: refund lines (<= 0, their net)
    line_count: Mapped[int] = mapped_column(sa.Integer)
    gross: Mapped[int] = mapped_column(sa.BigInteger)
    revenue_share_gross: Mapped[int] = mapped_column(sa.BigInteger)
    pass_through_gross: Mapped[int] = mapped_column(sa.BigInteger)
    fee: Mapped[int] = mapped_column(sa.BigInteger)
    credits: Mapped[int] = mapped_column(sa.BigInteger)
    clawback: Mapped[int] = mapped_column(sa.BigInteger)
    net: Mapped[int] = mapped_column(sa.BigInteger)  # Σ lines' net (clawback included)
    brought_forward: Mapped[int] = mapped_column(sa.BigInteger)  # from earlier payouts (carry, canceled, failed)
    amount: Mapped[int] = mapped_column(sa.BigInteger)  # transferred: max(0, net + brought_forward)
    carry: Mapped[int] = mapped_column(sa.BigInteger)  # min(0, net + brought_forward): to the next payout
    method: Mapped[str] = mapped_column(sa.String(16))  # stripe, bank_transfer, none (nothing to send)
    stripe_account_id: Mapped[str | None] = mapped_column(sa.String(255))
    source_transaction: Mapped[str | None] = mapped_column(sa.String(255))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(100))
    stripe_transfer_id: Mapped[str | None] = mapped_column(sa.String(255), unique=True)
    reference: Mapped[str | None] = mapped_column(sa.String(255))  # a bank transfer's, recorded by finance
    requests: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    send_after: Mapped[datetime | None] = mapped_column(UTCDateTime)  # an unknown outcome: look again then
    failure_code: Mapped[str | None] = mapped_column(sa.String(64))
    failure_message: Mapped[str | None] = mapped_column(sa.String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(sa.String(100))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    run: Mapped[PayoutRun] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        sa.UniqueConstraint("run_id", "provider_id", "currency"),
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
        sa.CheckConstraint("status IN ('pending_review', 'approved', 'paid', 'failed', 'canceled')", name="status"),
        sa.CheckConstraint("amount >= 0 AND carry <= 0 AND amount + carry = net + brought_forward", name="payout_sum"),
        sa.CheckConstraint("method IN ('stripe', 'bank_transfer', 'none')", name="method"),
        sa.Index("ix_payouts_provider", "tenant_id", "livemode", "provider_id", "currency", "created_at"),
    )


class PayoutCarry(db.Model):
    """A finished payout's balance brought into a later one: its carry (<= 0) when paid, its
    whole amount when canceled or failed (nothing was sent). The primary key brings each
    payout's balance forward once."""

    __tablename__ = "payout_carries"

    from_payout_id: Mapped[str] = mapped_column(sa.ForeignKey("payouts.id"), primary_key=True)
    into_payout_id: Mapped[str] = mapped_column(sa.ForeignKey("payouts.id"), index=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
