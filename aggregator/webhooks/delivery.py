"""Delivering events to webhook endpoints: the outbox's subscriber queues one delivery per
(endpoint, event), and the `webhooks.deliver` queue sends them.

Fan-out (inside the dispatcher's transaction, no network): for every event, each enabled
endpoint of its tenant and mode that takes its type (and, for a provider's endpoint, is about
that provider) gets a delivery row; a unique index makes a second fan-out of the same event a
no-op.

Sending (any number of workers): a batch of ready deliveries is claimed with a lease (FOR UPDATE
SKIP LOCKED on PostgreSQL) and committed, oldest first (so, per endpoint, in the order the events
were written, as far as retries allow); the batch is posted concurrently by the sender; every
attempt is recorded. A 2xx answer delivers; anything else is retried on the schedule (real
time), after which the delivery has failed, its endpoint is disabled and
`webhook_endpoint.disabled` is recorded. A disabled or deleted endpoint's pending deliveries are
not sent (they resume if it is enabled again)."""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Sequence

import orjson
import sqlalchemy as sa

from ..db import bulk_insert, db, dialect_insert, new_ordered_id, skip_locked
from ..due import Lane, Queue, Worked, lease, waiting
from ..events.models import Event
from ..events.schemas import EventSchema
from ..faults import crash_point
from . import transitions
from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .schedule import MAX_ATTEMPTS, retry_delay
from .sender import TOTAL_TIMEOUT, Outcome, Outgoing
from .signing import signed_headers

log = logging.getLogger(__name__)

BATCH = 512


def subscribed(endpoint, event) -> bool:
    """Does this endpoint take this event? (its types; a provider's endpoint: about that provider)"""
    if endpoint.provider_id is not None and endpoint.provider_id != event.provider_id:
        return False
    return "*" in endpoint.enabled_events or event.type in endpoint.enabled_events


def queue_deliveries(pairs: Sequence[tuple[str, Event]], now: datetime, *, resend: bool = False) -> list[str]:
    """Insert a delivery, ready now, per (endpoint id, event), in the caller's transaction.
    Fan-out (not resend): a pair already queued is skipped. -> the ids of the rows written."""
    rows = [{"id": new_ordered_id("whd"), "endpoint_id": endpoint_id, "event_id": event.id,
             "event_type": event.type, "tenant_id": event.tenant_id, "livemode": event.livemode,
             "resend": resend, "next_attempt_at": now, "created_at": now} for endpoint_id, event in pairs]
    if not rows:
        return []
    table = WebhookDelivery.__table__
    insert = dialect_insert(table)
    if not resend:
        insert = insert.on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"],
                                               index_where=sa.text("NOT resend"))
    db.session.execute(insert, rows)
    return [row["id"] for row in rows]


def fan_out(events: Sequence[Event], now: datetime) -> None:
    """The outbox subscriber: queue each event for every enabled endpoint that takes it."""
    endpoints = WebhookEndpoint.__table__.c
    lanes = {(e.tenant_id, e.livemode) for e in events}
    found = db.session.execute(
        sa.select(endpoints.id, endpoints.tenant_id, endpoints.livemode, endpoints.provider_id,
                  endpoints.enabled_events)
        .where(endpoints.status == "enabled", endpoints.deleted_at.is_(None),
               sa.tuple_(endpoints.tenant_id, endpoints.livemode).in_(sorted(lanes)))).all()
    if not found:
        return
    by_lane = defaultdict(list)
    for endpoint in found:
        by_lane[(endpoint.tenant_id, endpoint.livemode)].append(endpoint)
    queue_deliveries([(endpoint.id, event) for event in events
                      for endpoint in by_lane[(event.tenant_id, event.livemode)] if subscribed(endpoint, event)], now)


def _lease(count: int, workers: int) -> timedelta:
    """Longer than sending `count` deliveries can take, each at most TOTAL_TIMEOUT (plus DNS)."""
    return lease(timedelta(seconds=60 + (TOTAL_TIMEOUT + 5) * math.ceil(count / max(1, workers))))


def claim_deliveries(now: datetime, limit: int, lane: Lane | None = None, workers: int = 32) -> list[str]:
    """Claim up to `limit` ready deliveries (pending, due, not leased, endpoint enabled),
    earliest due first and then in creation order (a fan-out's deliveries are due together),
    and commit. Concurrent claimers get others (SKIP LOCKED; SQLite serializes)."""
    d, endpoints = WebhookDelivery.__table__.c, WebhookEndpoint.__table__.c
    sendable = sa.select(endpoints.id).where(endpoints.status == "enabled", endpoints.deleted_at.is_(None))
    ready = (sa.select(d.id)
             .where(d.status == "pending", d.next_attempt_at <= now,
                    sa.or_(d.locked_until.is_(None), d.locked_until < now), d.endpoint_id.in_(sendable))
             .order_by(d.next_attempt_at, d.id).limit(limit))
    if lane is not None:
        ready = ready.where(d.tenant_id == lane.tenant_id, d.livemode == lane.livemode)
    ready = skip_locked(ready, of=WebhookDelivery.__table__)
    ids = db.session.execute(sa.update(WebhookDelivery.__table__).where(d.id.in_(ready))
                             .values(locked_until=now + _lease(limit, workers))
                             .returning(d.id)).scalars().all()
    db.session.commit()
    if ids:
        crash_point("webhooks.claim.after_commit")
    return sorted(ids)


