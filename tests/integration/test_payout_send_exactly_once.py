"""Payouts sent by Stripe Connect on PostgreSQL: a sending worker killed with `kill -9` part way
(some transfers made, one made but its answer never read), then the queue run again after its
lease: every payout is paid by exactly one transfer, counted where the money is (the tests'
Stripe peer, which records every transfer; localstripe has no Connect)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from aggregator.config import PROJECT_ROOT
from tests.support.database import _sql
from tests.support.invoicing import advance, send
from tests.support.payouts import PAYOUT_DAY, _run_queue

pytestmark = pytest.mark.slow

PROVIDERS = 12
RUN = """
import os, sys
from datetime import datetime, timezone
from aggregator import create_app, due
from aggregator.due import Lane
from aggregator.payouts.due_work import SEND_QUEUE

due.set_lease(float(os.environ["AGGREGATOR_LEASE_SECONDS"]))
app = create_app()
with app.app_context():
    adapters = app.extensions["aggregator.adapters"]
    while SEND_QUEUE.run_batch(adapters, datetime.now(timezone.utc), 2, Lane(sys.argv[1], False)).taken:
        pass
"""


def test_a_sender_killed_part_way_then_run_again_pays_every_payout_by_one_transfer(
        postgres_only, app, tenant, database_url, peer, clock):  # noqa: F811
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242",
                                      "stripe_api_base": peer.url}).status_code == 200
    tenant.customer("cust-1")
    assert admin.patch("/v1/customers/cust-1", {"stripe_customer_id": "cus_A",
                                                "stripe_payment_method": "pm_A"}).status_code == 200
    for n in range(PROVIDERS):
        provider = tenant.provider(name=f"App {n}")
        peer.peer.accounts.add(f"acct_app{n}")
        assert admin.patch(f"/v1/providers/{provider.id}", {"stripe_account_id": f"acct_app{n}"}).status_code == 200
        send(provider, f"b{n}", amount=f"{10 + n}.00")
    advance(tenant, PAYOUT_DAY)
    assert admin.post("/v1/payouts/approve", {"period": "2026-10-25"}).status_code == 200
    ids = [p["id"] for p in admin.get("/v1/payouts", query_string={"limit": 100}).json["data"]]
    assert len(ids) == PROVIDERS

    peer.peer.slow_seconds = 0.4
    peer.peer.fail.extend(["slow_after"] * PROVIDERS)  # each transfer is made, then answered late
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url, "AGGREGATOR_LEASE_SECONDS": "2",
           "AGGREGATOR_SECRET_KEYS": app.config["AGGREGATOR_SETTINGS"].secret_key_file.read_text().strip(),
           # the tenant's own Stripe peer on 127.0.0.1, as the tests' app allows it
           "AGGREGATOR_STRIPE_TENANT_API_BASE": "1", "AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE": "1"}
    process = subprocess.Popen([sys.executable, "-c", RUN, tenant.id], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while len(peer.peer.transfers) < 3:  # some made; the worker waits for an answer now
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "the sender never started"
        time.sleep(0.01)
    time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    paid = _sql(app, "SELECT count(*) FROM payouts WHERE tenant_id = :t AND status = 'paid'", t=tenant.id)[0][0]
    assert paid < PROVIDERS, "the kill should land part way"

    peer.peer.fail.clear()
    for _ in range(20):  # run as of 2030: past the killed worker's claims (2 s leases) and any backoff
        if not _run_queue(app, tenant, clock.now().replace(year=2030)).taken:
            break
    statuses = _sql(app, "SELECT status, count(*) FROM payouts WHERE tenant_id = :t GROUP BY status", t=tenant.id)
    assert dict(statuses) == {"paid": PROVIDERS}
    per_payout = Counter(t["metadata"]["payout"] for t in peer.peer.transfers.values())
    assert set(per_payout) == set(ids) and set(per_payout.values()) == {1}, per_payout
    journals = _sql(app, "SELECT count(*) FROM ledger_journals WHERE tenant_id = :t AND kind = 'payout_sent'",
                    t=tenant.id)[0][0]
    assert journals == PROVIDERS
