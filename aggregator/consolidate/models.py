from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Customer
from ..db import UTCDateTime, db, id_column
from ..states import machine

INVOICE_STATES = machine("invoice", {
    "draft": {"open", "void"},
    "open": {"paid", "uncollectible", "void"},
    "paid": set(),
    "uncollectible": {"paid", "void"},
    "void": set(),
})


class PeriodRate(db.Model):
    """A provider's revenue-share rate as it was when a period was invoiced: recorded once, when
    the period starts closing (no bill enters or leaves it after), so a later change of the
    provider's rate never rewrites what its bills of that period owe. One row per provider and
    period, not per bill: a bill's rate is its provider's row for the bill's period."""

    __tablename__ = "period_rates"

    tenant_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    revenue_share_rate: Mapped[str] = mapped_column(sa.String(16))

    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
    )


class InvoiceSequence(db.Model):
    """The next invoice number of a tenant in a mode: taken under a row lock, so gapless."""

    __tablename__ = "invoice_sequences"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    next_number: Mapped[int] = mapped_column(sa.BigInteger, default=1)


class FxRate(db.Model):
    __tablename__ = "fx_rates"

    id: Mapped[str] = id_column("fxr")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    base: Mapped[str] = mapped_column(sa.String(3))
    quote: Mapped[str] = mapped_column(sa.String(3))
    rate: Mapped[str] = mapped_column(sa.String(32))
    effective_date: Mapped[date] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (sa.UniqueConstraint("tenant_id", "livemode", "base", "quote", "effective_date"),)


class Invoice(db.Model):
    __tablename__ = "invoices"

    id: Mapped[str] = id_column("inv")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    period_start: Mapped[date] = mapped_column(sa.Date)
    period_end: Mapped[date] = mapped_column(sa.Date)
    number: Mapped[str | None] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(16), default="draft")
    currency: Mapped[str] = mapped_column(sa.String(3))
    tax_rate: Mapped[str] = mapped_column(sa.String(16))
    subtotal: Mapped[int] = mapped_column(sa.BigInteger)
    tax: Mapped[int] = mapped_column(sa.BigInteger)
    total: Mapped[int] = mapped_column(sa.BigInteger)
    amount_due: Mapped[int] = mapped_column(sa.BigInteger)
    carried_credit: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    due_date: Mapped[date] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    void_reason: Mapped[str | None] = mapped_column(sa.String(500))
    pdf_path: Mapped[str | None] = mapped_column(sa.String(500))
    pdf_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    pdf_error: Mapped[str | None] = mapped_column(sa.String(500))
    # Rendering is claimed by one worker at a time (pdf_locked_until, a lease that a killed
    # worker's claim outlives only briefly) and a failure is retried with backoff (pdf_retry_at).
    pdf_attempts: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    pdf_locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pdf_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    template: Mapped[str] = mapped_column(sa.String(40), default="invoice_v1.html")
    # The exchange rates the close converted this invoice's bills at, as JSON text
    # {"EUR": "1.083412"} (units of the invoice currency per one unit of the key); NULL when none.
    fx_rates: Mapped[str | None] = mapped_column(sa.Text)
    # the ledger journal a close finalized it in (one per chunk: invoices_finalized); None when
    # it has its own invoice_finalized journal (a draft finalized) or none (a draft)
    finalized_journal_id: Mapped[str | None] = mapped_column(sa.String(40))
    # Collection (written by payments.transitions and the transitions here): what was paid and
    # refunded; when the next automatic charge is due (NULL: none is scheduled); how collection
    # stands while the invoice is open (COLLECTION); whether a charge of it is disputed.
    amount_paid: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    amount_refunded: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_charge_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt_count: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    first_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    collection: Mapped[str | None] = mapped_column(sa.String(32))
    disputed: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # When it became overdue (still open at the end of its due date; payments/overdue_service.py),
    # set once; it stays as a record after the invoice is paid.
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who issued the invoice to whom, as they were when it was finalized (issue 20): {"seller":
    # {legal_name, address, country, tax_ids, tax_name, title}, "buyer": {name, address, country,
    # tax_ids}}; a finalized invoice's document never changes with later settings. And its tax
    # treatment: "standard", "reverse_charge" (an exempt EU business in another member state, the
    # tenant enabling it) or "exempt". NULL on invoices finalized before: read from the settings.
    parties: Mapped[dict | None] = mapped_column(sa.JSON)
    tax_treatment: Mapped[str | None] = mapped_column(sa.String(16))

    @property
    def amount_remaining(self) -> int:
        return max(self.amount_due - self.amount_paid, 0)

    @property
    def overdue(self) -> bool:
        """Open, and past the end of its due date (overdue_at stays once it is paid)."""
        return self.status == "open" and self.overdue_at is not None

    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)
    stored_lines: Mapped[list["InvoiceLine"]] = relationship(
        order_by="InvoiceLine.position", lazy="selectin", back_populates="invoice")

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "customer_id", "period_start"),
        sa.UniqueConstraint("tenant_id", "livemode", "number"),
        sa.CheckConstraint("status IN ('draft', 'open', 'paid', 'uncollectible', 'void')", name="status"),
        sa.CheckConstraint("(number IS NULL) = (finalized_at IS NULL)", name="numbered_when_final"),
        sa.Index("ix_invoices_scope", "tenant_id", "livemode", "id"),
        # what the PDF workers look for: finalized invoices without a stored PDF
        sa.Index("ix_invoices_pdf_pending", "id", postgresql_where=sa.text("number IS NOT NULL AND pdf_sha256 IS NULL"),
                 sqlite_where=sa.text("number IS NOT NULL AND pdf_sha256 IS NULL")),
        sa.CheckConstraint("amount_paid >= 0 AND amount_refunded BETWEEN 0 AND amount_paid", name="paid_amounts"),
        # what the charge run looks for: open invoices whose next charge is due
        sa.Index("ix_invoices_charge_due", "tenant_id", "livemode", "next_charge_at",
                 postgresql_where=sa.text("next_charge_at IS NOT NULL"),
                 sqlite_where=sa.text("next_charge_at IS NOT NULL")),
        # drafts awaiting their review deadline (auto_finalize_after_days)
        sa.Index("ix_invoices_drafts", "tenant_id", "livemode", "created_at",
                 postgresql_where=sa.text("status = 'draft'"), sqlite_where=sa.text("status = 'draft'")),
        # open invoices not yet overdue, by due date (what the overdue due work looks for)
        sa.Index("ix_invoices_overdue_due", "tenant_id", "livemode", "due_date", "finalized_at",
                 postgresql_where=sa.text("status = 'open' AND overdue_at IS NULL"),
                 sqlite_where=sa.text("status = 'open' AND overdue_at IS NULL")),
    )


