"""Usage events: a provider reports usage of a meter by one of its subscriptions at an instant
(docs/metering.md). Each event is stored once per (provider, id) — a replay answers the stored
event, another payload under the same id is a conflict — and folded into the rollups in the
same transaction. Its timestamp decides its period: a period already closing or closed takes no
more usage (the period row's share lock holds it open while the events go in), nor one more than
5 minutes ahead of the tenant's clock, nor one when its subscription was not active."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from ..accounts.keys import Principal
from ..catalog.models import Meter, Subscription
from ..db import db, in_ids, is_postgres, run, unnested, write_lock
from ..errors import Conflict, DomainError, InvalidInput, NotFound
from ..faults import crash_point
from ..periods import calendar as C
from ..periods.service import ensure_period_row, period_status_locked
from . import aggregation as A
from .store import MeterInfo, SqlUsageStore, Stored, UsageStore

#: How far ahead of the tenant's clock an event may be (clock skew between systems).
FUTURE_LEEWAY = timedelta(minutes=5)
#: The largest magnitude of a stored value (scaled by the meter's decimals): time-weighted
#: integrals of an hour (value × ms) then stay within 64 bits.
MAX_SCALED = 10**15
MAX_SCALED_TIME_WEIGHTED = 10**12
#: The longest key of an event's dimension values (the rollups' `dims` column).
MAX_DIMS_KEY = 500
_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?")


@dataclass(frozen=True, slots=True)
class UsageEventRequest:
    id: str
    subscription: str  # the subscription's id or the provider's external billing id
    meter: str
    timestamp: datetime
    value: Any = None  # a decimal string or an integer, per the meter (None: count meters)
    properties: Mapping[str, Any] = field(default_factory=dict)
    # whether the sender gave the timestamp (else it is the instant received): a retry of an
    # event sent without one is the same event, though it arrives later
    timestamp_sent: bool = True


@dataclass(frozen=True, slots=True)
class UsageEventView:
    id: str
    subscription: str
    meter: str
    value: str | None
    timestamp: datetime
    properties: Mapping[str, Any]
    period: date
    received_at: datetime
    livemode: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    event: UsageEventView | None = None
    replayed: bool = False
    error: DomainError | None = None


class PeriodClosed(Conflict):
    code = "period_closed"


class SubscriptionNotActive(Conflict):
    code = "subscription_not_active"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


def _on(category: type[DomainError], name: str, message: str, code: str | None = None) -> DomainError:
    return category.on(name, message, code)


def parse_value(raw: Any, meter: Meter) -> int:
    """The event's value for `meter` as an integer scaled by 10^decimals: a whole JSON number or
    a decimal string with at most the meter's decimals; never a JSON fraction (a float)."""
    if isinstance(raw, bool) or raw is None:
        raise ValueError("A value is required: a whole number or a decimal string.")
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        raise ValueError('A value with decimals is a decimal string such as "12.5", never a JSON number.')
    if len(text) > 40 or not _NUMBER.fullmatch(text):
        raise ValueError(f"{text[:40]!r} is not a decimal number.")
    whole, _, fraction = text.lstrip("-").partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > meter.decimals:
        raise ValueError(f"The meter {meter.code!r} takes values with at most {meter.decimals} decimal places.")
    scaled = int(whole) * 10**meter.decimals + (int(fraction) * 10 ** (meter.decimals - len(fraction))
                                                if fraction else 0)
    limit = MAX_SCALED_TIME_WEIGHTED if meter.aggregation == A.TIME_WEIGHTED else MAX_SCALED
    if scaled >= limit:
        raise ValueError(f"The value's magnitude must be below {limit // 10**meter.decimals:,}.")
    return -scaled if text.startswith("-") else scaled


def format_value(scaled: int, decimals: int) -> str:
    return A.format_quantity(A.Fraction(scaled, 10**decimals), decimals) if decimals else str(scaled)


def _fingerprint(subscription_id: str, meter_id: str, value: int, timestamp: datetime | None,
                 properties: Mapping[str, Any]) -> bytes:
    sent = timestamp and timestamp.isoformat()
    return hashlib.sha256(orjson.dumps([subscription_id, meter_id, value, sent, properties],
                                       option=orjson.OPT_SORT_KEYS)).digest()


