"""Rollups equal a raw GROUP BY, through the real store (SqlUsageStore on SQLite and PostgreSQL):
random event streams recorded in random batches out of order, with replays of events already
stored, read back as rating reads them (hours, carried levels, distinct values), give each
aggregation the quantity computed straight from the raw events; the raw events stored are each
stored once."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.metering import aggregation as A
from aggregator.metering.store import MeterInfo, SqlUsageStore
from tests.support.usage_streams import END, START, period_of, raw, streams

DIMENSIONS = st.sampled_from([{}, {"region": "eu"}, {"region": "us"}])
PERIOD = date(2026, 11, 2)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=streams(), aggregation=st.sampled_from(A.AGGREGATIONS), dimension=DIMENSIONS,
       never=st.booleans(), replays=st.lists(st.integers(min_value=0, max_value=39), max_size=5))
def test_the_stores_rollups_equal_a_group_by_of_the_raw_events(app, stream, aggregation, dimension, never, replays):
    from aggregator.db import db, new_id

    events, batches = stream
    never = never and aggregation not in A.TIMED
    sub, provider = new_id("sub"), new_id("prov")
    meter = MeterInfo(new_id("mtr"), aggregation, A.NEVER if never else A.PERIOD, 0,
                      "user" if aggregation == A.UNIQUE_COUNT else None, ("region",))
    store = SqlUsageStore()

    def rows(batch):
        return [{"period_start": period_of(at), "provider_id": provider, "event_id": event_id, "tenant_id": "t",
                 "livemode": False, "subscription_id": sub, "meter_id": meter.id, "timestamp": at, "value": value,
                 "dims": dims, "properties": {}, "fingerprint": b"\0", "received_at": at, "unique": unique}
                for event_id, at, value, dims, unique in batch]

    with app.app_context():
        sent: list = []
        for batch in batches:
            again = [sent[n % len(sent)] for n in replays] if sent else []  # replays: stored once
            stored = store.record(sorted(rows(batch + again), key=lambda r: r["event_id"]), {meter.id: meter})
            assert {key for key in stored} == {(period_of(e[1]), e[0]) for e in batch}
            db.session.commit()
            sent += batch
        hours = store.hours([sub], [meter.id], PERIOD, None, [meter.id] if never else [])
        carried = store.carried([sub], [meter.id], PERIOD)
        uniques = store.uniques([sub], [meter.id], PERIOD, [meter.id] if never else [])
        quantity = A.component_quantity(
            aggregation, 0, dimension, hours.get((sub, meter.id), []), start_at=START, end_at=END,
            carried=carried.get((sub, meter.id)) if aggregation == A.TIME_WEIGHTED else None,
            uniques=uniques.get((sub, meter.id), ()))
        count = db.session.execute(sa.text("SELECT count(*) FROM usage_events WHERE subscription_id = :s"),
                                   {"s": sub}).scalar()
    assert count == len(events)
    assert quantity == raw(events, aggregation, dimension, never=never)
