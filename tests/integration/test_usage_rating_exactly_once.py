"""Usage rated at the close on PostgreSQL: each (subscription, usage component, period) is billed
exactly once whether the close runs again, runs concurrently, or the usage rating itself is run
again; usage events racing the close are either rated or refused (409 period_closed), never lost
nor counted twice; identical batches sent at once store each event once."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from tests.support.callers import Caller
from tests.support.close import PERIOD, _close, assert_invoices_are_their_bills
from tests.support.database import _sql

pytestmark = pytest.mark.slow

IN_PERIOD = "2026-11-10T12:00:00+00:00"
#: Usage bills, their charges and their keys: every count the same when each is billed once.
COUNTS = ("SELECT (SELECT count(*) FROM bills WHERE tenant_id = :t AND source = 'usage'), "
          "(SELECT count(DISTINCT idempotency_key) FROM bills WHERE tenant_id = :t AND source = 'usage'), "
          "(SELECT count(*) FROM usage_charges c JOIN bills b ON b.id = c.bill_id WHERE b.tenant_id = :t), "
          "(SELECT count(*) FROM (SELECT DISTINCT c.subscription_id, c.component_id, c.period_start "
          "FROM usage_charges c JOIN bills b ON b.id = c.bill_id WHERE b.tenant_id = :t) k), "
          "(SELECT coalesce(sum(amount), 0) FROM bills WHERE tenant_id = :t AND source = 'usage')")


def _metered(tenant, count: int, events_each: int = 3) -> tuple[Caller, list[str]]:
    """`count` subscriptions on a plan pricing two meters (calls: count; storage: sum, GB),
    each with `events_each` events of each meter in the period."""
    admin = tenant.admin["test"]
    for code, aggregation in (("calls", "count"), ("storage", "sum")):
        assert admin.post("/v1/meters", {"code": code, "name": code, "aggregation": aggregation}).status_code == 201
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "metered", "name": "Metered", "currency": "AUD", "fees": [
        {"name": "Usage", "usage": [{"meter": "calls", "model": "per_unit", "unit_amount": "0.10"},
                                    {"meter": "storage", "model": "per_unit", "unit_amount": "0.01"}]}]}
                         ).status_code == 201
    ids = []
    for n in range(count):
        tenant.customer(f"c{n}")
        response = provider.post("/v1/subscriptions", {"customer": f"c{n}", "plan": "metered"})
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    events = [{"id": f"{sub}-{meter}-{k}", "subscription": sub, "meter": meter, "value": 10 + k,
               "timestamp": IN_PERIOD} for sub in ids for meter in ("calls", "storage") for k in range(events_each)]
    for start in range(0, len(events), 1000):
        response = provider.post("/v1/usage_events/batch", {"events": events[start:start + 1000]})
        assert {r["status"] for r in response.json["data"]} == {201}, response.json
    return provider, ids


def _counts(app, tenant) -> tuple:
    return tuple(_sql(app, COUNTS, t=tenant.id)[0])


def test_running_the_close_twice_rates_each_usage_component_once(postgres_only, app, tenant):
    _, ids = _metered(tenant, 20)
    assert _close(app, tenant.id).invoices_created == 20
    first = _counts(app, tenant)
    # per subscription: 3 calls (0.30) and 10 + 11 + 12 GB (0.33)
    assert first == (40, 40, 40, 40, 20 * (30 + 33))
    assert _close(app, tenant.id).invoices_created == 0
    assert _counts(app, tenant) == first


def test_concurrent_closes_rate_each_usage_component_once(postgres_only, app, tenant):
    _metered(tenant, 40, events_each=2)
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: _close(app, tenant.id, chunk=7), range(4)))
    assert sum(r.invoices_created for r in reports) == 40
    assert _counts(app, tenant) == (80, 80, 80, 80, 40 * (20 + 21))
    assert_invoices_are_their_bills(app, tenant.id)


def test_rating_the_periods_usage_again_bills_nothing_more(postgres_only, app, tenant):
    from aggregator.accounts.service import tenant_settings
    from aggregator.db import db
    from aggregator.metering.rating_service import rate_usage
    from aggregator.periods.service import tenant_period

    _metered(tenant, 10)
    _close(app, tenant.id)
    before = _counts(app, tenant)
    with app.app_context():
        settings = tenant_settings(tenant.id, False)
        report = rate_usage(settings, tenant_period(settings, date.fromisoformat(PERIOD)), chunk=3)
        db.session.commit()
    assert (report.charges, report.bills_created) == (20, 0)
    assert _counts(app, tenant) == before


def test_events_racing_the_close_are_rated_or_refused(postgres_only, app, tenant):
    """Providers send usage in the closing period while the close runs: each event is stored
    before the period is marked closing, and rated, or refused with 409 period_closed and not
    stored; each subscription's rated quantity is the sum of its accepted events."""
    provider, ids = _metered(tenant, 60, events_each=1)
    accepted: dict[str, int] = {sub: 10 for sub in ids}  # the storage each already has: 10 GB
    refused = 0
    started = threading.Event()
    lock = threading.Lock()

    def send(worker: int):
        nonlocal refused
        caller = Caller(app.test_client(), provider.key)
        for n, sub in enumerate(ids[worker::3] * 4):
            if n == 5:
                started.set()
            value = 1 + (n + worker) % 5
            response = caller.post("/v1/usage_events/batch", {"events": [
                {"id": f"race-{worker}-{n}", "subscription": sub, "meter": "storage", "value": value,
                 "timestamp": IN_PERIOD}]})
            assert response.status_code == 200, response.json
            (result,) = response.json["data"]
            assert result["status"] in (201, 409), result
            with lock:
                if result["status"] == 201:
                    accepted[sub] += value
                else:
                    assert result["error"]["code"] == "period_closed", result
                    refused += 1

    threads = [threading.Thread(target=send, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    started.wait(10)
    report = _close(app, tenant.id, chunk=10)
    for t in threads:
        t.join()
    assert report.status == "closed"
    assert sum(accepted.values()) > 60 * 10 and refused, \
        f"the events should have raced the close ({sum(accepted.values()) - 600} GB accepted, {refused} refused)"
    rated = dict(_sql(app, "SELECT c.subscription_id, c.quantity FROM usage_charges c JOIN usage_components u "
                           "ON u.id = c.component_id JOIN meters m ON m.id = u.meter_id WHERE m.code = 'storage' "
                           "AND m.tenant_id = :t AND c.period_start = :p", t=tenant.id, p=PERIOD))
    assert rated == {sub: str(gb) for sub, gb in accepted.items()}
    stored = dict(_sql(app, "SELECT e.subscription_id, sum(e.value) FROM usage_events e JOIN meters m "
                            "ON m.id = e.meter_id WHERE m.code = 'storage' AND e.tenant_id = :t "
                            "GROUP BY e.subscription_id", t=tenant.id))
    assert stored == accepted  # the refused were not stored


def test_identical_batches_sent_at_once_store_each_event_once(postgres_only, app, tenant):
    provider, ids = _metered(tenant, 4, events_each=0)
    batch = [{"id": f"same-{n}", "subscription": ids[n % 4], "meter": "storage", "value": 1 + n % 7,
              "timestamp": IN_PERIOD} for n in range(400)]

    def send(_):
        response = Caller(app.test_client(), provider.key).post("/v1/usage_events/batch", {"events": batch})
        assert response.status_code == 200, response.json
        return [(r["status"], r["replayed"]) for r in response.json["data"]]

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(send, range(4)))
    for n in range(400):  # each event stored by exactly one of the batches, a replay for the others
        assert {a[n][0] for a in answers} == {201} and sorted(a[n][1] for a in answers) == [False, True, True, True]
    stored = _sql(app, "SELECT count(*), count(DISTINCT event_id), sum(value) FROM usage_events WHERE tenant_id = :t",
                  t=tenant.id)[0]
    expected = sum(e["value"] for e in batch)
    assert tuple(stored) == (400, 400, expected)
    rolled = _sql(app, "SELECT sum(events), sum(total) FROM usage_rollups WHERE tenant_id = :t", t=tenant.id)[0]
    assert tuple(rolled) == (400, expected)


def test_concurrent_batches_into_the_same_hours_keep_the_time_weighted_integral_exact(postgres_only, app, tenant):
    """Four senders interleave samples of one GB-hours meter in the same hours: each hour's
    integral is recomputed from its events under the rollup's row lock, so the rollups give the
    integral of all the samples, whichever transaction came last."""
    from datetime import datetime, timedelta, timezone

    from aggregator.metering import aggregation as A

    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", {"code": "disk", "name": "Disk", "aggregation": "time_weighted",
                                     "unit": "GB-h"}).status_code == 201
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "disk", "name": "Disk", "currency": "AUD", "fees": [
        {"name": "Disk", "usage": [{"meter": "disk", "model": "per_unit", "unit_amount": "0.01"}]}]}
                         ).status_code == 201
    tenant.customer("c0")
    sub = provider.post("/v1/subscriptions", {"customer": "c0", "plan": "disk"}).json["id"]
    start = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)
    assert admin.post("/v1/test_clock/advance", {"to": "2026-11-10T16:00:00+00:00"}).status_code == 200
    samples = [(start + timedelta(seconds=37 * n + 0.123), 1 + (n * 7) % 50) for n in range(320)]

    def send(worker: int):
        caller = Caller(app.test_client(), provider.key)
        mine = [(n, s) for n, s in enumerate(samples) if n % 4 == worker]
        for i in range(0, len(mine), 10):
            response = caller.post("/v1/usage_events/batch", {"events": [
                {"id": f"d{n}", "subscription": sub, "meter": "disk", "value": value, "timestamp": at.isoformat()}
                for n, (at, value) in mine[i:i + 10]]})
            assert {r["status"] for r in response.json["data"]} == {201}, response.json

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(send, range(4)))
    now = datetime(2026, 11, 10, 16, tzinfo=timezone.utc)
    exact = sum(value * A.ms(at, (samples[n + 1][0] if n + 1 < len(samples) else now))
                for n, (at, value) in enumerate(samples))
    (line,) = provider.get(f"/v1/subscriptions/{sub}/usage").json["data"]
    assert line["quantity"] == A.format_quantity(A.Fraction(exact, A.MS_PER_HOUR))