def record_usage_events(principal: Principal, requests: Sequence[UsageEventRequest], now: datetime,
                        store: UsageStore | None = None) -> list[Outcome]:
    """Store each event once (accepted or refused on its own), in one transaction."""
    store = store or SqlUsageStore()
    write_lock()  # SQLite: take the write lock before reading the periods' status and stored ids
    outcomes: list[Outcome | None] = [None] * len(requests)
    meters = _meters(principal, {r.meter for r in requests})
    subs = _subscriptions(principal, {r.subscription for r in requests})
    rows: list[dict] = []
    row_of: dict[str, dict] = {}
    first_of: dict[str, int] = {}
    periods: dict[date, C.Period] = {}
    for i, request in enumerate(requests):
        try:
            row = _row(principal, request, meters, subs, now, periods)
        except DomainError as error:
            outcomes[i] = Outcome(error=error)
            continue
        if request.id in first_of:
            continue  # settled below against the first event with this id
        first_of[request.id] = i
        rows.append(row)
        row_of[request.id] = row
    prepare = getattr(store, "prepare", None)  # partitions first: before this transaction reads the store
    if prepare is not None and periods:
        prepare(sorted(periods))
    stored = store.stored(principal.provider_id, [r.id for r in requests])
    statuses = _open_periods(principal, sorted({row["period_start"] for row in rows
                                                if row["event_id"] not in stored}), periods, now)
    fresh: list[dict] = []
    for row in rows:
        if row["event_id"] in stored:
            continue
        if statuses.get(row["period_start"]) is not None:
            outcomes[first_of[row["event_id"]]] = Outcome(error=statuses[row["period_start"]])
            continue
        fresh.append(row)
    # one lock order across concurrent batches (the id last: equal keys otherwise in any order)
    fresh.sort(key=lambda r: (r["subscription_id"], r["meter_id"], r["dims"], r["timestamp"], r["event_id"]))
    created = store.record(fresh, {m.id: _info(m) for m in meters.values()})
    unused = {m.id for m in meters.values() if m.first_event_at is None}
    if created and unused:
        _mark_used({row["meter_id"] for row in fresh} & unused, now)
    missing = [row["event_id"] for row in fresh if (row["period_start"], row["event_id"]) not in created]
    if missing:  # stored meanwhile by a concurrent request
        stored.update(store.stored(principal.provider_id, missing))
    by_id = {m.id: m for m in meters.values()}
    sub_ref = {s.id: s for s in subs.values()}
    for i, request in enumerate(requests):
        existing = stored.get(request.id)
        if existing is not None:  # a stored id decides, even for an event refused above (as for bills)
            outcomes[i] = _replay_or_conflict(existing, request, meters, subs, by_id, sub_ref, principal)
            continue
        if outcomes[i] is not None:
            continue
        row = row_of[request.id]
        if first_of[request.id] == i:
            outcomes[i] = Outcome(event=_view(row, by_id[row["meter_id"]], sub_ref[row["subscription_id"]],
                                              principal.livemode))
        elif (refused := outcomes[first_of[request.id]]) is not None and refused.error is not None:
            outcomes[i] = refused  # a later copy of an event refused (e.g. its period closed): refused alike
        else:  # a later duplicate within the batch
            first = row_of[request.id]
            same = first["fingerprint"] == _request_fingerprint(request, meters, subs)
            outcomes[i] = (Outcome(event=_view(first, by_id[first["meter_id"]], sub_ref[first["subscription_id"]],
                                               principal.livemode), replayed=True) if same else
                           Outcome(error=_conflict(request.id)))
    if fresh:
        from .thresholds import check_thresholds  # the thresholds the new usage crossed, once each
        check_thresholds(principal, [row for row in fresh if (row["period_start"], row["event_id"]) in created],
                         by_id, sub_ref, store, now)
    crash_point("metering.record.before_commit")
    db.session.commit()
    return outcomes  # type: ignore[return-value]


