"""The dispatcher: works through the outbox, handing each event to its subscribers (webhook
endpoints, emails), which record what they must deliver, in the same transaction that marks the
event dispatched. Deliveries are then sent by their own queues, retried on their own schedules.

Events are claimed in the order they were written (FOR UPDATE SKIP LOCKED on PostgreSQL): any
number of dispatchers share the outbox and an event is fanned out once; a dispatcher killed
half way rolls back, and the events are dispatched again by another."""
from __future__ import annotations

from datetime import datetime
from typing import Callable, Sequence

import sqlalchemy as sa

from ..db import db, skip_locked
from ..due import Lane, Queue, Worked
from ..faults import crash_point
from .models import Event

#: A subscriber records, in the caller's transaction, what it must deliver for these events.
Subscriber = Callable[[Sequence[Event], datetime], None]


_subscribers: list[Subscriber] = []


def subscribe(subscriber: Subscriber) -> None:
    """Hand every dispatched batch of events to `subscriber`, after those subscribed before it
    (the composition root subscribes webhooks, then emails: aggregator.wiring). Subscribing it
    twice is one subscription."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def subscribers() -> list[Subscriber]:
    """Every subscriber of the outbox, in the order subscribed."""
    return list(_subscribers)


def dispatch_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """Claim up to `limit` undispatched events (oldest first), fan them out and mark them
    dispatched, in one transaction. -> how many were dispatched."""
    query = (sa.select(Event).where(Event.dispatched.is_(False)).order_by(Event.seq).limit(limit))
    if lane is not None:
        query = query.where(Event.tenant_id == lane.tenant_id, Event.livemode == lane.livemode)
    query = skip_locked(query)
    events = db.session.scalars(query).all()
    if not events:
        db.session.rollback()
        return Worked()
    for subscriber in subscribers():
        subscriber(events, now)
    db.session.execute(sa.update(Event).where(Event.seq.in_([e.seq for e in events]))
                       .values(dispatched=True).execution_options(synchronize_session=False))
    crash_point("events.dispatch.before_commit")
    db.session.commit()
    crash_point("events.dispatch.after_commit")
    return Worked(done=len(events))


def backlog() -> tuple[int, datetime | None]:
    """Undispatched events (the outbox's backlog), and when the oldest live-mode one was written
    (test mode's `created` is its clock's time, not real time)."""
    row = db.session.execute(sa.select(sa.func.count(), sa.func.min(sa.case((Event.livemode, Event.created))))
                             .where(Event.dispatched.is_(False))).one()
    return row[0], row[1]


DISPATCH_QUEUE = Queue("events.dispatch", dispatch_batch, batch=500, backlog=backlog)
