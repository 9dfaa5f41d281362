"""Worker processes against one PostgreSQL: two share a close of many customers (each invoice,
PDF, event, webhook delivery and email exactly once), one killed with kill -9 mid-render and another finishing after its
claims expire, and one that was down past several due instants catching up in order."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from aggregator.config import PROJECT_ROOT
from tests.smtp_server import SmtpServer
from tests.support.close import PERIOD, _assert_exactly_once, _seed
from tests.support.database import _sql
from tests.support.invoicing import send
from tests.webhook_receiver import Receiver

pytestmark = [pytest.mark.slow]

DONE = re.compile(r"(\S+) (\d+) done")


@pytest.fixture
def app(own_database):
    """An app on a database of each test's own: the workers started here do whatever is due in
    their database, which in the tests' shared one includes all that earlier tests left due."""
    return own_database.app


@pytest.fixture
def database_url(own_database) -> str:
    return own_database.url


def _open_period(app, tenant_id: str) -> None:
    """The period the seeded bills are in, recorded as intake records it (which nudges the lane)."""
    from aggregator.accounts.models import TenantSettings
    from aggregator.db import db
    from aggregator.periods.service import ensure_period_row, tenant_period

    with app.app_context():
        settings = db.session.get(TenantSettings, (tenant_id, False))
        ensure_period_row(tenant_id, False, tenant_period(settings, date.fromisoformat(PERIOD)))
        db.session.commit()


class Workers:
    """Worker processes (python -m aggregator.worker) with their logs in files."""

    def __init__(self, app, database_url: str, folder: Path, **env):
        self.folder, self.processes, self.logs = folder, [], []
        self.storage = app.config["AGGREGATOR_SETTINGS"].storage_dir  # the API serves what they store
        self.env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url,
                    "AGGREGATOR_STORAGE_DIR": str(self.storage), "AGGREGATOR_TICK_SECONDS": "1",
                    "AGGREGATOR_DRAIN_SECONDS": "0.2", **env}

    def start(self, *args: str) -> subprocess.Popen:
        log = self.folder / f"worker-{len(self.processes)}.log"
        process = subprocess.Popen([sys.executable, "-m", "aggregator.worker", *args], cwd=PROJECT_ROOT,
                                   env=self.env, stderr=log.open("w"))
        self.processes.append(process)
        self.logs.append(log)
        return process

    def wait_started(self) -> None:
        """Until every worker's scheduler runs (its log says so)."""
        _wait_for(lambda: all("worker started" in log.read_text() for log in self.logs), self,
                  what="the workers to start")

    def stop(self) -> list[int]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=60) for process in self.processes]

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def done(self, queue: str, index: int | None = None) -> int:
        """Items of `queue` each worker (or the one at `index`) logged as done."""
        logs = self.logs if index is None else [self.logs[index]]
        return sum(int(n) for log in logs for line in log.read_text().splitlines() if "drain:" in line
                   for name, n in DONE.findall(line) if name == queue)

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs)


def _wait_for(condition, workers: Workers, seconds: float = 150.0, what: str = "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{workers.log_text()}")
        if any(p.poll() not in (None, 0) for p in workers.processes if p.returncode != -signal.SIGKILL):
            pytest.fail(f"a worker died\n{workers.log_text()}")
        time.sleep(0.2)


def _rendered(app, tenant_id: str) -> int:
    return _sql(app, "SELECT count(*) FROM invoices WHERE tenant_id = :t AND pdf_sha256 IS NOT NULL",
                t=tenant_id)[0][0]


def _totals(app) -> tuple[int, int]:
    """Events dispatched and PDFs stored in the whole database."""
    return (_sql(app, "SELECT count(*) FROM events WHERE dispatched")[0][0],
            _sql(app, "SELECT count(*) FROM invoices WHERE pdf_sha256 IS NOT NULL")[0][0])


def _pdf_ready_per_invoice(app, tenant_id: str) -> set[int]:
    return {r[0] for r in _sql(app, "SELECT count(e.id) FROM invoices i LEFT JOIN events e ON e.object_id = i.id "
                                    "AND e.type = 'invoice.pdf_ready' WHERE i.tenant_id = :t GROUP BY i.id",
                               t=tenant_id)}


def _pending(app, table: str, tenant_id: str) -> int:
    return _sql(app, f"SELECT count(*) FROM {table} WHERE tenant_id = :t AND status = 'pending'", t=tenant_id)[0][0]


