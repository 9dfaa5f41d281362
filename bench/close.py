#!/usr/bin/env python
"""Period close benchmark: service.close_period over N customers x M bills on PostgreSQL.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/close.py                 # 100,000 customers, 1,000,000 bills
    .venv/bin/python bench/close.py --scale-check   # the same, then at a tenth of the size
    .venv/bin/python bench/close.py --quick         # 500 customers / 5,000 bills, seconds
    .venv/bin/python bench/close.py --reuse --profile /tmp/close.prof   # re-close, cProfile

What it does, per size:
  1. setup, in a child process (its memory never counts): drops and creates the database
     (default postgresql://postgres@127.0.0.1:5432/aggregator_bench_close, ..._quick with
     --quick, ..._tenth for the 1/10 run of --scale-check), runs `flask --app wsgi db upgrade`,
     creates a tenant with aggregator.accounts.service.create_tenant (UTC, anchor day 25, USD,
     20% tax, automatic finalization, so invoices are numbered), then writes with COPY:
     --providers providers, --customers customers (90% USD, 5% EUR, 5% GBP; 5% tax exempt,
     5% with their own tax rate), FX rates for the six pairs (effective 2026-09-01 and
     2026-10-20, which the close must use, and 2026-10-30, after the period end, which it must
     ignore) and --bills pending live-mode bills in period 2026-09-25 .. 2026-10-24, spread at
     random over the customers and the providers (every customer has at least one; ~5% in a
     currency other than the customer's; ~1% negative, and 0.5% of customers have only
     negative bills, so their invoice carries a credit forward). FK triggers are skipped during
     the COPY (session_replication_role = replica; the data is consistent by construction and
     verified afterwards), then VACUUM ANALYZE and CHECKPOINT, so the close starts from the
     state autovacuum would leave.
  2. the close, in a fresh child process: create_app() (AGGREGATOR_DATABASE_URL = the bench
     database), an app context, then times
         service.close_period(tenant_id, True, date(2026, 9, 25), now=2026-11-01T00:00Z, chunk)
     without PDFs. Measured: wall time, bills/s, customers/s, CPU seconds of this process and
     of the database's PostgreSQL backends, time spent inside SQL statements (SQLAlchemy
     cursor-execute events, grouped by statement), and memory: VmRSS sampled every 10 ms by a
     thread (baseline just before the close, peak during it) plus ru_maxrss before and after.
  3. verification (not timed): one invoice per customer, every bill invoiced exactly once (the
     live invoice of its customer and period; no bill line stored), each invoice's subtotal
     equal to the sum of its bills converted in SQL at the 2026-10-20 rates (ROUND_HALF_UP),
     tax and totals, carried credits, gapless numbers, the period closed, and the lines the
     service derives for a sample of invoices adding up to their subtotals.

Targets: >= 50,000 bills/s, peak RSS < 400 MB, and the same peak RSS at a tenth of the size
(--scale-check runs both and prints the ratio). Exit status 1 when verification fails (and,
with --check-targets, when a target is missed).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

from _common import code_label, finish, run_sizes, size_arguments, sized

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_close"
PERIOD_START = date(2026, 9, 25)  # anchor 25, UTC: ends 2026-10-25T00:00Z
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
TENANT_CURRENCY = "USD"
CURRENCIES = ("USD", "EUR", "GBP")
# (base, quote) -> rate in effect at the period end (effective 2026-10-20); decoys around it
RATES = {("EUR", "USD"): "1.083412", ("GBP", "USD"): "1.271905", ("USD", "EUR"): "0.923009",
         ("GBP", "EUR"): "1.173981", ("USD", "GBP"): "0.786222", ("EUR", "GBP"): "0.851802"}
TARGET_BILLS_PER_S = 50_000
TARGET_PEAK_RSS_MB = 400
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def urls(database_url: str) -> tuple[str, str, str, str]:
    """(SQLAlchemy URL for the app, psycopg conninfo, admin conninfo, database name)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("postgresql") or not url.database:
        raise SystemExit(f"--database-url must be a PostgreSQL URL naming a database: {database_url!r}")
    app_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    plain = url.set(drivername="postgresql")
    return (app_url, plain.render_as_string(hide_password=False),
            plain.set(database="postgres").render_as_string(hide_password=False), url.database)


