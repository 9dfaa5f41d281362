"""The guarded transitions of a period: recorded open -> closing -> closed. The only code that
writes a period's status, and where `period.closed` is written, in the same transaction."""
from __future__ import annotations

from datetime import date, datetime
from typing import Sequence

from ..db import db, dialect_insert
from ..events.service import NewEvent, record
from ..states import guarded_update
from .models import PERIOD_STATES, PeriodRecord

_periods = PeriodRecord.__table__


def create(tenant_id: str, livemode: bool, start: date, end: date, start_at: datetime, end_at: datetime) -> bool:
    """Record a period (open) if it is not recorded yet. -> whether it was new."""
    return bool(db.session.execute(dialect_insert(_periods).values(
        tenant_id=tenant_id, livemode=livemode, start=start, end=end, start_at=start_at, end_at=end_at,
        status=PERIOD_STATES.initial,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode", "start"])).rowcount)


def _this(tenant_id: str, livemode: bool, start: date):
    return _periods.c.tenant_id == tenant_id, _periods.c.livemode == livemode, _periods.c.start == start


def start_closing(tenant_id: str, livemode: bool, start: date, now: datetime) -> bool:
    """open -> closing: from now on no bill enters or leaves the period (intake and cancel hold
    the period row's lock, which this takes exclusively). A close run again clears what made
    an earlier run wait. -> whether it was open."""
    opened = db.session.execute(guarded_update(PERIOD_STATES, _periods, "closing", *_this(tenant_id, livemode, start),
                                               closing_at=now)).rowcount
    db.session.execute(_periods.update().where(*_this(tenant_id, livemode, start), _periods.c.status == "closing")
                       .values(waiting=None))
    return bool(opened)


def wait(tenant_id: str, livemode: bool, start: date, reason: str) -> None:
    """The close ran and some customers could not be invoiced yet: it is not run again by itself
    until something that may unblock it happens (see unblock)."""
    db.session.execute(_periods.update().where(*_this(tenant_id, livemode, start), _periods.c.status == "closing")
                       .values(waiting=reason))


def unblock(tenant_id: str, livemode: bool) -> int:
    """Closes waiting in this lane may now complete (an FX rate was set): due again."""
    return db.session.execute(_periods.update().where(
        _periods.c.tenant_id == tenant_id, _periods.c.livemode == livemode, _periods.c.waiting.is_not(None))
        .values(waiting=None)).rowcount


def finish_closing(tenant_id: str, livemode: bool, start: date, now: datetime, closed: NewEvent,
                   also: Sequence[NewEvent] = ()) -> bool:
    """closing -> closed, with its `period.closed` event and any others announcing the close
    (`bills.invoiced`). -> whether it was closing (False: closed already)."""
    changed = db.session.execute(guarded_update(PERIOD_STATES, _periods, "closed", *_this(tenant_id, livemode, start),
                                                closed_at=now, waiting=None)).rowcount
    if changed:
        record(tenant_id, livemode, now, [closed, *also])
    return bool(changed)