def _conflict(event_id: str) -> DomainError:
    return IdempotencyConflict.on("id", f"An event with id {event_id!r} was already stored with other content.")


def _request_fingerprint(request: UsageEventRequest, meters, subs) -> bytes | None:
    meter, sub = meters.get(request.meter), subs.get(request.subscription)
    if meter is None or sub is None:
        return None
    try:
        value = _value_of(request, meter)
    except ValueError:
        return None
    return _fingerprint(sub.id, meter.id, value, request.timestamp if request.timestamp_sent else None,
                        dict(request.properties or {}))


def _replay_or_conflict(existing: Stored, request: UsageEventRequest, meters, subs, by_id, sub_ref,
                        principal: Principal) -> Outcome:
    if _request_fingerprint(request, meters, subs) != existing.fingerprint:
        return Outcome(error=_conflict(request.id))
    meter = by_id.get(existing.meter_id) or db.session.get(Meter, existing.meter_id)
    sub = sub_ref.get(existing.subscription_id) or db.session.get(Subscription, existing.subscription_id)
    row = {"event_id": existing.event_id, "subscription_id": existing.subscription_id, "meter_id": existing.meter_id,
           "value": existing.value, "timestamp": existing.timestamp, "properties": existing.properties,
           "period_start": existing.period_start, "received_at": existing.received_at}
    return Outcome(event=_view(row, meter, sub, principal.livemode), replayed=True)


def _value_of(request: UsageEventRequest, meter: Meter) -> int:
    if meter.aggregation == A.COUNT:
        return 1 if request.value is None else parse_value(request.value, meter)
    if meter.aggregation == A.UNIQUE_COUNT:
        return 1
    raw = (request.properties or {}).get(meter.field) if meter.field else request.value
    return parse_value(raw, meter)


def _row(principal: Principal, request: UsageEventRequest, meters: Mapping[str, Meter],
         subs: Mapping[str, Any], now: datetime, periods: dict[date, C.Period]) -> dict:
    meter = meters.get(request.meter)
    if meter is None:
        raise _on(NotFound, "meter", f"No meter {request.meter!r}.", "unknown_meter")
    sub = subs.get(request.subscription)
    if sub is None:
        raise _on(NotFound, "subscription", f"No subscription {request.subscription!r} of yours in "
                                            f"{principal.mode} mode.", "unknown_subscription")
    properties = dict(request.properties or {})
    try:
        value = _value_of(request, meter)
    except ValueError as exc:
        raise _on(InvalidInput, f"properties.{meter.field}" if meter.field and meter.aggregation != A.COUNT
                  else "value", str(exc)) from None
    unique = None
    if meter.aggregation == A.UNIQUE_COUNT:
        unique = properties.get(meter.field)
        if unique is None or isinstance(unique, (dict, list)) or len(str(unique)) > 255:
            raise _on(InvalidInput, f"properties.{meter.field}", f"The meter {meter.code!r} counts the distinct "
                                                                 f"values of the property {meter.field!r}: give it.")
    at = request.timestamp
    if at > now + FUTURE_LEEWAY:
        raise _on(InvalidInput, "timestamp", f"{at.isoformat()} is more than 5 minutes ahead of the tenant's clock "
                                             f"({now.isoformat()}).", "timestamp_in_future")
    if at < sub.starts_at or (sub.ends_at is not None and at >= sub.ends_at):
        raise _on(SubscriptionNotActive, "timestamp", f"The subscription {sub.id} was not active at "
                                                      f"{at.isoformat()}.")
    dims = A.dims_key(meter.dimensions or (), properties)
    if len(dims) > MAX_DIMS_KEY:
        raise _on(InvalidInput, "properties", f"The values of the meter's dimensions take {len(dims)} characters "
                                              f"together; at most {MAX_DIMS_KEY}.")
    period = C.period_containing(at, principal.period_anchor_day, principal.timezone)
    periods[period.start] = period
    return {"period_start": period.start, "provider_id": principal.provider_id, "event_id": request.id,
            "tenant_id": principal.tenant_id, "livemode": principal.livemode, "subscription_id": sub.id,
            "meter_id": meter.id, "timestamp": at, "value": value,
            "dims": dims, "properties": properties,
            "fingerprint": _fingerprint(sub.id, meter.id, value, at if request.timestamp_sent else None, properties),
            "received_at": now,
            "unique": None if unique is None else str(unique)}