def test_two_workers_share_a_close_and_do_each_invoice_pdf_event_webhook_and_email_once(
        postgres_only, app, tenant, database_url, tmp_path):
    customers = 30
    _seed(app, tenant.id, customers=customers, bills_each=2)
    _sql(app, "UPDATE customers SET email = external_id || '@customers.example' WHERE tenant_id = :t", t=tenant.id)
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"finance_email": "finance@platform.example"}).status_code == 200
    receiver = Receiver()
    assert admin.post("/v1/webhook_endpoints", {"url": receiver.url(), "enabled_events": ["*"]}).status_code == 201
    dispatched_before, stored_before = _totals(app)
    with SmtpServer() as smtp:
        workers = Workers(app, database_url, tmp_path, AGGREGATOR_TEST_SMTP_URL=smtp.url,
                          AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE="1",  # the receiver is on 127.0.0.1
                          AGGREGATOR_SECRET_KEYS=app.config["AGGREGATOR_SETTINGS"].secret_key_file.read_text().strip())
        workers.start(), workers.start()
        try:
            workers.wait_started()
            _open_period(app, tenant.id)  # the close is due now, with both workers up to share it
            _wait_for(lambda: _rendered(app, tenant.id) == customers
                      and _sql(app, "SELECT count(*) FROM events WHERE NOT dispatched")[0][0] == 0
                      and _pending(app, "webhook_deliveries", tenant.id) == 0
                      and _pending(app, "email_deliveries", tenant.id) == 0,
                      workers, what="every PDF rendered, every event dispatched, webhook and email delivered")
        finally:
            statuses = workers.stop()
            receiver.close()
        received_mail = list(smtp.handler.received)
    assert statuses == [0, 0], workers.log_text()
    _assert_exactly_once(app, tenant.id, customers, 2 * customers)
    dispatched_after, stored_after = _totals(app)
    # Each worker logs what it did: the sums equal what the database gained, so nothing twice.
    assert workers.done("events.dispatch") == dispatched_after - dispatched_before
    assert workers.done("pdf.render") == stored_after - stored_before
    assert workers.done("pdf.render", 0) > 0 and workers.done("pdf.render", 1) > 0  # shared
    files = list((workers.storage / "invoices" / tenant.id / "test").glob("*.pdf"))
    assert len(files) == customers
    assert _pdf_ready_per_invoice(app, tenant.id) == {1}
    assert _sql(app, "SELECT max(pdf_attempts) FROM invoices WHERE tenant_id = :t", t=tenant.id)[0][0] == 0
    # Every event of the tenant reached the endpoint once (its webhook-id is the event id) ...
    events = {r[0] for r in _sql(app, "SELECT id FROM events WHERE tenant_id = :t", t=tenant.id)}
    delivered = Counter(r.headers["webhook-id"] for r in receiver.received)
    assert set(delivered) == events and set(delivered.values()) == {1}
    # ... and each customer its invoice email, finance the period's summary, once each.
    recipients = Counter(to for m in received_mail for to in m.rcpt_tos
                         if to.endswith("@customers.example") or to == "finance@platform.example")
    assert len(recipients) == customers + 1 and set(recipients.values()) == {1}
    assert recipients["finance@platform.example"] == 1


def test_a_worker_killed_mid_render_leaves_nothing_that_another_does_not_finish(postgres_only, app, tenant,
                                                                               database_url, tmp_path):
    customers = 40
    _seed(app, tenant.id, customers=customers, bills_each=1)
    _open_period(app, tenant.id)
    workers = Workers(app, database_url, tmp_path, AGGREGATOR_LEASE_SECONDS="2")
    first = workers.start()
    _wait_for(lambda: _rendered(app, tenant.id) >= 10, workers, what="rendering to start")
    first.send_signal(signal.SIGKILL)
    first.wait()
    rendered_at_kill = _rendered(app, tenant.id)
    assert rendered_at_kill < customers, "the kill should land mid-render"
    workers.start()
    try:
        _wait_for(lambda: _rendered(app, tenant.id) == customers, workers,
                  what="the second worker to render what the first left (after its claims expire)")
    finally:
        workers.stop()
    _assert_exactly_once(app, tenant.id, customers, customers)  # complete invoices, gapless numbers
    assert _pdf_ready_per_invoice(app, tenant.id) == {1}
    assert _sql(app, "SELECT max(pdf_attempts) FROM invoices WHERE tenant_id = :t", t=tenant.id)[0][0] == 0
    assert workers.done("pdf.render", 1) >= customers - rendered_at_kill


def _move_clock(tenant, to: str) -> None:
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": to, "wait": False})
    assert response.status_code == 202, response.json


def test_a_worker_down_past_several_due_instants_catches_up_in_order(postgres_only, app, tenant, database_url,
                                                                     tmp_path):
    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    provider = tenant.provider()
    for n, at in enumerate(["2026-11-11", "2026-12-10", "2027-01-10", "2027-02-10"]):
        _move_clock(tenant, f"{at}T00:00:00+00:00")  # nobody runs the due work meanwhile
        send(provider, f"k{n}", amount="10.00")
    _move_clock(tenant, "2027-03-01T00:00:00+00:00")
    workers = Workers(app, database_url, tmp_path)
    workers.start("--once")
    assert workers.processes[0].wait(timeout=180) == 0, workers.log_text()
    invoices = sorted(admin.get("/v1/invoices?limit=100").json["data"], key=lambda i: i["period"]["start"])
    assert [(i["number"], i["due_date"], i["finalized_at"]) for i in invoices] == [
        ("INV-2026-000001", "2026-12-02", "2026-11-24T13:00:00+00:00"),
        ("INV-2026-000002", "2027-01-02", "2026-12-24T13:00:00+00:00"),
        ("INV-2027-000003", "2027-02-02", "2027-01-24T13:00:00+00:00"),
        ("INV-2027-000004", "2027-03-02", "2027-02-24T13:00:00+00:00")]
    assert admin.get("/v1/test_clock").json["status"] == "ready"
    assert all(admin.get(f"/v1/invoices/{i['id']}/pdf").status_code == 200 for i in invoices)
