"""Test mode's clock: each tenant's test mode has one, moved forward only when told, so that a
whole billing cycle can be run in seconds (the way Stripe's test clocks work)."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .clock import Clock
from .db import UTCDateTime, db, dialect_insert, locking
from .errors import InvalidInput


class TestClockRecord(db.Model):
    __tablename__ = "test_clocks"
    __test__ = False  # not a pytest class

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    now: Mapped[datetime] = mapped_column(UTCDateTime)


class TenantTestClock:
    """Reads the tenant's test clock; it starts at real (base) time the first time it is read."""

    def __init__(self, tenant_id: str, base: Clock):
        self.tenant_id, self.base = tenant_id, base

    def now(self) -> datetime:
        current = db.session.scalar(sa.select(TestClockRecord.now).where(
            TestClockRecord.tenant_id == self.tenant_id))
        return current if current is not None else self.base.now()


def lock_and_advance(tenant_id: str, to: datetime, base_now: datetime) -> tuple[datetime, datetime]:
    """Move the clock forward to `to` (never back) under a row lock held until the caller
    commits, so concurrent advances run their due work one after another. -> (from, to)"""
    db.session.execute(dialect_insert(TestClockRecord.__table__).values(tenant_id=tenant_id, now=base_now)
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    record = db.session.scalars(locking(
        sa.select(TestClockRecord).where(TestClockRecord.tenant_id == tenant_id))).one()
    before, to = record.now, to.astimezone(timezone.utc)
    if to < before:
        raise InvalidInput.on("to", f"The test clock only moves forward; it is at {before.isoformat()}.",
                              "clock_backwards")
    record.now = to
    return before, to


def advance_test_clock(tenant_id: str, to: datetime, base_now: datetime, renderer, storage) -> dict:
    """Move the tenant's test clock forward, then run everything that became due by then."""
    from .consolidate.service import run_due_work

    previous, now = lock_and_advance(tenant_id, to, base_now)
    db.session.commit()
    return {"previous": previous, "now": now, "ran": run_due_work(tenant_id, False, now, renderer, storage)}