class InvoiceLine(db.Model):
    """A line kept as a row: the credit lines written at the close, and, once an invoice is
    voided, a snapshot of its bill lines (its bills are then released to another period). The
    bill lines of an invoice that is not void are not stored: they are derived from its bills
    (consolidate.invoice_service.invoice_lines)."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"))
    position: Mapped[int] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16))
    bill_id: Mapped[str | None] = mapped_column(sa.ForeignKey("bills.id"))
    provider_id: Mapped[str | None] = mapped_column(sa.ForeignKey("providers.id"))
    credit_id: Mapped[str | None] = mapped_column(sa.String(40))
    description: Mapped[str] = mapped_column(sa.String(1000))
    service_start: Mapped[date | None] = mapped_column(sa.Date)
    service_end: Mapped[date | None] = mapped_column(sa.Date)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    original_amount: Mapped[int | None] = mapped_column(sa.BigInteger)
    original_currency: Mapped[str | None] = mapped_column(sa.String(3))
    fx_rate: Mapped[str | None] = mapped_column(sa.String(32))

    invoice: Mapped[Invoice] = relationship(back_populates="stored_lines")

    __table_args__ = (sa.Index("ix_invoice_lines_invoice", "invoice_id", "position"),)


#: How collection stands while an invoice is open (NULL once it is not).
COLLECTION = {
    "scheduled": "An automatic charge is due at next_charge_at.",
    "retrying": "A charge was declined; it is retried at next_charge_at.",
    "action_required": "The customer must authenticate the payment (3-D Secure); no automatic retry.",
    "payment_method_required": "A hard decline, or no payment method on file: waits for a new payment method.",
    "past_due": "Every retry failed; the invoice stays open (after_final_failure = past_due).",
    "manual": "No gateway charges it: it waits for a payment recorded by the platform (a bank transfer).",
    "processing": "A charge was sent and its outcome is not known yet.",
}


class Credit(db.Model):
    """Credit owed to a customer: carried from an invoice whose total was negative, or the
    excess of a payment over what its invoice asked (an overpayment)."""

    __tablename__ = "credits"

    id: Mapped[str] = id_column("cred")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # an invoice gives at most one credit: a negative total (nothing due, so never overpaid) or
    # an overpayment (after which it is paid, so never overpaid again)
    source_invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"))
    kind: Mapped[str] = mapped_column(sa.String(16), default="carried", server_default="carried")
    # a credit note settled to the customer's balance (kind "credit_note"): one credit each; an
    # invoice still gives at most one credit of the other kinds (ux_credits_source_invoice)
    source_credit_note_id: Mapped[str | None] = mapped_column(sa.String(40), unique=True)
    source_payment_id: Mapped[str | None] = mapped_column(sa.String(40))
    applied_invoice_id: Mapped[str | None] = mapped_column(sa.ForeignKey("invoices.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.Index("ix_credits_customer", "customer_id", "applied_invoice_id"),
        sa.Index("ux_credits_source_invoice", "source_invoice_id", unique=True,
                 postgresql_where=sa.text("source_credit_note_id IS NULL"),
                 sqlite_where=sa.text("source_credit_note_id IS NULL")),
    )



# --- credit notes (issue 20) ----------------------------------------------------------------------

#: How a credit note's money is settled (Stripe's refund_amount / credit_amount / out_of_band):
#: given back through the payment's refund path, kept as the customer's credit for its next
#: invoice, or taken off what the open invoice still asks.
SETTLEMENTS = ("refund", "customer_balance", "reduce_due")


class CreditNoteSequence(db.Model):
    """The next credit note number of a tenant in a mode and year: taken under a row lock, so
    gapless (`{prefix}-CN-{YYYY}-{000123}`)."""

    __tablename__ = "credit_note_sequences"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    next_number: Mapped[int] = mapped_column(sa.BigInteger, default=1)


class CreditNote(db.Model):
    """A correction of a finalized invoice: what it takes back of the invoice (its lines, tax
    and total, all > 0 as credited) and how the money is settled. Never changed once issued."""

    __tablename__ = "credit_notes"

    id: Mapped[str] = id_column("cn")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    invoice_id: Mapped[str] = mapped_column(sa.ForeignKey("invoices.id"))
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    number: Mapped[str] = mapped_column(sa.String(48))
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.String(32))
    memo: Mapped[str | None] = mapped_column(sa.String(500))
    settlement: Mapped[str] = mapped_column(sa.String(16))
    subtotal: Mapped[int] = mapped_column(sa.BigInteger)
    tax: Mapped[int] = mapped_column(sa.BigInteger)
    total: Mapped[int] = mapped_column(sa.BigInteger)
    # the refund that gives the money back (settlement refund or customer_balance)
    refund_id: Mapped[str | None] = mapped_column(sa.String(40), unique=True)
    # a request's Idempotency-Key, scoped by tenant and mode: a retry is answered with the same note
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pdf_path: Mapped[str | None] = mapped_column(sa.String(500))
    pdf_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    pdf_error: Mapped[str | None] = mapped_column(sa.String(500))
    template: Mapped[str] = mapped_column(sa.String(40), default="credit_note_v1.html")

    invoice: Mapped[Invoice] = relationship(lazy="joined", innerjoin=True)
    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)
    lines: Mapped[list["CreditNoteLine"]] = relationship(order_by="CreditNoteLine.position", lazy="selectin")

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "number"),
        sa.UniqueConstraint("tenant_id", "livemode", "idempotency_key"),
        sa.CheckConstraint("settlement IN ('refund', 'customer_balance', 'reduce_due')", name="settlement"),
        sa.CheckConstraint("subtotal >= 0 AND tax >= 0 AND total = subtotal + tax AND total > 0", name="amounts"),
        sa.Index("ix_credit_notes_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_credit_notes_invoice", "invoice_id", "id"),
    )


class CreditNoteLine(db.Model):
    """What a credit note credits: part of one invoice line (`bill_id`) or, with none, an amount
    of the invoice as a whole. `amount` (> 0) is before tax."""

    __tablename__ = "credit_note_lines"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    credit_note_id: Mapped[str] = mapped_column(sa.ForeignKey("credit_notes.id"))
    position: Mapped[int] = mapped_column(sa.Integer)
    bill_id: Mapped[str | None] = mapped_column(sa.String(40))
    provider_id: Mapped[str | None] = mapped_column(sa.String(40))
    description: Mapped[str] = mapped_column(sa.String(1000))
    amount: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="positive"),
        sa.Index("ix_credit_note_lines_note", "credit_note_id", "position"),
        sa.Index("ix_credit_note_lines_bill", "bill_id"),
    )