def _open_periods(principal: Principal, starts: Sequence[date], periods: Mapping[date, C.Period],
                  now: datetime) -> dict[date, DomainError | None]:
    """Share-lock each period's row (in date order) and say which takes no more usage."""
    out: dict[date, DomainError | None] = {}
    for start in starts:
        status = period_status_locked(principal.tenant_id, principal.livemode, start)
        if status is None and periods[start].end_at > now:
            ensure_period_row(principal.tenant_id, principal.livemode, periods[start])
            status = period_status_locked(principal.tenant_id, principal.livemode, start)
        out[start] = None if status == "open" else _on(
            PeriodClosed, "timestamp", f"The period {start.isoformat()} is "
                                       f"{'closing or closed' if status else 'over'}: it takes no more usage.")
    return out


def _meters(principal: Principal, codes: set[str]) -> dict[str, Meter]:
    m = Meter.__table__.c
    # Not locked: a share lock here and _mark_used's update of a meter's first events would
    # deadlock concurrent first batches (docs/metering.md, known gaps: a meter changed while its
    # very first events go in)
    return {row.code: row for row in db.session.scalars(sa.select(Meter).where(
        m.tenant_id == principal.tenant_id, m.livemode == principal.livemode, m.code.in_(sorted(codes))))}


def _subscriptions(principal: Principal, refs: set[str]) -> dict[str, Any]:
    s = Subscription.__table__.c
    refs_list = sorted(refs)
    query = sa.select(s.id, s.external_billing_id, s.starts_at, s.ends_at, s.customer_id, s.plan_id).where(
        s.tenant_id == principal.tenant_id, s.livemode == principal.livemode, s.provider_id == principal.provider_id)
    if is_postgres():  # each column by its own index, the refs joined (an OR of two `= ANY` scanned the table)
        def joined(column):
            wanted = unnested(refs_list, column, f"refs_{column.name}")
            return query.join_from(Subscription.__table__, wanted, column == wanted.c.id)
        rows = run(sa.union_all(joined(s.id), joined(s.external_billing_id))).all()
    else:
        rows = run(query.where(sa.or_(in_ids(s.id, refs_list), in_ids(s.external_billing_id, refs_list)))).all()
    out: dict[str, Any] = {}
    for row in rows:
        if row.external_billing_id in refs:
            out[row.external_billing_id] = row
    for row in rows:
        if row.id in refs:
            out[row.id] = row  # an id wins over an external billing id that happens to equal it
    return out


def _info(meter: Meter) -> MeterInfo:
    return MeterInfo(meter.id, meter.aggregation, meter.reset, meter.decimals, meter.field,
                     tuple(meter.dimensions or ()))


def _mark_used(meter_ids: set[str], now: datetime) -> None:
    m = Meter.__table__.c
    run(sa.update(Meter.__table__).where(m.id.in_(sorted(meter_ids)), m.first_event_at.is_(None))
        .values(first_event_at=now))


def _view(row: Mapping[str, Any], meter: Meter, sub: Any, livemode: bool) -> UsageEventView:
    return UsageEventView(row["event_id"], sub.id, meter.code,
                          None if meter.aggregation in (A.COUNT, A.UNIQUE_COUNT) and row["value"] == 1
                          else format_value(row["value"], meter.decimals),
                          row["timestamp"], row["properties"], row["period_start"], row["received_at"], livemode)


def event_document(view: UsageEventView) -> dict[str, Any]:
    return {"id": view.id, "object": "usage_event", "subscription": view.subscription, "meter": view.meter,
            "value": view.value, "timestamp": view.timestamp.isoformat(), "properties": dict(view.properties),
            "period": view.period.isoformat(), "received_at": view.received_at.isoformat(),
            "livemode": view.livemode}
