#!/usr/bin/env python
"""Rendering across worker processes: N invoices' PDFs through the real queue, by 1 worker
process and then by 2.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/render.py             # 400 invoices, about 1.5 minutes
    .venv/bin/python bench/render.py --quick     # 12 invoices

What it does: drops and creates the database (default
postgresql://postgres@127.0.0.1:5432/aggregator_bench_render; ..._quick with --quick), runs the
migrations, creates a tenant (automatic finalization), N customers with one test-mode bill each
(SQL), and closes the period (close_service.close_period): N finalized invoices without PDFs,
held back (pdf_retry_at in the future). Then, for 1 and for 2 processes: starts
`flask --app wsgi worker run --processes K` (the supervisor, as in production), waits until
every process has started (their start-up is not measured), releases the invoices (one UPDATE:
the start of the clock), waits until the last PDF is stored, and stops the workers; invoices/s
= N / that time. Between runs the PDFs are cleared and held back again. Each invoice's PDF
must be recorded once (one invoice.pdf_ready event per invoice per run).

Target: 2 processes >= 1.8x the invoices/s of one.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import fresh_database  # noqa: E402
from close import BIN, CLK_TCK, ROOT, _machine_ticks, log  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_render"
TARGET_RATIO = 1.8
HOLD = "UPDATE invoices SET pdf_path = NULL, pdf_sha256 = NULL, pdf_locked_until = NULL, pdf_attempts = 0, " \
       "pdf_retry_at = '2100-01-01T00:00:00Z'"


def setup(conninfo: str, invoices: int) -> str:
    import flask_migrate
    import psycopg

    from aggregator import create_app
    from aggregator.accounts import service as accounts
    from aggregator.consolidate import close_service
    from aggregator.db import db

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        tenant_id = accounts.create_tenant(dict(name="Render bench", timezone="UTC", default_currency="USD",
                                                period_anchor_day=25, invoice_review="auto"),
                                           datetime(2026, 1, 1, tzinfo=timezone.utc)).tenant.id
        db.session.commit()
    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO providers (id, tenant_id, livemode, name, revenue_share_rate, created_at) "
                     "VALUES ('prov_bench', %s, false, 'Bench app', '0.3', now())", (tenant_id,))
        conn.execute("INSERT INTO customers (id, tenant_id, livemode, external_id, name, currency, tax_exempt, "
                     "created_at) SELECT 'cus_bench' || g, %s, false, 'c' || g, 'Customer ' || g, 'USD', false, "
                     "now() FROM generate_series(1, %s::int) g", (tenant_id, invoices))
        conn.execute("INSERT INTO bills (id, tenant_id, livemode, provider_id, customer_id, idempotency_key, "
                     "fingerprint, amount, currency, revenue_share, description, metadata, status, received_at, "
                     "period_start) SELECT 'bill_bench' || g, %s, false, 'prov_bench', 'cus_bench' || g, 'k' || g, "
                     "'\\x00', 1999, 'USD', true, 'Pro plan', '{}', 'pending', '2026-10-01T00:00:00Z', "
                     "'2026-09-25' FROM generate_series(1, %s::int) g", (tenant_id, invoices))
    with app.app_context():
        report = close_service.close_period(tenant_id, False, date(2026, 9, 25),
                                            datetime(2026, 10, 25, tzinfo=timezone.utc))
        assert report.invoices_created == invoices, report
        db.session.execute(db.text(HOLD))
        db.session.commit()
        db.engine.dispose()
    return tenant_id


def _process_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        fields = data[data.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def run(conninfo: str, app_url: str, processes: int, invoices: int, folder: Path) -> dict:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(HOLD)
        conn.execute("DELETE FROM events WHERE type = 'invoice.pdf_ready'")
    log_path = folder / f"workers-{processes}.log"
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, AGGREGATOR_STORAGE_DIR=str(folder / "storage"),
               AGGREGATOR_DRAIN_SECONDS="0.1", AGGREGATOR_TICK_SECONDS="30")
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    worker = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "worker", "run", "--processes", str(processes)],
                              cwd=ROOT, env=env, stderr=log_path.open("w"))
    try:
        deadline = time.monotonic() + 120
        while log_path.read_text().count("worker started") < processes:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise SystemExit(f"workers did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # every process past its first (idle) drain
        pids = _children(worker.pid) or [worker.pid]  # --processes 1 runs in the process itself
        with psycopg.connect(conninfo, autocommit=True) as conn:
            machine_before, workers_before = _machine_ticks(), _process_ticks(pids)
            started = time.monotonic()
            conn.execute("UPDATE invoices SET pdf_retry_at = NULL")
            while conn.execute("SELECT count(*) FROM invoices WHERE pdf_sha256 IS NULL").fetchone()[0]:
                if time.monotonic() - started > 1800:
                    raise SystemExit("rendering took too long")
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            machine_after, workers_after = _machine_ticks(), _process_ticks(pids)
            ready = conn.execute("SELECT count(*), count(DISTINCT object_id) FROM events "
                                 "WHERE type = 'invoice.pdf_ready'").fetchone()
            failed = conn.execute("SELECT count(*) FROM invoices WHERE pdf_attempts > 0").fetchone()[0]
    finally:
        worker.send_signal(signal.SIGTERM)
        status = worker.wait(timeout=120)
    if tuple(ready) != (invoices, invoices) or failed or status != 0:
        raise SystemExit(f"expected each of {invoices} PDFs once: pdf_ready {tuple(ready)}, failed {failed}, "
                         f"exit {status}\n{log_path.read_text()[-3000:]}")
    busy = ((machine_after[0] - machine_after[1]) - (machine_before[0] - machine_before[1])) / CLK_TCK
    worker_cpu = (workers_after - workers_before) / CLK_TCK
    return {"rate": invoices / elapsed, "cpu_ms": worker_cpu / invoices * 1000,
            "worker_cores": worker_cpu / elapsed, "other_cores": (busy - worker_cpu) / elapsed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--invoices", type=int, default=None)
    args = parser.parse_args(argv)
    invoices = args.invoices or (12 if args.quick else 400)
    url = args.database_url or (DEFAULT_URL + ("_quick" if args.quick else ""))
    app_url, conninfo = fresh_database(url)
    log(f"{invoices:,} finalized invoices without PDFs")
    setup(conninfo, invoices)
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        for processes in (1, 2):
            log(f"rendering with {processes} worker process(es)")
            rates[processes] = run(conninfo, app_url, processes, invoices, Path(folder))
    ratio = rates[2]["rate"] / rates[1]["rate"]
    print("\n| worker processes | invoices | invoices/s | worker CPU ms per invoice "
          "| cores: workers / rest of machine |")
    print("|--:|--:|--:|--:|--:|")
    for processes, r in rates.items():
        print(f"| {processes} | {invoices:,} | {r['rate']:.1f} | {r['cpu_ms']:.0f} | "
              f"{r['worker_cores']:.2f} / {r['other_cores']:.2f} |")
    print(f"\ntarget: 2 processes >= {TARGET_RATIO}x one: {'MET' if ratio >= TARGET_RATIO else 'NOT MET'} "
          f"(x{ratio:.2f}; {os.cpu_count()} cores)")
    if max(r["other_cores"] for r in rates.values()) > 0.25:
        print("note: other processes used > 0.25 cores: the machine was shared; 2 processes could not have "
              "2 cores. Rerun on a quiet machine.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
