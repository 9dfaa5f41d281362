"""The usage export (docs/metering.md, Usage export): one row per (subscription, meter,
dimension values, UTC hour) of a period, read from the store's rollups as a stream — Omnistrate's
export, for platforms whose own billing consumes it — in CSV (streamed) or Parquet (row groups).
`GET /v1/usage_export`, `aggregator usage export`, and the file the close leaves in the storage
directory (`queue_export` / `write_claimed`) all write the same rows.

Who sees what: an admin key the whole tenant in its mode; a provider key only the rows of its own
subscriptions. A period still open is exported as of now (its rows change until it closes);
from the period's close the rows no longer change."""
from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import groupby, islice
from typing import IO, Any

import sqlalchemy as sa

from .. import csv_cells, due
from ..accounts.keys import Principal
from ..accounts.models import Customer, Provider
from ..accounts.service import tenant_settings
from ..catalog.models import Meter, Plan, Subscription
from ..db import db, dialect_insert, in_ids, new_id, run
from ..errors import InvalidInput, NotFound
from ..faults import crash_point
from ..periods import calendar as C
from ..periods.models import PeriodRecord
from ..periods.service import tenant_period
from . import aggregation as A
from . import export as X
from .models import UsageExport, UsageRollup
from .store import SqlUsageStore, UsageStore

log = logging.getLogger(__name__)

FORMATS = ("csv", "parquet")
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
#: Rows looked up together (their subscriptions, the values carried into the period).
BATCH_ROWS = 2000
#: Rows per Parquet row group: memory stays at about one group whatever the period's size.
ROW_GROUP = 50_000


@dataclass
class Export:
    """A period's usage export: its columns, and its rows as they are read (once)."""

    tenant_id: str
    livemode: bool
    period: C.Period
    status: str  # the period's: open, closing or closed
    as_of: datetime  # the rows' instant: the period's end once ended, else now
    columns: list[str]
    rows: Iterator[list[Any]]

    @property
    def name(self) -> str:
        return f"usage-{self.period.start.isoformat()}"


def usage_export(principal: Principal, period_start: date, now: datetime, store: UsageStore | None = None) -> Export:
    """The principal's usage export of the period starting on `period_start` (an admin's: the
    tenant's in its mode; a provider's: its own subscriptions'). NotFound naming `period` if no
    period of the tenant starts that day or it has not started by `now`."""
    provider_id = principal.provider_id if principal.role == "provider" else None
    return lane_export(principal.tenant_id, principal.livemode, period_start, now, provider_id, store)


def lane_export(tenant_id: str, livemode: bool, period_start: date, now: datetime, provider_id: str | None = None,
                store: UsageStore | None = None) -> Export:
    """The usage export of a tenant in one mode (only `provider_id`'s subscriptions when given)."""
    settings = tenant_settings(tenant_id, livemode)
    if not 1970 <= period_start.year <= 2200:
        raise InvalidInput.on("period", "Use a period between 1970 and 2200.")
    try:
        period = tenant_period(settings, period_start)
    except NotFound as exc:
        raise NotFound.on("period", str(exc), "unknown_period") from exc
    if now < period.start_at:
        raise NotFound.on("period", f"The period {period_start.isoformat()} has not started yet "
                          f"(it starts at {period.start_at.isoformat()}).", "unknown_period")
    status = db.session.scalar(sa.select(PeriodRecord.status).where(
        PeriodRecord.tenant_id == tenant_id, PeriodRecord.livemode == livemode,
        PeriodRecord.start == period.start)) or "open"
    as_of = min(now, period.end_at)
    meters = {m.id: m for m in db.session.scalars(sa.select(Meter).where(
        Meter.tenant_id == tenant_id, Meter.livemode == livemode))}
    names = sorted({name for m in meters.values() if m.first_event_at is not None for name in m.dimensions or ()})
    columns = [*X.COLUMNS, *X.dimension_columns(names)]
    store = store or SqlUsageStore()
    rows = _rows(store, tenant_id, livemode, provider_id, period, as_of, meters, names)
    return Export(tenant_id, livemode, period, status, as_of, columns, rows)


def _rows(store: UsageStore, tenant_id: str, livemode: bool, provider_id: str | None, period: C.Period,
          as_of: datetime, meters: dict[str, Meter], names: Sequence[str]) -> Iterator[list[Any]]:
    """The rows, read from the store as a stream and looked up a batch of keys at a time."""
    hours = store.export(tenant_id, livemode, period.start)
    keys = groupby(hours, key=lambda r: (r.subscription_id, r.meter_id, r.dims))
    while batch := list(islice(((key, list(group)) for key, group in keys), 1)):
        size = len(batch[0][1])
        while size < BATCH_ROWS and (more := next(keys, None)) is not None:
            batch.append((more[0], list(more[1])))
            size += len(batch[-1][1])
        yield from _batch_rows(store, tenant_id, livemode, provider_id, period, as_of, meters, names, batch)


