"""Rollups equal a raw GROUP BY: for random event streams (values, timestamps across hours and
offsets, dimension values, arrival out of order in random batches), the hourly rollups folded
batch by batch as the store folds them (`store.fold_batch`, added to the stored rows by the
upsert's rule `aggregation.merge`, time-weighted hours recomputed from their events) give each
aggregation the quantity computed directly from the raw events. Pure: no database (the same
property through the real store on SQLite and PostgreSQL is tests/integration/test_usage_store.py)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.metering import aggregation as A
from aggregator.metering.store import MeterInfo, fold_batch
from tests.support.usage_streams import END, START, period_of, raw, streams


def fold(batches, aggregation: str) -> tuple[list[A.Hour], set[tuple]]:
    """The rollups after each batch was folded in, as SqlUsageStore.record leaves them, and the
    unique values stored (usage_uniques)."""
    meter = MeterInfo("mtr", aggregation, A.PERIOD, 0, None, ("region",))
    stored: dict[tuple, A.Hour] = {}
    seen: set[tuple] = set()
    events: list[tuple] = []  # (timestamp, received, event id, value, key) of every stored event
    for received, batch in enumerate(batches):
        rows = [{"subscription_id": "sub", "meter_id": "mtr", "dims": dims, "period_start": period_of(at),
                 "timestamp": at, "value": value, "tenant_id": "t", "livemode": False, "unique": unique,
                 "event_id": event_id} for event_id, at, value, dims, unique in batch]
        hours, uniques, timed = fold_batch(rows, {"mtr": meter})
        seen |= uniques
        for h in hours:
            key = (h["subscription_id"], h["meter_id"], h["dims"], h["period_start"], h["hour"])
            new = A.Hour(h["dims"], h["hour"], h["events"], h["total"], h["maximum"], h["first_at"], h["first_value"],
                         h["last_at"], h["last_value"], h["tw_inner"])
            stored[key] = A.merge([stored[key], new]) if key in stored else new
            events += [(r["timestamp"], received, r["event_id"], r["value"], key) for r in rows
                       if (r["dims"], r["period_start"]) == key[2:4]
                       and r["timestamp"].astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
                       == key[4]]
        for key in timed:  # _recompute_inner: the hour's samples in (timestamp, received, id) order
            samples = sorted((at, received, event_id, value) for at, received, event_id, value, k in events
                             if k == key)
            old = stored[key]
            stored[key] = A.Hour(old.dims, old.hour, old.events, old.total, old.maximum, samples[0][0], samples[0][3],
                                 samples[-1][0], samples[-1][3],
                                 A.inner_ms([(at, value) for at, _, _, value in samples]))
    return [h for key, h in sorted(stored.items(), key=lambda kv: (kv[0][:4], kv[0][4]))], seen


def rolled(folded, aggregation: str, dimension: dict, *, never: bool = False) -> Fraction:
    """The quantity from the rollups, read as the usage service reads them."""
    hours, seen = folded
    period = date(2026, 11, 2)
    in_period = [h for h in hours if never or h.hour >= START]
    carried: dict[str, int] = {}
    for h in sorted((h for h in hours if h.hour < START), key=lambda h: h.last_at):  # store.carried
        carried[h.dims] = h.last_value
    uniques = {(dims, value) for _, _, dims, p, value in seen if never or p == period}  # store.uniques
    return A.component_quantity(aggregation, 0, dimension, in_period, start_at=START, end_at=END,
                                carried=carried if aggregation == A.TIME_WEIGHTED else None, uniques=uniques)


DIMENSIONS = st.sampled_from([{}, {"region": "eu"}, {"region": "us"}])


@settings(max_examples=300, deadline=None)
@given(stream=streams(), aggregation=st.sampled_from(A.AGGREGATIONS), dimension=DIMENSIONS)
def test_rollups_folded_in_any_batches_equal_a_group_by_of_the_raw_events(stream, aggregation, dimension):
    events, batches = stream
    hours = fold(batches, aggregation)
    assert rolled(hours, aggregation, dimension) == raw(events, aggregation, dimension)


@settings(max_examples=150, deadline=None)
@given(stream=streams(), aggregation=st.sampled_from([A.COUNT, A.SUM, A.MAX, A.LATEST, A.UNIQUE_COUNT]),
       dimension=DIMENSIONS)
def test_a_meter_never_reset_counts_every_period_so_far(stream, aggregation, dimension):
    events, batches = stream
    hours = fold(batches, aggregation)
    assert rolled(hours, aggregation, dimension, never=True) == \
        raw(events, aggregation, dimension, never=True)


@settings(max_examples=200, deadline=None)
@given(stream=streams())
def test_the_rollups_of_any_batches_are_those_of_one_batch(stream):
    events, batches = stream
    for aggregation in (A.SUM, A.TIME_WEIGHTED):
        assert fold(batches, aggregation) == fold([[e for batch in batches for e in batch]], aggregation)


def test_hours_are_utc_hours_whatever_the_offset_an_event_was_sent_with():
    india = timezone(timedelta(hours=5, minutes=30))
    at = datetime(2026, 11, 2, 12, 40, tzinfo=india)  # 07:10Z
    hours, _, _ = fold_batch([{"subscription_id": "s", "meter_id": "m", "dims": "", "period_start": date(2026, 11, 2),
                               "timestamp": at, "value": 3, "tenant_id": "t", "livemode": False, "unique": None}],
                             {"m": MeterInfo("m", A.HOURLY_MAX, A.PERIOD, 0, None, ())})
    assert [h["hour"] for h in hours] == [datetime(2026, 11, 2, 7, tzinfo=timezone.utc)]


def test_a_time_weighted_level_is_held_from_the_previous_period_and_to_the_end():
    # 10 GB held from before the period for 1 h, then 4 GB for the remaining 5 h: 30 GB-hours
    events = [("a", START - timedelta(hours=2), 10, "", "u"), ("b", START + timedelta(hours=1), 4, "", "u")]
    hours = fold([events], A.TIME_WEIGHTED)
    assert rolled(hours, A.TIME_WEIGHTED, {}) == raw(events, A.TIME_WEIGHTED, {}) == 30
