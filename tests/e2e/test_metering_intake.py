"""Usage intake at volume keeps its rules: thresholds published once each when batches of many
subscriptions cross them (read together, claimed once), rollups equal to their events, and on
PostgreSQL a month without a partition yet takes events (the partition is made before the
request's transaction reads the table, not waited for by it)."""
from __future__ import annotations

from dataclasses import replace

import pytest
import sqlalchemy as sa

from tests.support.invoicing import advance

THRESHOLD = "usage.threshold_reached"
IN_PERIOD = "2026-11-10T12:00:00+00:00"  # the test clock's instant (period 2026-10-25 in Sydney)


def meter(admin, code, aggregation="sum", **fields):
    response = admin.post("/v1/meters", {"code": code, "name": code.title(), "aggregation": aggregation, **fields})
    assert response.status_code == 201, response.json
    return response.json


@pytest.fixture
def three(tenant):
    """A `calls` meter (count of 10 included, thresholds 50/100 %) and three subscriptions."""
    admin = tenant.admin["test"]
    meter(admin, "gb", aggregation="sum")
    tenant.customer("cust-1")
    provider = tenant.provider(name="Batchy")
    response = provider.post("/v1/plans", {"code": "b", "name": "B", "currency": "AUD", "fees": [
        {"name": "Base", "price": "1.00", "timing": "in_arrears", "usage": [
            {"meter": "gb", "name": "GB", "model": "per_unit", "unit_amount": "0.10", "included_units": "10",
             "thresholds": [50, 100]}]}]})
    assert response.status_code == 201, response.json
    subs = []
    for i in range(3):
        sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "b", "external_billing_id": f"s{i}"})
        assert sub.status_code == 201, sub.json
        subs.append(sub.json["id"])
    return provider, subs


def batch(provider, events):
    response = provider.post("/v1/usage_events/batch", {"events": [
        {"id": event_id, "subscription": sub, "meter": "gb", "value": value, "timestamp": IN_PERIOD}
        for event_id, sub, value in events]})
    assert response.status_code == 200, response.json
    return [r["status"] for r in response.json["data"]]


def reached(tenant) -> list[tuple[str, int]]:
    events = tenant.admin["test"].get("/v1/events", query_string={"type": THRESHOLD, "limit": 100}).json["data"]
    return sorted((e["data"]["object"]["subscription"], e["data"]["object"]["threshold"]) for e in events)


def test_thresholds_of_many_subscriptions_in_one_batch_are_published_once_each(tenant, three):
    provider, (a, b, c) = three
    assert batch(provider, [("a1", a, "5"), ("b1", b, "12"), ("c1", c, "2")]) == [201] * 3
    assert reached(tenant) == sorted([(a, 50), (b, 50), (b, 100)])
    # more usage of everyone: only what was not reached yet is published, a replay changes nothing
    assert batch(provider, [("a2", a, "5"), ("b2", b, "7"), ("c2", c, "3"), ("a1", a, "5")]) == [201] * 4
    assert reached(tenant) == sorted([(a, 50), (a, 100), (b, 50), (b, 100), (c, 50)])
    assert batch(provider, [("a3", a, "1"), ("b3", b, "1"), ("c3", c, "1")]) == [201] * 3
    assert reached(tenant) == sorted([(a, 50), (a, 100), (b, 50), (b, 100), (c, 50)])


def test_rollups_hold_exactly_their_events(app, tenant, three):
    provider, (a, b, _) = three
    assert batch(provider, [(f"e{i}", a if i % 3 else b, str(i)) for i in range(1, 301)]) == [201] * 300
    assert batch(provider, [(f"f{i}", a, str(i)) for i in range(1, 51)] + [("e7", a, "7")]) == [201] * 51
    from aggregator.db import db

    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT r.subscription_id, r.events, r.total, r.maximum, e.n, e.s, e.m FROM usage_rollups r JOIN ("
            " SELECT subscription_id, count(*) AS n, sum(value) AS s, max(value) AS m FROM usage_events"
            " GROUP BY subscription_id) e ON e.subscription_id = r.subscription_id"
            " WHERE r.subscription_id IN (:a, :b)"), {"a": a, "b": b}).all()
        db.session.remove()
    assert len(rows) == 2 and all(tuple(r[1:4]) == tuple(r[4:7]) for r in rows), rows
    assert {r[0]: r[1] for r in rows} == {a: 200 + 50, b: 100}


def test_a_month_without_its_partition_takes_events(app, tenant, three, postgres_only):
    """The partition of the event's month is created on its own connection: before the fix it
    waited for the request's own transaction, which had read usage_events (a hang)."""
    from aggregator.db import db
    provider, (a, _, _) = three
    with app.app_context():
        for name in db.session.scalars(sa.text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_events'")).all():
            if db.session.scalar(sa.text(f"SELECT count(*) FROM {name}")) == 0:  # nosec B608 - catalog names
                db.session.execute(sa.text(f"DROP TABLE {name}"))
        db.session.commit()
        db.session.remove()
    later = "2027-02-10T12:00:00+00:00"  # period 2027-01-25: a month no test wrote to
    advance(tenant, later)
    response = provider.post("/v1/usage_events", {"id": "p1", "subscription": a, "meter": "gb", "value": "1",
                                                  "timestamp": later})
    assert response.status_code == 201 and response.json["period"] == "2027-01-25", response.json


def test_totals_are_the_hours_collapsed(app, tenant, three):
    """What rating and current usage read (one row per subscription, meter and dims, collapsed
    by the database on PostgreSQL) prices as the hours themselves do, for every aggregation
    but time_weighted (which reads the hours)."""
    from aggregator.db import db
    from aggregator.metering import aggregation as A
    from aggregator.metering.store import SqlUsageStore

    provider, (a, b, _) = three
    for k, at in enumerate(["2026-11-10T12:00:00+00:00", "2026-11-10T15:30:00+00:00", "2026-11-11T01:10:00+00:00"]):
        advance(tenant, at)
        response = provider.post("/v1/usage_events/batch", {"events": [
            {"id": f"t{k}-{i}", "subscription": a if i % 2 else b, "meter": "gb", "value": str((i * 37 + k) % 50),
             "timestamp": at} for i in range(20)]})
        assert all(r["status"] == 201 for r in response.json["data"]), response.json
    with app.app_context():
        meter_id, period = db.session.execute(sa.text(
            "SELECT meter_id, period_start FROM usage_rollups WHERE subscription_id = :a LIMIT 1"), {"a": a}).one()
        store = SqlUsageStore()
        hours = store.hours([a, b], [meter_id], period)
        assert {len(v) for v in hours.values()} == {3}
        for aggregation in (A.COUNT, A.SUM, A.MAX, A.LATEST, A.HOURLY_MAX):
            totals = store.totals([a, b], {meter_id: aggregation}, period)
            collapsed = {key: A.collapse(aggregation, rows) for key, rows in hours.items()}
            if aggregation != A.LATEST:  # the first and last values are read (and so given) for latest only
                collapsed = {key: [replace(h, first_value=t.first_value, last_value=t.last_value)
                                   for h, t in zip(rows, totals[key])] for key, rows in collapsed.items()}
            assert totals == collapsed, aggregation
            for key, rows in hours.items():
                whole = dict(start_at=rows[0].hour, end_at=rows[-1].hour)
                assert A.quantity(aggregation, totals[key], 0, **whole) == A.quantity(aggregation, rows, 0, **whole)
        db.session.remove()