def _batch_rows(store, tenant_id, livemode, provider_id, period, as_of, meters, names, batch):
    ids = sorted({key[0] for key, _ in batch})
    subs = _subscriptions(tenant_id, livemode, provider_id, ids)
    timed = sorted({key[1] for key, _ in batch if key[1] in meters and meters[key[1]].aggregation == A.TIME_WEIGHTED})
    carried = store.carried(sorted(subs), timed, period.start) if timed and subs else {}
    for (sub_id, meter_id, dims), rows in batch:
        sub, meter = subs.get(sub_id), meters.get(meter_id)
        if sub is None or meter is None:  # another provider's subscription (or mode's: never)
            continue
        hours = [A.Hour(r.dims, r.hour, r.events, r.total, r.maximum, r.first_at, r.first_value, r.last_at,
                        r.last_value, int(r.tw_inner)) for r in rows]
        # a level is held no longer than the subscription (as rating holds it)
        end = as_of if sub.ends_at is None else max(period.start_at, min(as_of, sub.ends_at))
        quantities = X.hour_quantities(meter.aggregation, meter.decimals, hours, start_at=period.start_at,
                                       end_at=end, carried=carried.get((sub_id, meter_id), {}).get(dims))
        dimension_cells = X.dimension_cells(dims, names)
        for h, (quantity, unit_ms) in zip(hours, quantities, strict=True):
            yield [sub_id, sub.external_billing_id or "", sub.customer, sub.provider_id, sub.provider_name, sub.plan,
                   meter.code, meter.unit, meter.aggregation, h.hour.astimezone(timezone.utc), quantity, unit_ms,
                   h.events, *dimension_cells]


def _subscriptions(tenant_id: str, livemode: bool, provider_id: str | None, ids: Sequence[str]) -> dict[str, Any]:
    """subscription id -> what its rows show, for those of the tenant's mode (and the provider's)."""
    s = Subscription.__table__.c
    query = (sa.select(s.id, s.external_billing_id, Customer.external_id.label("customer"), s.provider_id,
                       Provider.name.label("provider_name"), Plan.code.label("plan"), s.ends_at)
             .join(Customer, Customer.id == s.customer_id).join(Provider, Provider.id == s.provider_id)
             .join(Plan, Plan.id == s.plan_id)
             .where(in_ids(s.id, ids), s.tenant_id == tenant_id, s.livemode == livemode))
    if provider_id is not None:
        query = query.where(s.provider_id == provider_id)
    return {row.id: row for row in run(query)}


# --- writing ---------------------------------------------------------------------------------------

def csv_cell(value: Any) -> Any:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value


def csv_chunks(export: Export, rows_per_chunk: int = 500) -> Iterator[str]:
    """The export as CSV text, a few hundred lines at a time (what a streamed response sends)."""
    out = io.StringIO()
    writer = csv_cells.writer(out, lineterminator="\r\n")  # cells a spreadsheet could run neutralized
    writer.writerow(export.columns)
    count = 0
    for row in export.rows:
        writer.writerow([csv_cell(cell) for cell in row])
        count += 1
        if count % rows_per_chunk == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def write_csv(export: Export, handle: IO[bytes]) -> int:
    """Write the export as CSV (UTF-8) to `handle` -> rows written."""
    counted = _Counted(export.rows)
    export.rows = iter(counted)
    for chunk in csv_chunks(export):
        handle.write(chunk.encode())
    return counted.count


def parquet_schema(columns: Sequence[str]):
    """Every column a string (quantities exact, as in the CSV) but `hour` (timestamp, UTC) and
    `events` (int64)."""
    import pyarrow as pa

    types = {"hour": pa.timestamp("us", tz="UTC"), "events": pa.int64()}
    return pa.schema([pa.field(name, types.get(name, pa.string())) for name in columns])