_EVENT_SCHEMA = EventSchema()  # built once: building a schema costs more than dumping an event


def event_body(event: Event) -> bytes:
    """What is POSTed: the event as GET /v1/events/{id} shows it, as compact JSON."""
    return orjson.dumps(_EVENT_SCHEMA.dump(event))


def _secrets_in_force(endpoint, vault, now: datetime) -> list[str]:
    secrets = [vault.unseal(endpoint.secret_sealed)]
    if endpoint.previous_secret_sealed and endpoint.previous_secret_expires_at \
            and endpoint.previous_secret_expires_at > now:
        secrets.append(vault.unseal(endpoint.previous_secret_sealed))
    return secrets


def send_claimed(ids: Sequence[str], adapters, now: datetime) -> Worked:
    """POST the claimed deliveries concurrently (signed as of `now`) and record the outcomes."""
    d, endpoints = WebhookDelivery.__table__.c, WebhookEndpoint.__table__.c
    rows = db.session.execute(
        sa.select(d.id, d.attempt_count, d.endpoint_id, d.event_id, endpoints.url, endpoints.secret_sealed,
                  endpoints.previous_secret_sealed, endpoints.previous_secret_expires_at)
        .join(WebhookEndpoint.__table__, endpoints.id == d.endpoint_id).where(d.id.in_(list(ids)))
        .order_by(d.id)).all()
    events = {e.id: e for e in db.session.execute(  # rows, not ORM objects: the schema reads their attributes
        sa.select(*Event.__table__.c).where(Event.id.in_({r.event_id for r in rows})))}
    bodies = {event_id: event_body(event) for event_id, event in events.items()}
    secrets = {r.endpoint_id: _secrets_in_force(r, adapters.vault, now) for r in rows}
    timestamp = int(now.timestamp())
    outcomes = adapters.webhooks.send_many([
        Outgoing(r.url, bodies[r.event_id], signed_headers(secrets[r.endpoint_id], r.event_id, timestamp,
                                                           bodies[r.event_id])) for r in rows])
    crash_point("webhooks.send.after_post")
    return record_outcomes(rows, outcomes, adapters, now)


def record_outcomes(rows, outcomes: Sequence[Outcome], adapters, now: datetime) -> Worked:
    """Record each attempt (its classified error: the detail goes to the log, never to the
    tenant); deliver, reschedule or give up; disable the endpoints given up on."""
    for r, o in zip(rows, outcomes):
        if o.detail:
            log.warning("webhook delivery %s (endpoint %s): %s: %s", r.id, r.endpoint_id, o.error, o.detail)
    bulk_insert(WebhookAttempt.__table__, [
        {"delivery_id": r.id, "attempted_at": now, "status_code": o.status_code, "duration_ms": o.duration_ms,
         "error": o.error} for r, o in zip(rows, outcomes)])
    released = {"locked_until": None}
    delivered = [r.id for r, o in zip(rows, outcomes) if o.delivered]
    transitions.finish_deliveries(delivered, "delivered", attempt_count=WebhookDelivery.attempt_count + 1,
                                  next_attempt_at=None, **released)
    retries, given_up = defaultdict(list), []
    for row, outcome in zip(rows, outcomes):
        if not outcome.delivered:
            attempts = row.attempt_count + 1
            (retries[attempts].append(row.id) if attempts < MAX_ATTEMPTS else given_up.append((row, outcome)))
    d = WebhookDelivery.__table__.c
    for attempts, ids in retries.items():
        db.session.execute(sa.update(WebhookDelivery.__table__).where(d.id.in_(ids)).values(
            attempt_count=attempts, next_attempt_at=now + retry_delay(attempts), **released))
    transitions.finish_deliveries([row.id for row, _ in given_up], "failed", attempt_count=MAX_ATTEMPTS,
                                  next_attempt_at=None, **released)
    for row, outcome in {row.endpoint_id: (row, outcome) for row, outcome in given_up}.values():
        _disable(row, outcome, adapters)
    db.session.commit()
    crash_point("webhooks.record.after_commit")
    return Worked(done=len(delivered), failed=len(rows) - len(delivered))


def _disable(row, outcome: Outcome, adapters) -> None:
    from .schemas import WebhookEndpointSchema

    endpoint = db.session.get(WebhookEndpoint, row.endpoint_id)
    created = adapters.clocks.for_tenant(endpoint.tenant_id, endpoint.livemode).now()
    reason = (f"Deliveries failed for about three days ({MAX_ATTEMPTS} attempts); "
              f"the last: {outcome.error or 'no answer'}.")
    if transitions.disable_failing_endpoint(endpoint.id, reason, created, WebhookEndpointSchema().dump, {
            "last_error": outcome.error, "last_status_code": outcome.status_code,
            "failed_delivery": row.id, "failed_event": row.event_id}):
        log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)


def deliver_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """The queue's unit: claim ready deliveries and send them (nothing without a sender)."""
    if adapters.webhooks is None:
        return Worked()
    ids = claim_deliveries(now, limit, lane, adapters.webhooks.workers)
    return send_claimed(ids, adapters, now) if ids else Worked()


def backlog():
    """Deliveries waiting (first attempts and retries), and the oldest one's creation."""
    deliveries = WebhookDelivery.__table__
    return waiting(deliveries, deliveries.c.status == "pending")


DELIVERY_QUEUE = Queue("webhooks.deliver", deliver_batch, batch=BATCH, backlog=backlog)
