"""The usage store (docs/metering.md, docs/scaling.md): where usage events go and how rating,
current usage, thresholds and the export read them back. A small port, `UsageStore`, so that a
platform that outgrows one PostgreSQL can put a columnar engine (ClickHouse) or distributed
PostgreSQL (Citus) behind the same calls; `SqlUsageStore` is the one this service ships, on the
service's own database (PostgreSQL, or SQLite for a first run).

SqlUsageStore keeps raw events in `usage_events` (on PostgreSQL partitioned by period, one
partition a month, created as events arrive) and maintains `usage_rollups` (one row per
subscription, meter, dimension values, period and UTC hour) in the same transaction as the
events, so no reader ever rescans raw events: rating a period reads its rollups, current usage
one subscription's."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Protocol

import sqlalchemy as sa

from ..db import (
    db,
    dialect_insert,
    first_by,
    greatest,
    in_ids,
    insert_rows,
    is_postgres,
    json_rows,
    json_select,
    run,
    unnested,
)
from . import aggregation as A
from .models import UsageEvent, UsageRollup, UsageUnique

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MeterInfo:
    """What the store needs of a meter."""

    id: str
    aggregation: str
    reset: str
    decimals: int
    field: str | None
    dimensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stored:
    """An event as stored (what a replay answers)."""

    period_start: date
    provider_id: str
    event_id: str
    subscription_id: str
    meter_id: str
    timestamp: datetime
    value: int
    properties: dict
    fingerprint: bytes
    received_at: datetime


class UsageStore(Protocol):
    def prepare(self, period_starts: Iterable[date]) -> None:
        """Make room for events of these periods, before the caller's transaction reads or
        writes the store (on PostgreSQL: their month's partitions, committed apart)."""

    def record(self, rows: Sequence[dict], meters: Mapping[str, MeterInfo]) -> set[tuple[date, str]]:
        """Store the events not stored yet (rows as UsageEvent's columns) and fold them into
        the rollups, in the caller's transaction. -> (period_start, event_id) of those stored."""

    def stored(self, provider_id: str, event_ids: Sequence[str]) -> dict[str, Stored]:
        """The provider's events with these ids (any period)."""

    def hours(self, subscription_ids: Sequence[str], meter_ids: Sequence[str], period_start: date,
              until: datetime | None = None, all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[A.Hour]]:
        """(subscription, meter) -> its rollups in the period (up to the hour holding `until`),
        and for the meters in `all_periods` (reset: never) in every period up to this one."""

    def totals(self, subscription_ids: Sequence[str], meters: Mapping[str, str], period_start: date,
               until: datetime | None = None, all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[A.Hour]]:
        """As `hours` for these meters (id -> aggregation, none time_weighted), each
        (subscription, meter, dims)'s hours collapsed into one (aggregation.collapse; the
        first and last values may be 0 unless a meter is `latest`: no quantity reads them)."""

    def carried(self, subscription_ids: Sequence[str], meter_ids: Sequence[str],
                before: date) -> dict[tuple[str, str], dict[str, int]]:
        """(subscription, meter) -> dims -> the last value sampled in a period before `before`."""

    def uniques(self, subscription_ids: Sequence[str], meter_ids: Sequence[str], period_start: date,
                all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[tuple[str, str]]]:
        """(subscription, meter) -> (dims, value) distinct values seen."""

    def export(self, tenant_id: str, livemode: bool, period_start: date) -> Iterator[sa.Row]:
        """The period's rollups in (subscription, meter, dims, hour) order."""


class SqlUsageStore:
    """The store on the service's database."""


    # --- writing -------------------------------------------------------------------------------

    def prepare(self, period_starts: Iterable[date]) -> None:
        """On PostgreSQL, the partitions of these periods' months. Creating one (on a connection of
        its own) waits for every transaction that has read usage_events to end: the caller's own
        must not have yet, or it would wait for itself forever."""
        if is_postgres():
            self._ensure_partitions(period_starts)

    def record(self, rows: Sequence[dict], meters: Mapping[str, MeterInfo]) -> set[tuple[date, str]]:
        """(The caller called `prepare` for these rows' periods before its transaction read any event.)"""
        if not rows:
            return set()
        self.prepare({row["period_start"] for row in rows})
        keys = self._insert(rows)
        fresh = [row for row in rows if (row["period_start"], row["event_id"]) in keys]
        self._fold(fresh, meters)
        return keys

    def _insert(self, rows: Sequence[dict]) -> set[tuple[date, str]]:
        """INSERT the events whose (period, provider, id) is not stored yet -> their keys (a
        statement per period: insert_rows returns a column, the event's id)."""
        table = UsageEvent.__table__
        columns = [c.name for c in table.c]
        rows = [{name: row[name] for name in columns} for row in rows]  # not the intake's extra keys
        period_of = {row["event_id"]: row["period_start"] for row in rows}  # an id once a call (the caller's)
        return {(period_of[event_id], event_id) for event_id in insert_rows(
            table, rows, conflict=["period_start", "provider_id", "event_id"], returning=table.c.event_id)}

    def _ensure_partitions(self, period_starts: Iterable[date]) -> None:
        """A partition for each month of these period starts (and the month after, so that
        intake rarely meets a missing one), created (committed) on a connection of its own.
        CREATE TABLE ... PARTITION OF takes an exclusive lock on usage_events: it must run
        before the events' transaction touches the table (`prepare`), or it waits for that very
        transaction. Which exist is asked each time (one catalog lookup): a partition dropped
        (retention, a schema rebuilt) is never assumed to be there."""
        months = {d.replace(day=1) for d in period_starts}
        months |= {(m + timedelta(days=32)).replace(day=1) for m in months}
        names = {month: f"usage_events_y{month.year:04d}m{month.month:02d}" for month in sorted(months)}
        engine = db.session.get_bind()
        with engine.connect() as connection:
            missing = [month for month in sorted(months) if connection.execute(
                sa.text("SELECT to_regclass(:name)"), {"name": names[month]}).scalar() is None]
            connection.rollback()
            for month in missing:
                following = (month + timedelta(days=32)).replace(day=1)
                try:
                    connection.execute(sa.text(
                        f"CREATE TABLE IF NOT EXISTS {names[month]} PARTITION OF usage_events "
                        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{following.isoformat()}')"))
                    connection.commit()
                except sa.exc.DBAPIError as exc:  # another worker created it meanwhile
                    connection.rollback()
                    if "already exists" not in str(exc):
                        raise

    def _fold(self, rows: Sequence[dict], meters: Mapping[str, MeterInfo]) -> None:
        """Fold freshly stored events into their hourly rollups (and unique values), then
        recompute the time-weighted integral of the hours they touched."""
        if not rows:
            return
        hours, uniques, timed = fold_batch(rows, meters)
        self._upsert(hours)
        if uniques:
            insert_rows(UsageUnique.__table__, [
                {"subscription_id": s, "meter_id": m, "dims": d, "period_start": p, "value": v}
                for s, m, d, p, v in sorted(uniques)])
        for key in sorted(timed):
            self._recompute_inner(*key)

    def _upsert(self, rows: list[dict]) -> None:
        table = UsageRollup.__table__
        c = table.c
        stmt = dialect_insert(table)
        x = stmt.excluded
        earlier = x.first_at < c.first_at
        later = x.last_at >= c.last_at
        stmt = stmt.on_conflict_do_update(
            index_elements=["subscription_id", "meter_id", "dims", "period_start", "hour"],
            set_={"events": c.events + x.events, "total": c.total + x.total,
                  "maximum": greatest(c.maximum, x.maximum),
                  "first_at": sa.case((earlier, x.first_at), else_=c.first_at),
                  "first_value": sa.case((earlier, x.first_value), else_=c.first_value),
                  "last_at": sa.case((later, x.last_at), else_=c.last_at),
                  "last_value": sa.case((later, x.last_value), else_=c.last_value)})
        if is_postgres():
            run(_upsert_sql(), {"rows": json_rows(table, _ROLLUP_COLUMNS, rows)})
        else:
            run(stmt, rows)

    def _recompute_inner(self, subscription_id: str, meter_id: str, dims: str, period_start: date,
                         hour: datetime) -> None:
        """The hour's integral between its own samples, from its events in time order. The
        rollup row is already locked by this transaction's upsert, so the events read are every
        event committed for that hour plus this transaction's."""
        e = UsageEvent.__table__.c
        samples = [(r.timestamp, r.value) for r in run(
            sa.select(e.timestamp, e.value).where(
                e.subscription_id == subscription_id, e.meter_id == meter_id, e.dims == dims,
                e.period_start == period_start, e.timestamp >= hour, e.timestamp < hour + timedelta(hours=1))
            .order_by(e.timestamp, e.received_at, e.event_id))]
        if not samples:
            return
        r = UsageRollup.__table__.c
        run(sa.update(UsageRollup.__table__).where(
            r.subscription_id == subscription_id, r.meter_id == meter_id, r.dims == dims,
            r.period_start == period_start, r.hour == hour).values(
            tw_inner=A.inner_ms(samples), first_at=samples[0][0], first_value=samples[0][1],
            last_at=samples[-1][0], last_value=samples[-1][1]))

    # --- reading -------------------------------------------------------------------------------

    def stored(self, provider_id: str, event_ids: Sequence[str]) -> dict[str, Stored]:
        if not event_ids:
            return {}
        e = UsageEvent.__table__.c
        query = sa.select(e.period_start, e.provider_id, e.event_id, e.subscription_id, e.meter_id, e.timestamp,
                          e.value, e.properties, e.fingerprint, e.received_at).where(e.provider_id == provider_id)
        ids = sorted(set(event_ids))
        if is_postgres():  # a join to the ids, an index look-up each: `= ANY(:ids)` made PostgreSQL
            # estimate every element against every partition's statistics (150-250 ms for 1,000)
            wanted = unnested(ids, e.event_id, "ids")
            query = query.join_from(UsageEvent.__table__, wanted, e.event_id == wanted.c.id)
        else:
            query = query.where(in_ids(e.event_id, ids))
        rows = run(query)
        return {row.event_id: Stored(*row) for row in rows}

    def hours(self, subscription_ids: Sequence[str], meter_ids: Sequence[str], period_start: date,
              until: datetime | None = None, all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[A.Hour]]:
        r = UsageRollup.__table__.c
        in_period = r.period_start == period_start
        if all_periods:
            in_period = sa.or_(in_period, sa.and_(r.meter_id.in_(list(all_periods)), r.period_start < period_start))
        query = sa.select(r.subscription_id, r.meter_id, r.dims, r.hour, r.events, r.total, r.maximum, r.first_at,
                          r.first_value, r.last_at, r.last_value, r.tw_inner).where(
            in_ids(r.subscription_id, subscription_ids), r.meter_id.in_(list(meter_ids)), in_period)
        if until is not None:
            query = query.where(r.hour <= until)
        out: dict[tuple[str, str], list[A.Hour]] = {}
        for row in run(query):
            out.setdefault((row.subscription_id, row.meter_id), []).append(
                A.Hour(row.dims, row.hour, row.events, row.total, row.maximum, row.first_at, row.first_value,
                       row.last_at, row.last_value, int(row.tw_inner)))
        return out

    def totals(self, subscription_ids: Sequence[str], meters: Mapping[str, str], period_start: date,
               until: datetime | None = None, all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[A.Hour]]:
        if not is_postgres():  # SQLite: collapsed here, from the hours
            return {key: A.collapse(meters[key[1]], hours) for key, hours in
                    self.hours(subscription_ids, list(meters), period_start, until, all_periods).items()}
        r = UsageRollup.__table__.c
        in_period = r.period_start == period_start
        if all_periods:
            in_period = sa.or_(in_period, sa.and_(r.meter_id.in_(list(all_periods)), r.period_start < period_start))
        hourly = [m for m, aggregation in meters.items() if aggregation == A.HOURLY_MAX]
        latest = A.LATEST in meters.values()  # ordered aggregates cost a third of the query: only if read
        query = sa.select(
            r.subscription_id, r.meter_id, r.dims, sa.func.min(r.hour), sa.func.sum(r.events), sa.func.sum(r.total),
            sa.case((r.meter_id.in_(hourly), sa.func.sum(r.maximum)), else_=sa.func.max(r.maximum))
            if hourly else sa.func.max(r.maximum),
            sa.func.min(r.first_at), first_by(r.first_value, r.first_at) if latest else sa.literal(0),
            sa.func.max(r.last_at), first_by(r.last_value, r.last_at.desc()) if latest else sa.literal(0)).where(
            in_ids(r.subscription_id, subscription_ids), r.meter_id.in_(sorted(meters)), in_period).group_by(
            r.subscription_id, r.meter_id, r.dims)
        if until is not None:
            query = query.where(r.hour <= until)
        out: dict[tuple[str, str], list[A.Hour]] = {}
        for sub, meter, *rest in run(query):
            dims, hour, events, total, maximum, first_at, first_value, last_at, last_value = rest
            out.setdefault((sub, meter), []).append(A.Hour(dims, hour, int(events), int(total), int(maximum),
                                                           first_at, first_value, last_at, last_value))
        return out

    def carried(self, subscription_ids: Sequence[str], meter_ids: Sequence[str],
                before: date) -> dict[tuple[str, str], dict[str, int]]:
        r = UsageRollup.__table__.c
        latest = (sa.select(r.subscription_id, r.meter_id, r.dims, sa.func.max(r.last_at).label("at"))
                  .where(in_ids(r.subscription_id, subscription_ids), r.meter_id.in_(list(meter_ids)),
                         r.period_start < before)
                  .group_by(r.subscription_id, r.meter_id, r.dims).subquery())
        query = sa.select(r.subscription_id, r.meter_id, r.dims, r.last_value).join(latest, sa.and_(
            r.subscription_id == latest.c.subscription_id, r.meter_id == latest.c.meter_id, r.dims == latest.c.dims,
            r.last_at == latest.c.at, r.period_start < before))
        out: dict[tuple[str, str], dict[str, int]] = {}
        for row in run(query):
            out.setdefault((row.subscription_id, row.meter_id), {})[row.dims] = row.last_value
        return out

    def uniques(self, subscription_ids: Sequence[str], meter_ids: Sequence[str], period_start: date,
                all_periods: Sequence[str] = ()) -> dict[tuple[str, str], list[tuple[str, str]]]:
        u = UsageUnique.__table__.c
        in_period = u.period_start == period_start
        if all_periods:
            in_period = sa.or_(in_period, sa.and_(u.meter_id.in_(list(all_periods)), u.period_start < period_start))
        out: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for row in run(sa.select(u.subscription_id, u.meter_id, u.dims, u.value).distinct().where(
                in_ids(u.subscription_id, subscription_ids), u.meter_id.in_(list(meter_ids)), in_period)):
            out.setdefault((row.subscription_id, row.meter_id), []).append((row.dims, row.value))
        return out

    def export(self, tenant_id: str, livemode: bool, period_start: date) -> Iterator[sa.Row]:
        r = UsageRollup.__table__.c
        query = (sa.select(r.subscription_id, r.meter_id, r.dims, r.hour, r.events, r.total, r.maximum,
                           r.first_at, r.first_value, r.last_at, r.last_value, r.tw_inner)
                 .where(r.tenant_id == tenant_id, r.livemode == livemode, r.period_start == period_start)
                 .order_by(r.subscription_id, r.meter_id, r.dims, r.hour))
        # the option on this statement only: Connection.execution_options would change the
        # session's connection for good (every later statement a server-side cursor)
        yield from db.session.connection().execute(query, execution_options={"yield_per": 5000})


_ROLLUP_COLUMNS = ("subscription_id", "meter_id", "dims", "period_start", "hour", "tenant_id", "livemode", "events",
                   "total", "maximum", "first_at", "first_value", "last_at", "last_value", "tw_inner")
_UPSERT: list[sa.TextClause] = []


def _upsert_sql() -> sa.TextClause:
    """PostgreSQL's rollup upsert: one statement whose rows are one JSON parameter (as
    db.insert_rows does), the same merge as SqlUsageStore._upsert's."""
    if not _UPSERT:
        table = UsageRollup.__table__
        _UPSERT.append(sa.text(
            f"INSERT INTO usage_rollups ({', '.join(_ROLLUP_COLUMNS)})" + json_select(table, _ROLLUP_COLUMNS)  # nosec B608 - column names of our own table, never input
            + " ON CONFLICT (subscription_id, meter_id, dims, period_start, hour) DO UPDATE SET"
            " events = usage_rollups.events + excluded.events, total = usage_rollups.total + excluded.total,"
            " maximum = greatest(usage_rollups.maximum, excluded.maximum),"
            " first_at = CASE WHEN excluded.first_at < usage_rollups.first_at THEN excluded.first_at"
            "   ELSE usage_rollups.first_at END,"
            " first_value = CASE WHEN excluded.first_at < usage_rollups.first_at THEN excluded.first_value"
            "   ELSE usage_rollups.first_value END,"
            " last_at = CASE WHEN excluded.last_at >= usage_rollups.last_at THEN excluded.last_at"
            "   ELSE usage_rollups.last_at END,"
            " last_value = CASE WHEN excluded.last_at >= usage_rollups.last_at THEN excluded.last_value"
            "   ELSE usage_rollups.last_value END"))
    return _UPSERT[0]


def utc_hour(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def fold_batch(rows: Sequence[dict], meters: Mapping[str, MeterInfo]) -> tuple[list[dict], set[tuple], set[tuple]]:
    """One batch of events (rows as UsageEvent's columns, plus `unique`) folded into rollup rows
    (pure): -> the rollups of the batch alone, in key order (the store adds them to the stored
    ones: `aggregation.merge` is the same rule in Python), the distinct (subscription, meter,
    dims, period, value) of unique_count meters, and the keys of the time-weighted hours touched
    (whose `tw_inner` the store recomputes from their events)."""
    hours: dict[tuple, dict] = {}
    uniques: set[tuple] = set()
    timed: set[tuple] = set()
    for row in sorted(rows, key=lambda r: r["timestamp"]):
        meter = meters[row["meter_id"]]
        at = row["timestamp"]
        hour = utc_hour(at)
        key = (row["subscription_id"], row["meter_id"], row["dims"], row["period_start"], hour)
        h = hours.get(key)
        value = row["value"]
        if h is None:
            hours[key] = {"subscription_id": key[0], "meter_id": key[1], "dims": key[2], "period_start": key[3],
                          "hour": hour, "tenant_id": row["tenant_id"], "livemode": row["livemode"], "events": 1,
                          "total": value, "maximum": value, "first_at": at, "first_value": value, "last_at": at,
                          "last_value": value, "tw_inner": 0}
        else:
            h["events"] += 1
            h["total"] += value
            h["maximum"] = max(h["maximum"], value)
            h["last_at"], h["last_value"] = at, value
        if meter.aggregation == A.UNIQUE_COUNT:
            uniques.add((key[0], key[1], key[2], key[3], row["unique"]))
        elif meter.aggregation == A.TIME_WEIGHTED:
            timed.add(key)
    return [hours[key] for key in sorted(hours)], uniques, timed
