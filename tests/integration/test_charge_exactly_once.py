"""Charges on PostgreSQL: a charge run killed with `kill -9` at several points, then run again,
charges every invoice exactly once: counted where the money is, as PaymentIntents per invoice
at localstripe (which ignores Idempotency-Key, so only our own payment rows prevent a second
charge)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from aggregator.config import PROJECT_ROOT
from tests.support.close import _close, _seed
from tests.support.database import _sql

pytestmark = pytest.mark.slow

CHARGE_AT = datetime(2026, 12, 1, 22, 0, tzinfo=timezone.utc)  # the 2nd, 09:00 in Sydney
#: Three batches (50, 50, 20), as 300 invoices were two of the service's 200: a kill after the
#: first batch lands while the next one's calls are in flight.
INVOICES, BATCH = 120, 50
RUN = """
import os, sys
from datetime import datetime
from aggregator import create_app, due
from aggregator.payments import charge_service

due.set_lease(float(os.environ["AGGREGATOR_LEASE_SECONDS"]))
app = create_app()
with app.app_context():
    adapters = app.extensions["aggregator.adapters"]
    report = charge_service.charge_due(sys.argv[1], False, datetime.fromisoformat(sys.argv[2]), adapters,
                                       batch_size=int(sys.argv[3]))
    print(report.attempted, report.succeeded, report.requests)
"""


def _intents_per_invoice(localstripe, tenant_id: str) -> Counter:
    return Counter(pi.metadata["invoice_id"] for pi in localstripe.payment_intents()
                   if pi.to_dict().get("metadata", {}).get("tenant") == tenant_id)


class _IntentsMade:
    """Counts the tenant's PaymentIntents at localstripe as they are made, reading on from the last
    one seen (it lists them in the order made): polled often while a run charges, each call reads
    the new ones only, not every intent the server holds."""

    def __init__(self, localstripe, tenant_id: str):
        self.localstripe, self.tenant_id = localstripe, tenant_id
        self.last: str | None = None
        self.count = 0

    def __call__(self) -> int:
        while True:
            params = {"limit": 100, **({"starting_after": self.last} if self.last else {})}
            page = self.localstripe.client.v1.payment_intents.list(params=params)
            self.count += sum(pi.to_dict().get("metadata", {}).get("tenant") == self.tenant_id for pi in page.data)
            self.last = page.data[-1].id if page.data else self.last
            if not page.has_more:
                return self.count


def _count(app, statement: str, tenant_id: str) -> int:
    return _sql(app, statement, t=tenant_id)[0][0]


@pytest.mark.parametrize("kill_when", ["started", "mid_calls", "after_first_batch"])
def test_a_charge_run_killed_part_way_then_run_again_charges_every_invoice_once(
        postgres_only, app, tenant, database_url, localstripe, kill_when):
    _seed(app, tenant.id, customers=INVOICES, bills_each=1)
    assert _close(app, tenant.id).invoices_created == INVOICES
    stripe_customer, method = localstripe.customer_with_card()
    _sql(app, "UPDATE customers SET stripe_customer_id = :c, stripe_payment_method = :m WHERE tenant_id = :t",
         c=stripe_customer, m=method, t=tenant.id)
    response = tenant.admin["test"].patch("/v1/tenant", {
        "stripe_secret_key": "sk_test_aggregator4242", "stripe_api_base": localstripe.url,
        "stripe_rate_limit": 100, "stripe_concurrency": 10})
    assert response.status_code == 200, response.json
    assert _count(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t AND next_charge_at = "
                       "'2026-12-01T22:00:00Z'", tenant.id) == INVOICES
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url, "AGGREGATOR_LEASE_SECONDS": "1",
           "AGGREGATOR_SECRET_KEYS": app.config["AGGREGATOR_SETTINGS"].secret_key_file.read_text().strip(),
           # the tenant's own Stripe peer on 127.0.0.1, as the tests' app allows it
           "AGGREGATOR_STRIPE_TENANT_API_BASE": "1", "AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE": "1"}
    command = [sys.executable, "-c", RUN, tenant.id, CHARGE_AT.isoformat(), str(BATCH)]

    intents_made = _IntentsMade(localstripe, tenant.id)

    def landed() -> bool:
        if kill_when == "started":
            return _count(app, "SELECT count(*) FROM payments WHERE tenant_id = :t", tenant.id) > 0
        if kill_when == "mid_calls":
            return intents_made() >= 10  # ~25-35 made by then: the calls in flight still land
        return _count(app, "SELECT count(*) FROM payments WHERE tenant_id = :t AND status = 'succeeded'",
                      tenant.id) >= BATCH

    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300  # as long as the second run may take: a guard against a hang
    while not landed():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, f"the run never reached {kill_when}"
        time.sleep(0.05)  # the run charges at most 100/s: a kill lands within 5 charges of its mark
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    paid_at_kill = _count(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t AND status = 'paid'", tenant.id)
    assert paid_at_kill < INVOICES, "the kill should land part way"

    while _count(app, "SELECT count(*) FROM payments WHERE tenant_id = :t AND locked_until > now()", tenant.id):
        time.sleep(0.05)  # until the killed run's claims on its attempts expire (1 s leases)
    finished = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    assert _count(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t AND status = 'paid' "
                       "AND amount_paid = amount_due AND paid_at = '2026-12-01T22:00:00Z'", tenant.id) == INVOICES
    per_invoice = _intents_per_invoice(localstripe, tenant.id)
    assert len(per_invoice) == INVOICES and set(per_invoice.values()) == {1}, \
        f"PaymentIntents per invoice: {Counter(per_invoice.values())}"
    payments = _sql(app, "SELECT count(*), count(DISTINCT invoice_id), count(*) FILTER (WHERE status = 'succeeded'), "
                         "max(attempt) FROM payments WHERE tenant_id = :t", t=tenant.id)[0]
    assert tuple(payments) == (INVOICES, INVOICES, INVOICES, 1)  # the crashed attempts were resumed, not redone
    events = _sql(app, "SELECT type, count(*), count(DISTINCT object_id) FROM events WHERE tenant_id = :t AND type "
                       "IN ('invoice.paid', 'payment.succeeded') GROUP BY type", t=tenant.id)
    assert {(t, n, d) for t, n, d in events} == {("invoice.paid", INVOICES, INVOICES),
                                                  ("payment.succeeded", INVOICES, INVOICES)}