# --- setup (child process) -------------------------------------------------------------------

def recreate_database(admin_conninfo: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _run_tag(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdefghjkmnpqrstvwxyz") for _ in range(16))


def _copy(conn, table: str, columns: list[str], rows, batch: int = 20_000) -> int:
    """COPY text-format lines (already escaped, tab-separated, no newline) into table."""
    n = 0
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            buf: list[str] = []
            for line in rows:
                buf.append(line)
                if len(buf) >= batch:
                    copy.write("\n".join(buf) + "\n")
                    n += len(buf)
                    buf.clear()
            if buf:
                copy.write("\n".join(buf) + "\n")
                n += len(buf)
    return n


DESCRIPTIONS = ["Pro plan – monthly subscription", "Seats ({n}) – Team plan", "API calls over quota: {n}k",
                "Storage add-on, {n} GB", "Support: premium tier", "Usage — {n} reports generated",
                "Add-on: SSO & audit log", "Overage: {n} extra projects", "Starter plan", "Credits pack ({n})"]


def setup(args) -> dict:
    import psycopg

    app_url, conninfo, admin_conninfo, dbname = urls(args.database_url)
    t0 = time.monotonic()
    log(f"recreating database {dbname!r}")
    recreate_database(admin_conninfo, dbname)
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, FLASK_DEBUG="0")
    env.pop("FLASK_APP", None)
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")

    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    from aggregator import create_app
    from aggregator.accounts import service as accounts

    app = create_app()
    with app.app_context():
        tenant_id = accounts.create_tenant(dict(
            name="Close bench", legal_name="Close Bench Ltd", timezone="UTC",
            default_currency=TENANT_CURRENCY, period_anchor_day=25, charge_day=2,
            default_tax_rate="0.2", invoice_prefix="INV", invoice_review="auto"),
            datetime(2026, 1, 1, tzinfo=timezone.utc)).tenant.id

    rng = random.Random(args.seed)
    tag = _run_tag(rng)
    n_cust, n_bills, n_prov = args.customers, args.bills, args.providers
    created = "2026-01-01 00:00:00+00"
    provider_ids = [f"prov_{tag}{i:010d}" for i in range(n_prov)]
    customer_ids = [f"cus_{tag}{i:010d}" for i in range(n_cust)]
    cust_currency = [rng.choices(CURRENCIES, weights=(90, 5, 5))[0] for _ in range(n_cust)]
    refund_only = {i for i in range(n_cust) if rng.random() < 0.005}

    with psycopg.connect(conninfo) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK trigger per COPY row
        t = time.monotonic()
        _copy(conn, "providers", ["id", "tenant_id", "livemode", "name", "revenue_share_rate", "created_at"],
              (f"{p}\t{tenant_id}\tt\tApp {i:02d}\t0.3\t{created}" for i, p in enumerate(provider_ids)))

        def customers():
            for i, cid in enumerate(customer_ids):
                r = rng.random()
                exempt, rate = ("t", "\\N") if r < 0.05 else ("f", "0.07") if r < 0.10 else ("f", "\\N")
                yield (f"{cid}\t{tenant_id}\tt\text-{i:07d}\tCustomer {i}\tbilling{i}@example.com\t"
                       f"{cust_currency[i]}\t{exempt}\t{rate}\t{created}")
        _copy(conn, "customers", ["id", "tenant_id", "livemode", "external_id", "name", "email", "currency",
                                  "tax_exempt", "tax_rate", "created_at"], customers())

        def fx():
            k = 0
            for (base, quote), rate in RATES.items():
                for eff, r in (("2026-09-01", "1.5"), ("2026-10-20", rate), ("2026-10-30", "2.5")):
                    yield f"fxr_{tag}{k:010d}\t{tenant_id}\tt\t{base}\t{quote}\t{r}\t{eff}\t{created}"
                    k += 1
        _copy(conn, "fx_rates", ["id", "tenant_id", "livemode", "base", "quote", "rate", "effective_date",
                                 "created_at"], fx())
        conn.commit()
        log(f"providers, customers, fx rates: {time.monotonic() - t:.1f}s")

        t = time.monotonic()
        owner = list(range(n_cust)) + [rng.randrange(n_cust) for _ in range(max(0, n_bills - n_cust))]
        owner = owner[:n_bills]
        rng.shuffle(owner)  # a customer's bills are scattered through the table, as received
        rand, randrange, urandom = rng.random, rng.randrange, os.urandom

        def bills():
            for j, c in enumerate(owner):
                currency = cust_currency[c]
                if rand() < 0.05:
                    currency = CURRENCIES[(CURRENCIES.index(currency) + 1 + randrange(2)) % 3]
                amount = randrange(100, 50_000)
                if c in refund_only or rand() < 0.01:
                    amount = -randrange(100, 20_000)
                d = DESCRIPTIONS[j % len(DESCRIPTIONS)].format(n=j % 97 + 1)
                if j % 5:
                    svc_start, svc_end = "2026-09-25", "2026-10-24"
                else:
                    svc_start, svc_end = "\\N", "\\N"
                day = 25 + j % 30
                received = f"2026-{9 if day <= 30 else 10}-{day if day <= 30 else day - 30:02d} 12:00:00+00"
                yield (f"bill_{tag}{j:010d}\t{tenant_id}\tt\t{provider_ids[randrange(n_prov)]}\t{customer_ids[c]}\t"
                       f"k{j}\t\\\\x{urandom(32).hex()}\t{amount}\t{currency}\tt\t{d}\t{svc_start}\t{svc_end}\t"
                       f"{{}}\tpending\t{received}\t{PERIOD_START.isoformat()}")
        n = _copy(conn, "bills", ["id", "tenant_id", "livemode", "provider_id", "customer_id", "idempotency_key",
                                  "fingerprint", "amount", "currency", "revenue_share", "description",
                                  "service_period_start", "service_period_end", "metadata", "status",
                                  "received_at", "period_start"], bills())
        conn.commit()
        log(f"{n:,} bills copied: {time.monotonic() - t:.1f}s")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        t = time.monotonic()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        log(f"vacuum analyze + checkpoint: {time.monotonic() - t:.1f}s; database {size / 2**20:,.0f} MB")
    return {"tenant_id": tenant_id, "setup_seconds": round(time.monotonic() - t0, 1),
            "refund_only_customers": len(refund_only), "database_mb": round(size / 2**20)}


def reset(args) -> dict:
    """--reuse: undo a previous close (no invoices, credits, periods, ledger journals), VACUUM FULL,
    ANALYZE. (The ledger is append-only: its triggers are off in this session's replica role.)"""
    import psycopg

    _, conninfo, _, _ = urls(args.database_url)
    t0 = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK checks while deleting
        tenant_id = conn.execute("SELECT id FROM tenants").fetchone()[0]
        for table in ("ledger_entries", "ledger_journals", "invoice_lines", "credits", "invoices",
                      "invoice_sequences", "periods"):
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (FULL, ANALYZE)")
        conn.execute("CHECKPOINT")
    log(f"reset the previous close: {time.monotonic() - t0:.1f}s")
    return {"tenant_id": tenant_id, "setup_seconds": round(time.monotonic() - t0, 1), "reused": True}


# --- measuring (close child process) ---------------------------------------------------------

def _vmrss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, interval: float = 0.01):
        super().__init__(daemon=True)
        self.interval, self.peak_kb, self.samples = interval, 0, 0
        self.timeline: list[tuple[float, int]] = []  # (seconds, VmRSS kB), about once a second
        self._halt = threading.Event()

    def run(self):
        t0 = last = time.perf_counter()
        while not self._halt.is_set():
            rss = _vmrss_kb()
            self.peak_kb = max(self.peak_kb, rss)
            self.samples += 1
            now = time.perf_counter()
            if now - last >= 1.0 or not self.timeline:
                self.timeline.append((round(now - t0, 1), rss))
                last = now
            self._halt.wait(self.interval)

    def at_fractions(self, fractions=(0.1, 0.25, 0.5, 0.75, 1.0)) -> list[float]:
        """VmRSS (MB) at these fractions of the run: flat = bounded, rising = grows with size."""
        if not self.timeline:
            return []
        end = self.timeline[-1][0]
        out = []
        for f in fractions:
            point = min(self.timeline, key=lambda s: abs(s[0] - f * end))
            out.append(round(point[1] / 1024, 1))
        return out

    def stop(self) -> int:
        self._halt.set()
        self.join()
        self.peak_kb = max(self.peak_kb, _vmrss_kb())
        return self.peak_kb


