"""Period use cases: the period a bill belongs to (and the lock intake holds on it), and the
periods as operators see them."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from .. import due
from ..accounts.models import TenantSettings
from ..auth import Principal
from ..db import db, dialect_name, locking, run, serializes_writers
from ..errors import NotFound
from ..pagination import Page, paginate
from . import calendar as C
from . import transitions
from .models import PeriodRecord


def has_periods(tenant_id: str, livemode: bool) -> bool:
    """Whether the tenant's mode has any period (bills have been received: its calendar is fixed)."""
    return db.session.scalar(sa.select(sa.exists().where(PeriodRecord.tenant_id == tenant_id,
                                                         PeriodRecord.livemode == livemode)))


def tenant_period(settings: TenantSettings, start: date) -> C.Period:
    """The tenant's period starting on `start` (in the mode of `settings`); NotFound if none
    does, or if it ended before the tenant existed (it can hold no bill, and recording it would
    fix the tenant's calendar)."""
    try:
        period = C.period_starting(start, settings.period_anchor_day, settings.timezone)
    except ValueError as exc:
        raise NotFound(f"No period starts on {start.isoformat()}: periods start on day "
                       f"{settings.period_anchor_day} of the month.") from exc
    if period.end_at <= settings.created_at:
        raise NotFound(f"No period starting on {start.isoformat()}: it ended before the tenant was created.")
    return period


def ensure_period_row(tenant_id: str, livemode: bool, period: C.Period) -> None:
    """Record the period (open) if nothing has happened in it yet. A new period is due work at
    its end, so its lane is nudged."""
    if transitions.create(tenant_id, livemode, period.start, period.end, period.start_at, period.end_at):
        due.nudge(tenant_id, livemode)


def claim_open_period(tenant_id: str, livemode: bool, now: datetime, anchor_day: int,
                      tz: str) -> C.Period:
    """The period a bill received `now` belongs to: the one containing `now`, or, if that one is
    already closing, the next open one. Runs inside the caller's transaction and holds a share
    lock on the period row until it commits, so a close cannot start in between."""
    period = C.period_containing(now, anchor_day, tz)
    write_first = serializes_writers()
    while True:
        if write_first:  # take SQLite's write lock before reading the status it must rely on
            ensure_period_row(tenant_id, livemode, period)
        status = period_status_locked(tenant_id, livemode, period.start)
        if status is None:
            ensure_period_row(tenant_id, livemode, period)
            status = period_status_locked(tenant_id, livemode, period.start)
        if status == "open":
            return period
        period = C.next_period(period, anchor_day, tz)


def period_status_locked(tenant_id: str, livemode: bool, start: date) -> str | None:
    """The period's status, share-locked (PostgreSQL) until the transaction ends: the close
    cannot mark it closing meanwhile. None when nothing has happened in the period yet."""
    return run(_period_status_query(dialect_name()),
               {"tenant_id": tenant_id, "livemode": livemode, "start": start}).scalar()


@functools.cache
def _period_status_query(dialect: str) -> sa.Select:
    """Built once per dialect: intake runs it for every bill."""
    periods = PeriodRecord.__table__.c
    query = sa.select(periods.status).where(
        periods.tenant_id == sa.bindparam("tenant_id"), periods.livemode == sa.bindparam("livemode"),
        periods.start == sa.bindparam("start"))
    return locking(query, dialect, read=True)


# --- periods as operators see them --------------------------------------------------------

@dataclass(frozen=True)
class PeriodView:
    """A period as operators see it: its bounds, its state, and whether it has ended on the
    tenant's clock (an ended period still open is waiting for its close)."""

    start: date
    end: date
    start_at: datetime
    end_at: datetime
    status: str
    ended: bool
    livemode: bool
    closing_at: datetime | None = None
    closed_at: datetime | None = None
    waiting: str | None = None


def _period_view(record: PeriodRecord, now: datetime) -> PeriodView:
    return PeriodView(record.start, record.end, record.start_at, record.end_at, record.status,
                      now >= record.end_at, record.livemode, record.closing_at, record.closed_at, record.waiting)


def list_periods(principal: Principal, now: datetime, limit: int, starting_after: date | None = None,
                 status: str | None = None) -> Page:
    """The periods in which something has happened (a bill, a close), newest first; paginated by
    period name (`starting_after` = a period's start date)."""
    query = sa.select(PeriodRecord).where(PeriodRecord.tenant_id == principal.tenant_id,
                                          PeriodRecord.livemode == principal.livemode)
    if status:
        query = query.where(PeriodRecord.status == status)
    page = paginate(query, PeriodRecord.start, limit, starting_after)
    return Page([_period_view(r, now) for r in page.data], page.has_more)


def get_period(principal: Principal, start: date, now: datetime) -> PeriodView:
    """The tenant's period starting on `start`: recorded, or (nothing has happened in it yet)
    open, as its calendar defines it."""
    record = db.session.get(PeriodRecord, (principal.tenant_id, principal.livemode, start))
    if record is not None:
        return _period_view(record, now)
    settings = db.session.get(TenantSettings, (principal.tenant_id, principal.livemode))
    period = tenant_period(settings, start)
    return PeriodView(period.start, period.end, period.start_at, period.end_at, "open",
                      now >= period.end_at, principal.livemode)


def parse_period_name(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise NotFound(f"No such period: {text!r} (periods are named by their start date, "
                       "e.g. 2026-10-25).") from exc
