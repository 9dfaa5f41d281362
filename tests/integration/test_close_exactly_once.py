"""The close on PostgreSQL: exactly once under re-runs, concurrency and kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from aggregator.config import PROJECT_ROOT
from tests.support.callers import Caller
from tests.support.close import (
    INVOICED_BILLS,
    PERIOD,
    _assert_exactly_once,
    _close,
    _seed,
    assert_invoices_are_their_bills,
)
from tests.support.database import _sql
from tests.support.invoicing import bill_body

pytestmark = pytest.mark.slow


def test_running_the_close_twice_produces_the_same_invoices(postgres_only, app, tenant):
    _seed(app, tenant.id, customers=30, bills_each=3)
    assert _close(app, tenant.id).invoices_created == 30
    assert _close(app, tenant.id).invoices_created == 0
    _assert_exactly_once(app, tenant.id, 30, 90)


def test_concurrent_closes_never_duplicate(postgres_only, app, tenant):
    _seed(app, tenant.id, customers=200, bills_each=2)
    with ThreadPoolExecutor(4) as pool:
        reports = list(pool.map(lambda _: _close(app, tenant.id, chunk=20), range(4)))
    assert sum(r.invoices_created for r in reports) == 200
    _assert_exactly_once(app, tenant.id, 200, 400)


def test_a_close_killed_half_way_is_completed_by_running_it_again(postgres_only, app, tenant, database_url):
    customers = 1000
    _seed(app, tenant.id, customers=customers, bills_each=2)
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "periods", "close", "--tenant", tenant.id,
               "--mode", "test", "--period", PERIOD, "--chunk", "25", "--no-pdf"]
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = _sql(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant.id)[0][0]
        if done >= 100:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _sql(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t", t=tenant.id)[0][0]
    assert 0 < done < customers, f"the kill should land half way ({done} invoices)"
    assert process.returncode == -signal.SIGKILL
    finished = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    _assert_exactly_once(app, tenant.id, customers, 2 * customers)


def test_bills_posted_while_the_period_closes_are_invoiced_exactly_once(postgres_only, app, tenant, clock):
    """Providers keep posting while the test clock passes the period end and the close runs:
    every accepted bill ends in exactly one invoice of the closed period or waits, pending, in
    the next period. None is lost, none is invoiced twice."""
    from aggregator.testmode import TestClockRecord  # noqa: F401 (table exists)

    customers = [tenant.customer(f"c{i}")["external_id"] for i in range(5)]
    provider = tenant.provider()
    _sql(app, "INSERT INTO test_clocks (tenant_id, now) VALUES (:t, :now)",
         t=tenant.id, now=datetime(2026, 11, 24, 12, 59, 59, tzinfo=timezone.utc))
    accepted: list[dict] = []
    lock, stop = threading.Lock(), threading.Event()

    def post_bills(worker: int):
        caller = Caller(app.test_client(), provider.key)
        n = 0
        while not stop.is_set() and n < 400:
            response = caller.post("/v1/bills", bill_body(customer=customers[n % 5], amount="1.00"),
                                   headers={"Idempotency-Key": f"w{worker}-{n}"})
            assert response.status_code == 201, response.json
            with lock:
                accepted.append(response.json)
                if sum(b["period"] != PERIOD for b in accepted[-100:]) == 100:
                    stop.set()  # a hundred in a row in the next period: the clock has passed its end
            n += 1

    threads = [threading.Thread(target=post_bills, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(accepted) < 100:  # bills are coming in
        assert time.monotonic() < deadline and all(t.is_alive() for t in threads), f"{len(accepted)} bills"
        time.sleep(0.01)
    advanced = tenant.admin["test"].post("/v1/test_clock/advance", {"to": "2026-11-24T13:00:00+00:00"})
    assert advanced.status_code == 200, advanced.json
    for t in threads:
        t.join()

    in_period = [b["id"] for b in accepted if b["period"] == PERIOD]
    later = [b["id"] for b in accepted if b["period"] != PERIOD]
    assert in_period and later, "the close should have happened while bills were posted"
    tenant.admin["test"].post(f"/v1/periods/{PERIOD}/close")
    invoiced = [r[0] for r in _sql(app, INVOICED_BILLS, t=tenant.id)]
    assert sorted(invoiced) == sorted(in_period)  # each exactly once
    subtotals = _sql(app, "SELECT sum(subtotal) FROM invoices WHERE tenant_id = :t AND period_start = :s",
                     t=tenant.id, s=PERIOD)[0][0]
    assert subtotals == 100 * len(in_period)  # every accepted bill counted in its invoice's total
    caller = Caller(app.test_client(), provider.key)
    for status, expected in (("invoiced", in_period), ("pending", later)):  # as the API shows them
        assert sorted(_all_bill_ids(caller, status)) == sorted(expected)


def _all_bill_ids(caller, status: str) -> list[str]:
    ids, after = [], ""
    while True:
        page = caller.get(f"/v1/bills?status={status}&limit=100" + (f"&starting_after={after}" if after else "")).json
        ids += [b["id"] for b in page["data"]]
        if not page["has_more"]:
            return ids
        after = ids[-1]


def test_bills_cancelled_while_the_period_closes_are_either_cancelled_or_invoiced(postgres_only, app, tenant):
    """Cancels race the close: each bill ends either cancelled (out of every invoice) or refused
    with 409 and invoiced; each invoice's total is exactly its uncancelled bills."""
    provider = tenant.provider()
    _seed(app, tenant.id, customers=400, bills_each=2, provider=provider.id)
    bill_ids = [r[0] for r in _sql(app, "SELECT id FROM bills WHERE tenant_id = :t ORDER BY customer_id, id",
                                   t=tenant.id)]
    outcomes: dict[str, int] = {}
    started = threading.Event()

    def cancel(worker: int):
        caller = Caller(app.test_client(), provider.key)
        for n, bill_id in enumerate(bill_ids[worker::4]):
            if n == 10:
                started.set()
            response = caller.delete(f"/v1/bills/{bill_id}")
            assert response.status_code in (200, 409), response.json
            if response.status_code == 409:
                assert response.json["error"]["code"] in ("period_closed", "bill_already_invoiced")
            outcomes[bill_id] = response.status_code

    threads = [threading.Thread(target=cancel, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    started.wait(10)
    report = _close(app, tenant.id, chunk=10)
    for t in threads:
        t.join()
    cancelled = {b for b, status in outcomes.items() if status == 200}
    refused = {b for b, status in outcomes.items() if status == 409}
    assert cancelled and refused, "the cancels should have raced the close"
    assert report.status == "closed"
    statuses = dict(_sql(app, "SELECT id, status FROM bills WHERE tenant_id = :t", t=tenant.id))
    assert {b for b, s in statuses.items() if s == "cancelled"} == cancelled
    assert set(r[0] for r in _sql(app, INVOICED_BILLS, t=tenant.id)) == set(bill_ids) - cancelled
    assert_invoices_are_their_bills(app, tenant.id)


def test_finalizing_one_invoice_twice_at_once_uses_one_number(postgres_only, app, tenant):
    """Manual review: two finalize requests race; the sequence stays gapless."""
    tenant.admin["test"].patch("/v1/tenant", {"invoice_review": "manual"})
    _seed(app, tenant.id, customers=2, bills_each=1)
    _close(app, tenant.id)
    first, second = sorted(r[0] for r in _sql(app, "SELECT id FROM invoices WHERE tenant_id = :t", t=tenant.id))
    barrier = threading.Barrier(4)

    def finalize(_):
        caller = Caller(app.test_client(), tenant.admin["test"].key)
        barrier.wait()
        return caller.post(f"/v1/invoices/{first}/finalize")

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(finalize, range(4)))
    assert {r.status_code for r in responses} == {200}
    assert {r.json["number"] for r in responses} == {"INV-2026-000001"}
    assert tenant.admin["test"].post(f"/v1/invoices/{second}/finalize").json["number"] == "INV-2026-000002"