def _pg_backend_ticks(dbname: str) -> int:
    """CPU ticks of the PostgreSQL backends connected to dbname (plus none of the others)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres:") or f" {dbname} " not in title:
                continue
            with open(f"/proc/{entry}/stat") as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    return sum(parts[:8]), parts[3] + parts[4]


class SqlTimer:
    """Wall time spent inside cursor executes, grouped by the statement's first words."""

    def __init__(self, engine):
        import sqlalchemy as sa

        self.by_statement: dict[str, list] = {}
        self._start = threading.local()
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    @staticmethod
    def _key(statement: str) -> str:
        s = " ".join(statement.split())
        head = s[:70]
        if s.startswith("SELECT"):
            frm = s.find(" FROM ")
            head = s[:40] + " ..." + s[frm:frm + 40] if frm > 0 else head
        return head

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        self._start.t = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        self.add(self._key(statement), time.perf_counter() - self._start.t)

    def add(self, key: str, seconds: float) -> None:
        entry = self.by_statement.setdefault(key, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def watch_copy(self) -> None:
        """COPY on the driver's cursor bypasses SQLAlchemy's events: time psycopg's copy()
        blocks (from entering to leaving the `with`) as well."""
        import contextlib

        import psycopg

        original, timer = psycopg.Cursor.copy, self

        @contextlib.contextmanager
        def copy(cursor, statement, *args, **kwargs):
            t0 = time.perf_counter()
            with original(cursor, statement, *args, **kwargs) as c:
                yield c
            timer.add(" ".join(str(statement).split())[:70], time.perf_counter() - t0)

        psycopg.Cursor.copy = copy


def close(args) -> dict:
    import cProfile
    import gc
    import pstats

    app_url, conninfo, _, dbname = urls(args.database_url)
    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    import sqlalchemy as sa

    from aggregator import create_app
    from aggregator.consolidate import close_service as service
    from aggregator.db import db

    app = create_app()
    result: dict = {}
    with app.app_context():
        tenant_id = db.session.scalar(sa.text("SELECT id FROM tenants"))
        n_bills, n_customers = db.session.execute(sa.text(
            "SELECT count(*), count(DISTINCT customer_id) FROM bills WHERE status = 'pending'")).one()
        db.session.commit()
        timer = SqlTimer(db.engine)
        timer.watch_copy()
        gc.collect()
        rss_before_kb = _vmrss_kb()
        maxrss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sampler = RssSampler()
        sampler.start()
        profiler = cProfile.Profile(time.process_time) if args.profile else None
        pg0, m0, cpu0 = _pg_backend_ticks(dbname), _machine_ticks(), os.times()
        t0 = time.perf_counter()
        if profiler:
            profiler.enable()
        report = service.close_period(tenant_id, True, PERIOD_START, NOW, chunk=args.chunk)
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - t0
        cpu1, m1, pg1 = os.times(), _machine_ticks(), _pg_backend_ticks(dbname)
        peak_kb = sampler.stop()
        maxrss_after_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        sql_seconds = sum(v[1] for v in timer.by_statement.values())
        busy = (m1[0] - m1[1]) - (m0[0] - m0[1])
        pg_cpu = (pg1 - pg0) / CLK_TCK
        py_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        machine_busy_cores = busy / CLK_TCK / wall
        result.update({
            "tenant_id": tenant_id, "bills": n_bills, "customers": n_customers, "chunk": args.chunk,
            "report": {"status": report.status, "invoices_created": report.invoices_created,
                       "customers_waiting": report.customers_waiting,
                       "missing_fx_rates": sorted(report.missing_fx_rates)},
            "wall_s": round(wall, 2), "bills_per_s": round(n_bills / wall), "customers_per_s": round(
                report.invoices_created / wall),
            "rss_baseline_mb": round(rss_before_kb / 1024, 1), "rss_peak_mb": round(peak_kb / 1024, 1),
            "rss_growth_mb": round((peak_kb - rss_before_kb) / 1024, 1), "rss_samples": sampler.samples,
            "rss_mb_at_10_25_50_75_100pct": sampler.at_fractions(), "rss_timeline": sampler.timeline,
            "ru_maxrss_before_mb": round(maxrss_before_kb / 1024, 1),
            "ru_maxrss_after_mb": round(maxrss_after_kb / 1024, 1),
            "python_cpu_s": round(py_cpu, 2), "postgres_cpu_s": round(pg_cpu, 2),
            "sql_wall_s": round(sql_seconds, 2),
            "other_busy_cores": round(max(0.0, machine_busy_cores - (py_cpu + pg_cpu) / wall), 2),
            "statements": sorted(([k, v[0], round(v[1], 3)] for k, v in timer.by_statement.items()),
                                 key=lambda e: -e[2]),
        })
        if profiler:
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(profiler, stream=sys.stderr)
            print(f"\n--- cProfile of close_period (saved to {args.profile}), by own time ---",
                  file=sys.stderr)
            stats.sort_stats("tottime").print_stats(25)
            print("--- by cumulative time ---", file=sys.stderr)
            stats.sort_stats("cumulative").print_stats(40)
        result["verification"] = verify(conninfo, tenant_id, n_bills, n_customers)
    return result


def verify(conninfo: str, tenant_id: str, n_bills: int, n_customers: int, sample: int = 300) -> dict:
    """The close's invoices against the bills, in SQL (independent of the service), plus the
    derived lines of `sample` invoices as GET /v1/invoices/{id} shows them."""
    import psycopg
    import sqlalchemy as sa

    from aggregator import money
    from aggregator.consolidate import invoice_service
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db

    checks: dict[str, object] = {}
    with psycopg.connect(conninfo) as conn:
        def one(sql, *params):
            return conn.execute(sql, params).fetchone()

        checks["invoices"], checks["invoiced_customers"] = one(
            "SELECT count(*), count(DISTINCT customer_id) FROM invoices WHERE tenant_id = %s", tenant_id)
        checks["bills_not_invoiced"] = one(  # a bill's invoice: the live one of its customer and period
            "SELECT count(*) FROM bills b WHERE b.tenant_id = %s AND b.status = 'pending' AND NOT EXISTS ("
            " SELECT 1 FROM invoices i WHERE i.tenant_id = b.tenant_id AND i.livemode = b.livemode"
            " AND i.customer_id = b.customer_id AND i.period_start = b.period_start AND i.status <> 'void')",
            tenant_id)[0]
        checks["stored_bill_lines"] = one("SELECT count(*) FROM invoice_lines WHERE kind = 'bill'")[0]
        # the customer's bills converted in SQL at the rates in effect on the period's last day
        # (ROUND_HALF_UP = PostgreSQL's round() on numeric)
        checks["subtotal_ne_converted_bills"] = one(
            "WITH expected AS ("
            " SELECT b.customer_id, sum(CASE WHEN b.currency = c.currency THEN b.amount::numeric"
            "   ELSE round(b.amount * r.rate::numeric) END) AS s"
            " FROM bills b JOIN customers c ON c.id = b.customer_id"
            " LEFT JOIN fx_rates r ON r.base = b.currency AND r.quote = c.currency"
            "   AND r.effective_date = (SELECT max(effective_date) FROM fx_rates r2 WHERE r2.base = r.base"
            "     AND r2.quote = r.quote AND r2.effective_date <= '2026-10-24')"
            " GROUP BY b.customer_id)"
            " SELECT count(*) FROM invoices i JOIN expected e ON e.customer_id = i.customer_id"
            " WHERE i.subtotal <> e.s")[0]
        checks["bad_totals"] = one(
            "SELECT count(*) FROM invoices i JOIN customers c ON c.id = i.customer_id WHERE "
            " CASE WHEN i.subtotal > 0 THEN i.tax <> round(i.subtotal * (CASE WHEN c.tax_exempt THEN 0"
            "   ELSE coalesce(c.tax_rate, '0.2')::numeric END)) OR i.total <> i.subtotal + i.tax"
            "   OR i.carried_credit <> 0"
            " ELSE i.tax <> 0 OR i.total <> 0 OR i.carried_credit <> -i.subtotal END"
            " OR i.amount_due <> i.total")[0]
        checks["carried_credits"], checks["credit_rows"] = one(
            "SELECT (SELECT count(*) FROM invoices WHERE carried_credit > 0), (SELECT count(*) FROM credits)")
        checks["numbers"], checks["max_number"] = one(
            "SELECT count(DISTINCT number), max(number) FROM invoices WHERE status = 'open'")
        checks["period_status"] = one("SELECT status FROM periods WHERE start = %s", PERIOD_START)[0]
    ids = db.session.scalars(sa.select(Invoice.id).order_by(sa.func.random()).limit(sample)).all()
    invoices = db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(ids))).all()
    lines = invoice_service.invoice_lines(list(invoices))
    checks["derived_lines_sampled"] = sum(len(v) for v in lines.values())
    checks["derived_subtotal_mismatches"] = sum(sum(line.amount for line in lines[i.id]) != i.subtotal
                                                for i in invoices)
    checks["derived_fx_lines"] = sum(line.original_currency is not None and money.convert(
        line.original_amount, line.original_currency, line.currency, Decimal(line.fx_rate)) == line.amount
        for v in lines.values() for line in v)
    db.session.rollback()
    ok = (checks["invoices"] == checks["invoiced_customers"] == n_customers
          and checks["bills_not_invoiced"] == 0 and checks["stored_bill_lines"] == 0
          and checks["subtotal_ne_converted_bills"] == 0 and checks["bad_totals"] == 0
          and checks["carried_credits"] == checks["credit_rows"]
          and checks["numbers"] == n_customers and checks["max_number"] == f"INV-2026-{n_customers:06d}"
          and checks["derived_lines_sampled"] > 0 and checks["derived_subtotal_mismatches"] == 0
          and checks["derived_fx_lines"] > 0 and checks["period_status"] == "closed")
    checks["ok"] = ok
    return checks


