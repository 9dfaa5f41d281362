"""Test mode's clock: each tenant's test mode has one, moved forward only when told, so that a
whole billing cycle can be run in seconds (the way Stripe's test clocks work).

Moving the clock makes everything up to its new time due in the tenant's test-mode lane; the
due work then runs in order, each unit as of its own instant (see aggregator.due), either in the
request that moved the clock (`wait`, the default) or by the workers (the clock's status is
`advancing` until they have caught up, then `ready`).

`ready` means the advance is over, not that everything due was done: due work that could not
finish (a charge whose outcome is unknown because Stripe did not answer, or a unit that failed)
is listed in the clock's `pending` work with a classified reason, and retried after a backoff by
the workers and by the next advance. A clock never stays `advancing` because of it, and later
advances proceed (unlike Stripe's `internal_failure`, which ends a test clock)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from . import due
from .db import UTCDateTime, db, dialect_insert, locking
from .errors import Conflict

if TYPE_CHECKING:
    from .clock import Clock

CLOCK_STATES = ("ready", "advancing")


class TestClockRecord(db.Model):
    __tablename__ = "test_clocks"
    __test__ = False  # not a pytest class

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    now: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default="ready", server_default="ready")

    __table_args__ = (sa.CheckConstraint("status IN ('ready', 'advancing')", name="status"),)


class TenantTestClock:
    """Reads the tenant's test clock; it starts at real (base) time the first time it is read."""

    def __init__(self, tenant_id: str, base: Clock):
        self.tenant_id, self.base = tenant_id, base

    def now(self) -> datetime:
        current = db.session.scalar(sa.select(TestClockRecord.now).where(
            TestClockRecord.tenant_id == self.tenant_id))
        return current if current is not None else self.base.now()


def get_test_clock(tenant_id: str, base_now: datetime, caught_up: due.CatchUp | None = None) -> dict:
    """The clock's time and status, and its lane's due work not done by then (`pending`;
    `caught_up`: the lane's catch-up just run, see `due.pending_work`)."""
    record = db.session.get(TestClockRecord, tenant_id)
    now = record.now if record else base_now
    return {"now": now, "status": record.status if record else "ready",
            "pending": due.pending_work(due.Lane(tenant_id, False), now, caught_up)}


def lock_and_advance(tenant_id: str, to: datetime, base_now: datetime) -> tuple[datetime, datetime]:
    """Move the clock forward to `to` (never back) under a row lock held until the caller
    commits, mark it advancing and nudge the tenant's test-mode lane. -> (from, to)"""
    db.session.execute(dialect_insert(TestClockRecord.__table__).values(tenant_id=tenant_id, now=base_now)
                       .on_conflict_do_nothing(index_elements=["tenant_id"]))
    record = db.session.scalars(locking(
        sa.select(TestClockRecord).where(TestClockRecord.tenant_id == tenant_id))).one()
    before, to = record.now, to.astimezone(timezone.utc)
    if to < before:
        # `to` is a valid instant; the clock being past it is the state's doing: a conflict.
        message = f"The test clock only moves forward; it is at {before.isoformat()}."
        raise Conflict(message, code="clock_backwards", fields={"to": [message]})
    record.now, record.status = to, "advancing"
    due.nudge(tenant_id, False)
    return before, to


def mark_ready(tenant_id: str, caught_up_to: datetime) -> None:
    """The lane's due work is done up to `caught_up_to`: the clock is ready unless it has been
    moved further meanwhile (then the nudge of that move keeps the lane due)."""
    db.session.execute(sa.update(TestClockRecord).where(
        TestClockRecord.tenant_id == tenant_id, TestClockRecord.status == "advancing",
        TestClockRecord.now <= caught_up_to).values(status="ready"))
    db.session.commit()


def lane_caught_up(lane: due.Lane, lane_now: datetime) -> None:
    """After a catch-up of a test-mode lane (registered with `due.after_catch_up`): its clock is
    ready (see `mark_ready`)."""
    if not lane.livemode:
        mark_ready(lane.tenant_id, lane_now)