class _Sink:
    """Where pyarrow writes a Parquet stream: the bytes since the last `take`."""

    closed = False

    def __init__(self):
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data) -> int:
        data = bytes(data)
        self._parts.append(data)
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def parquet_chunks(export: Export, row_group: int = ROW_GROUP) -> Iterator[bytes]:
    """The export as Parquet, a row group at a time (memory: about one row group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema, sink, count = parquet_schema(export.columns), _Sink(), 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        while chunk := list(islice(export.rows, row_group)):
            writer.write_table(pa.Table.from_pylist([dict(zip(export.columns, row)) for row in chunk], schema),
                               row_group_size=row_group)
            count += len(chunk)
            yield sink.take()
        if not count:
            writer.write_table(schema.empty_table())
    yield sink.take()


def write_parquet(export: Export, handle: IO[bytes], row_group: int = ROW_GROUP) -> int:
    """Write the export as Parquet to `handle` -> rows written."""
    counted = _Counted(export.rows)
    export.rows = iter(counted)
    for chunk in parquet_chunks(export, row_group):
        handle.write(chunk)
    return counted.count


class _Counted:
    def __init__(self, rows):
        self.rows, self.count = rows, 0

    def __iter__(self):
        for row in self.rows:
            self.count += 1
            yield row


def write(export: Export, form: str, handle: IO[bytes]) -> int:
    return write_csv(export, handle) if form == "csv" else write_parquet(export, handle)


# --- the file each close leaves in the storage directory --------------------------------------------

_RETRY = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))  # then 6 h


def queue_export(tenant_id: str, livemode: bool, period_start: date, now: datetime) -> None:
    """Queue the period's export to the storage directory, in the close's finishing transaction:
    once (unique per tenant, mode and period), and only if the period has usage."""
    r = UsageRollup.__table__.c
    has_usage = db.session.scalar(sa.select(sa.exists().where(
        r.tenant_id == tenant_id, r.livemode == livemode, r.period_start == period_start)))
    if has_usage:
        run(dialect_insert(UsageExport.__table__).values(
            id=new_id("uexp"), tenant_id=tenant_id, livemode=livemode, period_start=period_start, created_at=now,
            attempts=0).on_conflict_do_nothing(index_elements=["tenant_id", "livemode", "period_start"]))


def storage_key(tenant_id: str, livemode: bool, period_start: date, form: str) -> str:
    return f"exports/usage/{tenant_id}/{'live' if livemode else 'test'}/{period_start.isoformat()}.{form}"


def claim_exports(now: datetime, limit: int, lane: due.Lane | None = None) -> list[str]:
    """Claim up to `limit` exports not written yet, not claimed, and not waiting to retry; commit."""
    t = UsageExport.__table__
    ready = (sa.select(t.c.id).where(t.c.written_at.is_(None),
                                     sa.or_(t.c.locked_until.is_(None), t.c.locked_until < now),
                                     sa.or_(t.c.retry_at.is_(None), t.c.retry_at <= now))
             .order_by(t.c.id).limit(limit))
    return due.claim_ready(t, ready, lane, locked_until=now + due.lease(timedelta(minutes=10)),
                           attempts=t.c.attempts + 1)


def write_claimed(ids: Sequence[str], adapters, store: UsageStore | None = None) -> due.Worked:
    """Write each claimed export's CSV and Parquet files (each atomically: a temporary file
    renamed), then mark it written. Re-running one (a crash between the files and the mark)
    writes the same files again: the period is closed, its rows no longer change."""
    worked = due.Worked()
    for export_id in ids:
        item = db.session.get(UsageExport, export_id)
        if item is None or item.written_at is not None:
            continue
        try:
            paths, rows = {}, 0
            for form in FORMATS:
                export = lane_export(item.tenant_id, item.livemode, item.period_start,
                                     _period_end(item.tenant_id, item.livemode, item.period_start), store=store)
                key = storage_key(item.tenant_id, item.livemode, item.period_start, form)
                with adapters.storage.writing(key) as handle:
                    rows = write(export, form, handle)
                paths[form] = key
            crash_point("usage_export.after_files")
            db.session.execute(sa.update(UsageExport).where(UsageExport.id == export_id,
                                                            UsageExport.written_at.is_(None))
                               .values(written_at=adapters.clocks.base.now(), rows=rows, csv_path=paths["csv"],
                                       parquet_path=paths["parquet"], locked_until=None, last_error=None)
                               .execution_options(synchronize_session=False))
            db.session.commit()
            worked.done += 1
        except Exception as exc:  # storage trouble: recorded, retried after a backoff
            db.session.rollback()
            log.warning("usage export %s failed: %s", export_id, exc, exc_info=exc)
            _record_failure(export_id, exc, adapters.clocks.base.now())
            worked.failed += 1
    return worked


def _period_end(tenant_id: str, livemode: bool, period_start: date) -> datetime:
    settings = tenant_settings(tenant_id, livemode)
    return tenant_period(settings, period_start).end_at


def _record_failure(export_id: str, exc: Exception, now: datetime) -> None:
    item = db.session.get(UsageExport, export_id)
    if item is None:
        return
    wait = _RETRY[item.attempts - 1] if 0 < item.attempts <= len(_RETRY) else timedelta(hours=6)
    item.last_error = f"{type(exc).__name__}: {exc}"[:1000]
    item.retry_at, item.locked_until = now + wait, None
    db.session.commit()


def run_batch(adapters, now: datetime, limit: int, lane: due.Lane | None) -> due.Worked:
    ids = claim_exports(now, limit, lane)
    return write_claimed(ids, adapters) if ids else due.Worked()


def backlog() -> tuple[int, datetime | None]:
    t = UsageExport.__table__
    return due.waiting(t, t.c.written_at.is_(None))


EXPORT_QUEUE = due.Queue("usage.export", run_batch, batch=5, backlog=backlog)
