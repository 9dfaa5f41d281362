#!/usr/bin/env python
"""Email delivery benchmark: invoice emails with their PDFs, through the email queue, to a local
SMTP server (aiosmtpd) running in a separate process.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/deliver_email.py                  # 1,000 invoice emails
    .venv/bin/python bench/deliver_email.py --quick          # 20 emails, a few seconds
    .venv/bin/python bench/deliver_email.py --workers 1      # one worker process (default 2)

What it does:
  1. setup (not timed): drops and creates the database (default
     postgresql://postgres@127.0.0.1:5432/aggregator_bench_email, ..._quick with --quick) and
     runs the migrations; creates a tenant, --emails customers with an address and one live bill
     each (over the API, with the Flask test client), and closes the period (close_service): one
     finalized invoice per customer. One invoice's PDF is rendered (WeasyPrint) and stored as
     every invoice's PDF (rendering has its own benchmark, bench/pdf.py); `invoice.pdf_ready` is
     recorded for each.
  2. starts the SMTP server in a child process: aiosmtpd on a free local port, a handler that
     counts messages and bytes and discards them.
  3. dispatch (timed): the outbox dispatcher records one delivery per invoice (and the period
     summary to finance).
  4. send (timed): --workers worker processes (default 2, started beforehand, as `aggregator
     worker` processes are) each run `due.drain(EMAIL_QUEUE)`: claim batches of deliveries
     (SKIP LOCKED: each its own), build each message (templates in the tenant's locale, the PDF
     read from storage and attached), send them over --connections kept-open SMTP connections
     per worker, record them sent. emails/s = sent / wall time from the start signal to the
     last worker's end.
  5. ceiling (timed): plain smtplib sending one prebuilt message of the same size (bytes built
     once) --emails times over one connection: what this server takes on this machine.
  6. verifies that every delivery is sent once and the server counted exactly the messages sent.

Target: >= 200 emails/s. Exit status 1 when verification fails (and, with --check-targets,
when the target is missed).
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import smtplib
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 200.0


# --- the SMTP server, in its own process ----------------------------------------------------------

def _serve(port: int, ready, stop, counts) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server, session, envelope):
            counts[0] += 1
            counts[1] += len(envelope.content)
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    asyncio.set_event_loop(None)


def _send_worker(n: int, port: int, connections: int, profile: str | None, go, started, results) -> None:
    """A worker process (as `aggregator worker` runs them): its own app, its own mailer, draining
    the email queue once told to start. -> (sent, failed, time.time() at the end)."""
    from aggregator import create_app, due
    from aggregator.mail.due_work import EMAIL_QUEUE
    from aggregator.mail.mailer import Mailer, transport_from_url

    app = create_app()
    url = f"smtp://127.0.0.1:{port}?connections={connections}"
    mailer = Mailer(live=transport_from_url(url), test=transport_from_url(url), default_from="billing@bench.example")
    with app.app_context():
        adapters = app.extensions["aggregator.adapters"].replacing(mailer=mailer)
        started.put(True)
        go.wait()
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        worked = due.drain(EMAIL_QUEUE, adapters)
        end = time.time()
        if profiler:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{n}")
    mailer.close()
    results.put((worked.done, worked.failed, end))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- setup ------------------------------------------------------------------------------------

def _reset_database(url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _setup(app, emails: int) -> str:
    """A live tenant, `emails` customers with an address and a bill each, the period closed and
    every invoice given a PDF. -> the tenant id."""
    import sqlalchemy as sa

    from aggregator.accounts import service as accounts
    from aggregator.consolidate import close_service, pdf_service
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db
    from aggregator.events.service import NewEvent, record
    from aggregator.periods.models import PeriodRecord

    client = app.test_client()
    with app.app_context():
        now = app.extensions["aggregator.adapters"].clocks.base.now()
        created = accounts.create_tenant({"name": "Bench Market", "timezone": "UTC", "default_currency": "USD",
                                          "finance_email": "finance@bench.example"}, now)
        tenant_id, key = created.tenant.id, created.admin_keys["live"]
    auth = {"Authorization": f"Bearer {key}"}
    client.patch("/v1/tenant", json={"email_from": "billing@bench.example", "email_from_name": "Bench Market"},
                 headers=auth)
    provider = client.post("/v1/providers", json={"name": "App", "revenue_share_rate": "0.30"}, headers=auth).json
    for n in range(emails):
        response = client.post("/v1/customers", json={"external_id": f"c{n}", "name": f"Customer {n}",
                                                      "email": f"c{n}@bench.example", "currency": "USD"}, headers=auth)
        assert response.status_code == 201, response.json
    bills = [{"customer": f"c{n}", "amount": "19.99", "currency": "USD", "revenue_share": True,
              "description": "Pro plan", "idempotency_key": f"b{n}"} for n in range(emails)]
    for i in range(0, emails, 1000):
        response = client.post("/v1/bills/batch", json={"bills": bills[i:i + 1000]},
                               headers={"Authorization": f"Bearer {provider['api_key']}"})
        assert response.status_code in (200, 207), response.json
    with app.app_context():
        [period] = db.session.scalars(sa.select(PeriodRecord).where(PeriodRecord.tenant_id == tenant_id,
                                                                    PeriodRecord.livemode.is_(True))).all()
        report = close_service.close_period(tenant_id, True, period.start, period.end_at + timedelta(seconds=1))
        assert report.closed, report
        adapters = app.extensions["aggregator.adapters"]
        ids = db.session.scalars(sa.select(Invoice.id).where(Invoice.tenant_id == tenant_id)
                                 .order_by(Invoice.id)).all()
        assert len(ids) == emails
        pdf_service.render_claimed(ids[:1], adapters)  # one real PDF, stored, with its pdf_ready
        first = db.session.get(Invoice, ids[0])
        db.session.execute(sa.update(Invoice).where(Invoice.id.in_(ids[1:]))
                           .values(pdf_path=first.pdf_path, pdf_sha256=first.pdf_sha256))
        record(tenant_id, True, period.end_at, [NewEvent("invoice.pdf_ready", i, {"object": {"id": i}})
                                                for i in ids[1:]])
        db.session.commit()
        return tenant_id


def _ceiling(port: int, message: bytes, count: int) -> float:
    """Plain smtplib, one connection, the same prebuilt message: messages/s."""
    connection = smtplib.SMTP("127.0.0.1", port)
    started = time.perf_counter()
    for _ in range(count):
        connection.sendmail("billing@bench.example", ["ceiling@bench.example"], message)
    elapsed = time.perf_counter() - started
    connection.quit()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=1, help="SMTP connections per worker")
    parser.add_argument("--workers", type=int, default=2, help="worker processes draining the email queue")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/aggregator_bench_email")
    parser.add_argument("--quick", action="store_true", help="20 emails: checks that the script works")
    parser.add_argument("--check-targets", action="store_true")
    parser.add_argument("--profile", metavar="PATH", help="cProfile the send step into PATH.<worker>")
    args = parser.parse_args()
    if args.quick:
        args.emails, args.database_url = 20, args.database_url + "_quick"

    import tempfile

    import sqlalchemy as sa

    _reset_database(args.database_url)
    os.environ["AGGREGATOR_DATABASE_URL"] = args.database_url
    storage = tempfile.mkdtemp(prefix="bench-email-")
    os.environ["AGGREGATOR_STORAGE_DIR"] = storage

    import flask_migrate

    from aggregator import create_app, due
    from aggregator.db import db
    from aggregator.events.dispatch import DISPATCH_QUEUE
    from aggregator.mail.mailer import Mailer, transport_from_url
    from aggregator.mail.models import EmailDelivery

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade(directory=str(ROOT / "migrations"))
    print(f"setup: {args.emails} customers, bills, close, one PDF ...", flush=True)
    tenant_id = _setup(app, args.emails)

    port = _free_port()
    context = multiprocessing.get_context("spawn")
    ready, stop, counts = context.Event(), context.Event(), context.Array("q", 2)
    go, started_workers, results = context.Event(), context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(port, ready, stop, counts), daemon=True)
    server.start()
    failures = []
    try:
        if not ready.wait(30):
            raise RuntimeError("the SMTP server did not start")
        mailer = Mailer(live=transport_from_url(f"smtp://127.0.0.1:{port}?connections={args.connections}"),
                        test=transport_from_url(f"smtp://127.0.0.1:{port}"), default_from="billing@bench.example")
        with app.app_context():
            adapters = app.extensions["aggregator.adapters"].replacing(mailer=mailer)
            started = time.perf_counter()
            dispatched = due.drain(DISPATCH_QUEUE, adapters)
            dispatch_s = time.perf_counter() - started
            recorded = db.session.scalar(sa.select(sa.func.count()).select_from(EmailDelivery))

            workers = [context.Process(target=_send_worker, args=(
                n, port, args.connections, args.profile, go, started_workers, results), daemon=True)
                for n in range(args.workers)]
            for worker in workers:
                worker.start()
            for _ in workers:
                if not started_workers.get(timeout=120):
                    raise RuntimeError("a sending worker did not start")
            begun = time.time()
            go.set()
            finished = [results.get(timeout=600) for _ in workers]
            for worker in workers:
                worker.join(30)
            send_s = max(end for _, _, end in finished) - begun
            sent = due.Worked(sum(d for d, _, _ in finished), sum(f for _, f, _ in finished))
            mailer.close()

            statuses = dict(db.session.execute(sa.select(EmailDelivery.status, sa.func.count())
                                               .group_by(EmailDelivery.status)).all())
            sample = db.session.scalars(sa.select(EmailDelivery).where(EmailDelivery.kind == "invoice")
                                        .limit(1)).one()
            from aggregator.mail import delivery_service

            claim = delivery_service.Claim("bench", [sample.id])
            db.session.execute(sa.update(EmailDelivery).where(EmailDelivery.id == sample.id)
                               .values(locked_by="bench"))
            message = delivery_service._build(claim, adapters, adapters.clocks.base.now(),
                                              delivery_service._Results())[True][0].message
            db.session.rollback()
        received_by_queue = counts[0]
        prebuilt = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # as SMTP carries it
        ceiling = _ceiling(port, prebuilt, args.emails)
        time.sleep(0.2)
        received_total = counts[0]
    finally:
        stop.set()
        server.join(10)

    expected = args.emails + 1  # the invoices and the period summary
    if recorded != expected:
        failures.append(f"{recorded} deliveries recorded, expected {expected}")
    if statuses != {"sent": expected} or sent.done != expected:
        failures.append(f"deliveries {statuses}, queue sent {sent.done}")
    if received_by_queue != expected or received_total != expected + args.emails:
        failures.append(f"the server received {received_by_queue} (then {received_total}), expected {expected}")
    rate = sent.done / send_s
    print()
    print(f"tenant {tenant_id}: {args.emails} invoice emails + 1 period summary; "
          f"message {len(prebuilt) / 1024:.1f} KiB "
          f"(PDF attached); {args.workers} worker process(es) x {args.connections} SMTP connection(s); "
          f"{os.cpu_count()} cores")
    print(f"{'step':<34}{'items':>8}{'seconds':>10}{'items/s':>10}")
    print(f"{'dispatch (record deliveries)':<34}{dispatched.done:>8}{dispatch_s:>10.2f}"
          f"{dispatched.done / dispatch_s:>10.0f}")
    print(f"{'send (email queue)':<34}{sent.done:>8}{send_s:>10.2f}{rate:>10.0f}")
    print(f"{'server ceiling (smtplib, 1 conn)':<34}{args.emails:>8}{args.emails / ceiling:>10.2f}{ceiling:>10.0f}")
    print(f"\nemails/s: {rate:.0f} (target >= {TARGET:.0f}); {rate / ceiling:.0%} of the server's ceiling")
    for failure in failures:
        print("FAIL:", failure)
    if failures or (args.check_targets and rate < TARGET):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
