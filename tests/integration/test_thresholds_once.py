"""Usage thresholds under concurrent intake on PostgreSQL: batches racing over one subscription
publish each threshold (80, 90, 100 % of the included units) exactly once — never twice, and
never missed when no batch alone crosses it but together they do."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.database import _sql
from tests.support.races import race

pytestmark = pytest.mark.slow

START = datetime(2026, 11, 10, 13, tzinfo=timezone.utc)  # an hour after the subscription starts


def _metered(tenant) -> str:
    """A bandwidth meter, a plan with 100 GB included and thresholds at 80/90/100 %, and a
    subscription (vm-1) of cust-1."""
    admin = tenant.admin["test"]
    response = admin.post("/v1/meters", {"code": "bandwidth", "name": "Bandwidth", "aggregation": "sum",
                                         "unit": "GB"})
    assert response.status_code == 201, response.json
    tenant.customer("cust-1")
    provider = tenant.provider()
    response = provider.post("/v1/plans", {"code": "cloud", "name": "Cloud", "currency": "AUD", "fees": [
        {"name": "Hosting", "price": "10.00", "timing": "in_arrears", "usage": [
            {"meter": "bandwidth", "name": "Bandwidth", "model": "per_unit", "unit_amount": "0.05",
             "included_units": "100", "thresholds": [80, 90, 100]}]}]})
    assert response.status_code == 201, response.json
    response = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "cloud",
                                                   "external_billing_id": "vm-1"})
    assert response.status_code == 201, response.json
    response = admin.post("/v1/test_clock/advance", {"to": "2026-11-14T00:00:00+00:00"})  # usage of past days
    assert response.status_code == 200, response.json
    response = provider.post("/v1/usage_events", {"id": "first", "subscription": "vm-1", "meter": "bandwidth",
                                                  "value": "0", "timestamp": "2026-11-10T12:30:00+00:00"})
    assert response.status_code == 201, response.json  # the meter is in use and the period open: no other lock
    return provider.key


@pytest.fixture
def slow_reads(monkeypatch):
    """Widen the race: each check of the thresholds dwells a moment after reading the usage, as
    a loaded server might, so that transactions overlap between that read and their commit."""
    from aggregator.metering import thresholds

    def load_usage(*args, **kwargs):
        usage = original(*args, **kwargs)
        time.sleep(0.15)
        return usage

    original = thresholds.load_usage
    monkeypatch.setattr(thresholds, "load_usage", load_usage)


def _published(app, tenant_id: str) -> list[tuple]:
    return [tuple(r) for r in _sql(
        app, "SELECT data->'object'->>'threshold', data->'object'->>'reached_at', count(*) OVER "
             "(PARTITION BY data->'object'->>'threshold') FROM events WHERE tenant_id = :t "
             "AND type = 'usage.threshold_reached' ORDER BY 1", t=tenant_id)]


def _batch(i: int, values: list[str]) -> dict:
    """Thread i's batch: its events in hours of their own (no rollup row shared with another)."""
    return {"events": [{"id": f"t{i}-{n}", "subscription": "vm-1", "meter": "bandwidth", "value": value,
                        "timestamp": (START + timedelta(hours=10 * i + n)).isoformat()}
                       for n, value in enumerate(values)]}


def test_batches_that_cross_together_publish_each_threshold_once(postgres_only, app, tenant, slow_reads):
    key = _metered(tenant)
    # 8 batches of 15 GB each: none reaches 80 GB alone, together they reach 120 GB
    responses = race(app, key, 8, lambda c, i: c.post("/v1/usage_events/batch", _batch(i, ["10", "5"])))
    assert all(r.status_code == 200 and {d["status"] for d in r.json["data"]} == {201} for r in responses), \
        [r.json for r in responses]
    published = _published(app, tenant.id)
    assert [(t, n) for t, _, n in published] == [("100", 1), ("80", 1), ("90", 1)], published
    crossings = _sql(app, "SELECT threshold, quantity FROM usage_thresholds_reached WHERE tenant_id = :t "
                          "ORDER BY threshold", t=tenant.id)
    assert [row[0] for row in crossings] == [80, 90, 100]


def test_batches_each_crossing_the_same_threshold_publish_it_once(postgres_only, app, tenant, slow_reads):
    key = _metered(tenant)
    # each batch alone reaches 85 GB, 80 %: the first to commit publishes 80 %, the next ones 90 % and 100 %
    responses = race(app, key, 6, lambda c, i: c.post("/v1/usage_events/batch", _batch(i, ["40", "45"])))
    assert all(r.status_code == 200 and {d["status"] for d in r.json["data"]} == {201} for r in responses), \
        [r.json for r in responses]
    published = _published(app, tenant.id)
    assert [(t, n) for t, _, n in published] == [("100", 1), ("80", 1), ("90", 1)], published
    # reached as of an event of the batches (within the hours they used), never the clock's now
    assert all(START <= datetime.fromisoformat(at) < START + timedelta(hours=60) for _, at, _ in published)
