"""Rating at the close on PostgreSQL: each (subscription, fee, covered period, billing period) is
billed exactly once, whether the close runs again, runs concurrently, or the rating itself is run
again; and a subscription changed while its period closes is either rated with the change or
refused (409 period_closed), never half of each."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from tests.support.callers import Caller
from tests.support.close import PERIOD, _close, assert_invoices_are_their_bills
from tests.support.database import _sql

pytestmark = pytest.mark.slow

#: Rated bills, their charges and their keys: every count the same when each is billed once.
COUNTS = ("SELECT (SELECT count(*) FROM bills WHERE tenant_id = :t AND source = 'subscription'), "
          "(SELECT count(DISTINCT idempotency_key) FROM bills WHERE tenant_id = :t AND source = 'subscription'), "
          "(SELECT count(*) FROM subscription_charges c JOIN bills b ON b.id = c.bill_id WHERE b.tenant_id = :t), "
          "(SELECT count(*) FROM (SELECT DISTINCT c.subscription_id, c.fee_id, c.covered_start, c.period_start "
          "FROM subscription_charges c JOIN bills b ON b.id = c.bill_id WHERE b.tenant_id = :t) k), "
          "(SELECT coalesce(sum(amount), 0) FROM bills WHERE tenant_id = :t AND source = 'subscription')")


def _subscriptions(tenant, count: int) -> tuple[Caller, list[str]]:
    """`count` subscriptions of one provider's customers, half on a plan with a fee in advance and
    one in arrears, half on a plan billed in arrears only."""
    provider = tenant.provider()
    for code, fees in (("both", [{"name": "Hosting", "price": "31.00", "timing": "in_advance"},
                                 {"name": "Support", "price": "6.20", "timing": "in_arrears"}]),
                       ("arrears", [{"name": "Hosting", "price": "31.00", "timing": "in_arrears"}])):
        created = provider.post("/v1/plans", {"code": code, "name": code, "currency": "AUD", "fees": fees})
        assert created.status_code == 201, created.json
    ids = []
    for n in range(count):
        tenant.customer(f"c{n}")
        response = provider.post("/v1/subscriptions", {"customer": f"c{n}", "plan": ("both", "arrears")[n % 2]})
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    return provider, ids


def _expected(count: int) -> int:
    """Charges the first close bills: "both" settles the period and bills the next one in advance
    and bills Support in arrears; "arrears" bills Hosting in arrears."""
    return 3 * ((count + 1) // 2) + count // 2


def test_running_the_close_twice_rates_each_subscription_once(postgres_only, app, tenant):
    _subscriptions(tenant, 20)
    assert _close(app, tenant.id).invoices_created == 20
    first = tuple(_sql(app, COUNTS, t=tenant.id)[0])
    assert first[:4] == (_expected(20),) * 4 and first[4] > 0
    assert _close(app, tenant.id).invoices_created == 0
    assert tuple(_sql(app, COUNTS, t=tenant.id)[0]) == first


def test_concurrent_closes_rate_each_subscription_once(postgres_only, app, tenant):
    _subscriptions(tenant, 40)
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: _close(app, tenant.id, chunk=7), range(4)))
    assert sum(r.invoices_created for r in reports) == 40
    counts = tuple(_sql(app, COUNTS, t=tenant.id)[0])
    assert counts[:4] == (_expected(40),) * 4
    # each customer's invoice holds its own rated bills, each once
    assert_invoices_are_their_bills(app, tenant.id)


def test_rating_the_period_again_bills_nothing_more(postgres_only, app, tenant):
    from aggregator.accounts.service import tenant_settings
    from aggregator.catalog.rating_service import rate_period
    from aggregator.db import db
    from aggregator.periods.service import tenant_period

    _subscriptions(tenant, 10)
    _close(app, tenant.id)
    before = tuple(_sql(app, COUNTS, t=tenant.id)[0])
    with app.app_context():
        settings = tenant_settings(tenant.id, False)
        report = rate_period(settings, tenant_period(settings, date.fromisoformat(PERIOD)))
        db.session.commit()
    assert report.charges == _expected(10) and report.bills_created == 0
    assert tuple(_sql(app, COUNTS, t=tenant.id)[0]) == before


def test_changes_racing_the_close_are_rated_or_refused(postgres_only, app, tenant):
    """Providers change quantities (taking effect at once, in the closing period) while the close
    runs: each change is accepted before the period is marked closing, and rated, or refused
    with 409 period_closed; each subscription's charge carries its last accepted quantity."""
    provider, ids = _subscriptions(tenant, 60)
    accepted: dict[str, int] = {}
    refused = 0
    started = threading.Event()
    lock = threading.Lock()

    def change(worker: int):
        nonlocal refused
        caller = Caller(app.test_client(), provider.key)
        for n, sub in enumerate(ids[worker::3] * 3):
            if n == 5:
                started.set()
            quantity = 2 + (n + worker) % 4
            response = caller.patch(f"/v1/subscriptions/{sub}", {"quantity": quantity})
            assert response.status_code in (200, 409), response.json
            with lock:
                if response.status_code == 200:
                    accepted[sub] = quantity
                else:
                    assert response.json["error"]["code"] == "period_closed", response.json
                    refused += 1

    threads = [threading.Thread(target=change, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    started.wait(10)
    report = _close(app, tenant.id, chunk=10)
    for t in threads:
        t.join()
    assert report.status == "closed"
    assert accepted and refused, f"the changes should have raced the close ({len(accepted)} accepted, {refused})"
    rated = dict(_sql(app, "SELECT c.subscription_id, max(c.quantity) FROM subscription_charges c "
                           "WHERE c.kind = 'in_arrears' AND c.period_start = :p AND c.subscription_id IN "
                           "(SELECT id FROM subscriptions WHERE tenant_id = :t) GROUP BY c.subscription_id",
                      t=tenant.id, p=PERIOD))
    assert set(rated) == set(ids)
    for sub in ids:
        assert rated[sub] == accepted.get(sub, 1), sub
        assert provider.get(f"/v1/subscriptions/{sub}").json["quantity"] == accepted.get(sub, 1)


def test_subscriptions_created_while_the_period_closes_are_rated_or_refused(postgres_only, app, tenant):
    """Providers subscribe customers to a second plan while the close runs and rates their first
    subscriptions (its rated bills reference the customers): each new subscription is created
    before the period is marked closing and rated in it, or refused with 409 period_closed and
    not stored."""
    provider, first = _subscriptions(tenant, 90)
    customers = [f"c{n}" for n in range(90)]
    outcomes: dict[str, int] = {}
    started = threading.Event()

    def subscribe(worker: int):
        caller = Caller(app.test_client(), provider.key)
        for n, customer in enumerate(customers[worker::3]):
            if n == 5:
                started.set()
            response = caller.post("/v1/subscriptions", {"customer": customer, "plan": "both"})
            assert response.status_code in (201, 409), response.json
            if response.status_code == 409:
                assert response.json["error"]["code"] == "period_closed", response.json
            outcomes[customer] = response.status_code

    threads = [threading.Thread(target=subscribe, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    started.wait(10)
    report = _close(app, tenant.id, chunk=10)
    for t in threads:
        t.join()
    assert report.status == "closed"
    created = {c for c, status in outcomes.items() if status == 201}
    assert created and len(created) < len(customers), f"the subscriptions should have raced the close ({len(created)})"
    second = "SELECT cu.external_id FROM subscriptions s JOIN customers cu ON cu.id = s.customer_id " \
             "WHERE s.tenant_id = :t AND s.id <> ALL(:first)"
    stored = {r[0] for r in _sql(app, second, t=tenant.id, first=list(first))}
    assert stored == created
    rated = {r[0] for r in _sql(app, second.replace("FROM subscriptions s", "FROM subscription_charges c JOIN "
                                                    "subscriptions s ON s.id = c.subscription_id"),
                                t=tenant.id, first=list(first))}
    assert rated == created
