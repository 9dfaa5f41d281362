from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, id_column


class LedgerJournal(db.Model):
    """A posted journal: one movement of money (`kind`) of one object, in one tenant and mode.

    Append-only: the database refuses an UPDATE or DELETE of a journal or an entry (triggers,
    migration 0009); a correction is a new journal. At most one journal of a kind per object,
    so posting again (a re-run) is refused by the database: "already done"."""

    __tablename__ = "ledger_journals"

    id: Mapped[str] = id_column("jrn")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    kind: Mapped[str] = mapped_column(sa.String(32))
    object_type: Mapped[str] = mapped_column(sa.String(16))
    object_id: Mapped[str] = mapped_column(sa.String(40))
    memo: Mapped[str | None] = mapped_column(sa.String(500))
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the instant it records, on the tenant's clock
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=sa.func.now())  # real time

    entries: Mapped[list["LedgerEntry"]] = relationship(
        lazy="selectin", order_by="LedgerEntry.id", viewonly=True,
        primaryjoin="LedgerJournal.id == foreign(LedgerEntry.journal_id)")

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "kind", "object_id"),
        sa.UniqueConstraint("tenant_id", "livemode", "id"),  # the entries' composite foreign key
        sa.Index("ix_ledger_journals_object", "tenant_id", "livemode", "object_id"),
        sa.Index("ix_ledger_journals_posted", "tenant_id", "livemode", "posted_at"),
    )


class LedgerEntry(db.Model):
    """One posting of a journal: a debit (amount > 0) or a credit (amount < 0) of an account in
    a currency. The entries of a journal add up to zero per currency: the entries one statement
    writes, per journal (on PostgreSQL the database checks it after each statement, migration
    0012; the service checks it before inserting on every database)."""

    __tablename__ = "ledger_entries"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    journal_id: Mapped[str] = mapped_column(sa.String(40))
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    account: Mapped[str] = mapped_column(sa.String(80))
    currency: Mapped[str] = mapped_column(sa.String(3))
    amount: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (
        # an entry is in its journal's tenant and mode: the database refuses one that crosses them,
        # by a trigger rather than a foreign key (migration 0012): one check per statement, not a
        # lookup per row, since the close writes a million entries
        sa.CheckConstraint("amount <> 0", name="not_zero"),
        sa.Index("ix_ledger_entries_journal", "journal_id"),
        sa.Index("ix_ledger_entries_balance", "tenant_id", "livemode", "account", "currency"),
    )