# --- orchestration ----------------------------------------------------------------------------

def _child(phase: str, args, extra: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase,
           "--database-url", args.database_url, "--customers", str(args.customers),
           "--bills", str(args.bills), "--providers", str(args.providers), "--chunk", str(args.chunk),
           "--seed", str(args.seed), *extra]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_size(args, label: str) -> dict:
    log(f"[{label}] {args.customers:,} customers x {args.bills:,} bills, {args.providers} providers, "
        f"database {urls(args.database_url)[3]}")
    prepared = _child("reset" if args.reuse else "setup", args, [])
    log(f"[{label}] closing (chunk {args.chunk})")
    measured = _child("close", args, ["--profile", args.profile] if args.profile else [])
    return {"label": label, "database": urls(args.database_url)[3], "setup": prepared, **measured}


def format_report(runs: list[dict], quick: bool) -> str:
    lines = [f"{'run':<8}{'customers':>10}{'bills':>11}{'wall s':>8}{'bills/s':>9}{'cust/s':>8}"
             f"{'RSS base':>9}{'peak':>7}{'growth':>7}{'maxrss':>8}{'py cpu':>8}{'pg cpu':>8}{'in SQL':>8}"
             f"{'other':>7}  verified",
             "-" * 128]
    for r in runs:
        lines.append(
            f"{r['label']:<8}{r['customers']:>10,}{r['bills']:>11,}{r['wall_s']:>8.1f}{r['bills_per_s']:>9,}"
            f"{r['customers_per_s']:>8,}{r['rss_baseline_mb']:>8.0f}M{r['rss_peak_mb']:>6.0f}M"
            f"{r['rss_growth_mb']:>6.0f}M{r['ru_maxrss_after_mb']:>7.0f}M{r['python_cpu_s']:>8.1f}"
            f"{r['postgres_cpu_s']:>8.1f}{r['sql_wall_s']:>8.1f}{r['other_busy_cores']:>7.2f}  "
            f"{'ok' if r['verification']['ok'] else 'FAILED'}")
    for r in runs:
        lines.append(f"{r['label']}: VmRSS at 10/25/50/75/100% of the close: "
                     + " / ".join(f"{v:.0f}" for v in r["rss_mb_at_10_25_50_75_100pct"]) + " MB")
    lines.append("")
    r = runs[0]
    lines.append(f"time inside SQL statements ({r['label']} run; count, seconds):")
    for key, count, seconds in r["statements"][:8]:
        lines.append(f"  {seconds:>8.2f}s {count:>7,}x  {key}")
    lines.append(f"  {r['wall_s'] - r['sql_wall_s']:>8.2f}s outside SQL (Python: SQLAlchemy, build_invoice, ...)"
                 " [COPY blocks count as SQL, including the Python feeding them]")
    lines.append("")
    big = runs[0]
    verdicts = [f"bills/s {big['bills_per_s']:,} vs target {TARGET_BILLS_PER_S:,}: "
                f"{'MET' if big['bills_per_s'] >= TARGET_BILLS_PER_S else 'NOT MET'}",
                f"peak RSS {big['rss_peak_mb']:.0f} MB vs < {TARGET_PEAK_RSS_MB} MB: "
                f"{'MET' if big['rss_peak_mb'] < TARGET_PEAK_RSS_MB else 'NOT MET'}"]
    if len(runs) > 1:
        small = runs[1]
        ratio = big["rss_peak_mb"] / small["rss_peak_mb"]
        growth = (big["rss_growth_mb"], small["rss_growth_mb"])
        half, end = big["rss_mb_at_10_25_50_75_100pct"][2], big["rss_mb_at_10_25_50_75_100pct"][4]
        flat = end - half <= 0.03 * end
        verdicts.append(f"peak RSS full/tenth {ratio:.2f} (growth during the close {growth[0]:.0f} MB vs "
                        f"{growth[1]:.0f} MB): {'SAME' if ratio <= 1.10 else 'HIGHER at full size'}; full run "
                        f"{half:.0f} -> {end:.0f} MB over its second half: "
                        f"{'flat (bounded, not proportional to size)' if flat else 'STILL RISING'}")
    lines += ["targets" + (" (--quick: not comparable)" if quick else "") + ":"] + ["  " + v for v in verdicts]
    lines.append("RSS base = VmRSS just before close_period (after imports, create_app); peak = max VmRSS "
                 "sampled every 10 ms during it; maxrss = ru_maxrss after.")
    lines.append("py cpu / pg cpu = CPU seconds of this process / of the bench database's PostgreSQL backends "
                 "during the close; in SQL = wall time inside cursor executes; other = busy cores of other "
                 "processes (a shared machine understates the figures).")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size_arguments(p, DEFAULT_URL, seed=20261121)
    p.add_argument("--chunk", type=int, default=None,
                   help="customers per transaction (default: aggregator's CHUNK_CUSTOMERS)")
    p.add_argument("--reuse", action="store_true",
                   help="skip data generation: undo the previous close in the existing database and close again")
    p.add_argument("--profile", metavar="PATH", help="run the close under cProfile, save the stats to PATH")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--phase", choices=["setup", "reset", "close"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.chunk is None:
        from aggregator.consolidate.close_service import CHUNK_CUSTOMERS
        args.chunk = CHUNK_CUSTOMERS
    return sized(p, args, DEFAULT_URL)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        out = {"setup": setup, "reset": reset, "close": close}[args.phase](args)
        print(json.dumps(out, default=str))
        return 0
    result = run_sizes("close", args, run_size)
    runs = result["runs"]
    print()
    print(f"aggregator close benchmark — {result['date']} — {os.cpu_count()} cores, "
          f"chunk {args.chunk} customers, no PDFs — {code_label(result)}")
    print(format_report(runs, args.quick))
    failures = [f"{r['label']}: verification failed {r['verification']}" for r in runs if not r["verification"]["ok"]]
    if args.check_targets and not args.quick:
        big = runs[0]
        if big["bills_per_s"] < TARGET_BILLS_PER_S or big["rss_peak_mb"] >= TARGET_PEAK_RSS_MB:
            failures.append("target missed")
    return finish(result, args.json, failures)

if __name__ == "__main__":
    sys.exit(main())
