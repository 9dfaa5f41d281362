#!/usr/bin/env python
"""Rating benchmark: the close of a period with N subscriptions (3 fees each) beside 1,000,000 bills.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/rating.py                  # 100,000 subscriptions, 1,000,000 bills
    .venv/bin/python bench/rating.py --scale-check    # the same, then at a tenth of the size
    .venv/bin/python bench/rating.py --quick          # 500 subscriptions / 5,000 bills, seconds
    .venv/bin/python bench/rating.py --profile /tmp/rating.prof   # the rated close under cProfile

What it does, per size (in the database ...aggregator_bench_rating, `_quick`, `_tenth`):
  1. setup, in a child process: bench/close.py's data (tenant, providers, customers, FX rates,
     --bills bills of period 2026-09-25), then, with COPY, a catalog: one platform plan of 3 fees
     and 4 plans per provider of 3 fees each (in_advance and in_arrears; two of the four resell
     the platform plan, so their bills carry a platform_fee), one price each; --subscriptions
     subscriptions on random customers with their subscription_changes: nine tenths running
     since June, a tenth prorated in the period (a third started on 2026-10-05 12:00, a third
     changed plan on 2026-10-10 12:00, a third canceled on 2026-10-15). The in-advance fees of the
     subscriptions running before the period were billed for it by the previous close: their
     bills (period 2026-08-25) and subscription_charges rows are written too, as that close
     would have, so the close settles them (nothing for the unchanged, a credit for the changed
     and canceled). VACUUM (ANALYZE), CHECKPOINT.
  2. the rated close, in a fresh child process: close_period as bench/close.py times it, with
     rate_period (the rating step, aggregator.catalog.rating_service) timed inside it by wrapping
     the name close_service calls. Memory sampled as in bench/close.py.
  3. verification (not timed): the charges and their amounts against those the generator
     expects from its own arithmetic (per kind: count, Σ amount, Σ platform_fee), one bill per
     charge, one invoice per customer with bills in the period, each invoice's subtotal equal to
     its bills of the period converted in SQL; the period closed.
  4. the baseline, in the same database: the close's rows (invoices, ledger, periods, ...) and
     the subscriptions are deleted, the rated bills stay as plain bills, VACUUM (ANALYZE); then
     today's close of the same bills (1,000,000 + the rated ones, no subscriptions), timed in a
     fresh child process. Its invoices must equal the rated close's, customer by customer.

Targets: rating >= 100,000 subscription-fees/s, the rated close within 1.3x the baseline's time,
the same peak RSS at a tenth of the size (--scale-check).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

import close as closebench
from _common import code_label, finish, run_sizes, size_arguments, sized
from close import (
    CLK_TCK,
    PERIOD_START,
    ROOT,
    RssSampler,
    SqlTimer,
    _copy,
    _machine_ticks,
    _pg_backend_ticks,
    _vmrss_kb,
    log,
    urls,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_rating"
NOW = closebench.NOW
PREVIOUS_START = date(2026, 8, 25)
PERIOD_END = date(2026, 10, 24)
FOLLOWING = (date(2026, 10, 25), date(2026, 11, 24))
PERIOD_DAYS, FOLLOWING_DAYS = 30, 31
RUNNING_SINCE = "2026-06-01 00:00:00+00"
STARTED = ("2026-10-05 12:00:00+00", "2026-10-01 09:00:00+00", 20)  # at, recorded, days billed in P
CHANGED = ("2026-10-10 12:00:00+00", 15)  # at = recorded; days on the old plan (the new one has the rest)
CANCELED = ("2026-10-15 00:00:00+00", 20)  # at = recorded; days billed in P
FEES_PER_PLAN, PLANS_PER_PROVIDER = 3, 4
TARGET_FEES_PER_S = 100_000
UPCOMING_SUBSCRIPTIONS, UPCOMING_BILLS = 50, 1_000  # the upcoming invoice's customer (the first)
UPCOMING_NOW = datetime(2026, 10, 20, 12, 0, tzinfo=timezone.utc)  # in the open period
TARGET_UPCOMING_MS = 50
TARGET_RATIO = 1.3
N = "\\N"  # NULL in COPY text


def prorate(minor: int, units: int, whole: int) -> int:
    """Half up, away from zero (the service's one rule), restated here to check it independently."""
    q, r = divmod(abs(minor * units), whole)
    q += 2 * r >= whole
    return -q if minor * units < 0 else q


# --- setup (child process) -------------------------------------------------------------------

def catalog_rows(tag: str, tenant_id: str, provider_ids: list[str], rng: random.Random):
    """-> (plans, fees, plans by provider); a fee: (id, plan id, position, timing, price, parent fee)."""
    plans, fees, by_provider = [], [], {}
    parent = f"plan_{tag}platform"
    plans.append((parent, "platform", None, "platform", None))
    parent_fees = []
    for pos, (timing, price) in enumerate((("in_advance", 1000), ("in_arrears", 500), ("in_advance", 200))):
        fee = (f"fee_{tag}p{pos}", parent, pos, timing, price, None)
        fees.append(fee)
        parent_fees.append(fee)
    for i, provider in enumerate(provider_ids):
        mine = []
        for k in range(PLANS_PER_PROVIDER):
            plan_id = f"plan_{tag}{i:04d}{k}"
            resells = k >= 2
            plans.append((plan_id, provider, provider, f"p{k}", parent if resells else None))
            timings = ("in_advance", "in_arrears", "in_arrears" if k % 2 == 0 else "in_advance")
            plan_fees = []
            for pos, timing in enumerate(timings):
                parent_fee = parent_fees[pos] if resells else None
                floor = parent_fee[4] if parent_fee else 0
                plan_fees.append((f"fee_{tag}{i:04d}{k}{pos}", plan_id, pos, timing,
                                  floor + rng.randrange(100, 10_000), parent_fee))
            fees.extend(plan_fees)
            mine.append((plan_id, plan_fees))
        by_provider[provider] = mine
    return plans, fees, by_provider


class Expected:
    """The charges the close must write, by kind: [count, Σ amount, Σ platform_fee]."""

    def __init__(self):
        self.by_kind: dict[str, list[int]] = {}

    def add(self, kind: str, fee, qty: int, days: int, whole: int, old_days: int | None = None) -> None:
        """A charge of `days` (x qty) of `whole`; `old_days`: an in-advance settlement of a period
        billed in full before (amount = now - before)."""
        price, parent = fee[4], fee[5][4] if fee[5] else None
        amount = prorate(price, qty * days, whole)
        platform = prorate(parent, qty * days, whole) if parent is not None else None
        if old_days is not None:
            amount -= price * qty
            platform = platform - parent * qty if parent is not None else None
        entry = self.by_kind.setdefault(kind, [0, 0, 0])
        entry[0] += 1
        entry[1] += amount
        entry[2] += platform or 0


def add_catalog(args, conninfo: str, tenant_id: str) -> dict:
    import psycopg

    rng = random.Random(args.seed + 1)
    tag = closebench._run_tag(rng)
    with psycopg.connect(conninfo) as conn:
        provider_ids = [r[0] for r in conn.execute("SELECT id FROM providers ORDER BY id")]
        customer_ids = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]
        plans, fees, by_provider = catalog_rows(tag, tenant_id, provider_ids, rng)
        fee_of_plan = {}
        for fee in fees:
            fee_of_plan.setdefault(fee[1], []).append(fee)
        created = "2026-01-01 00:00:00+00"
        conn.execute("SET session_replication_role = replica")
        t = time.monotonic()
        _copy(conn, "plans", ["id", "tenant_id", "livemode", "owner", "provider_id", "code", "name", "description",
                              "currency", "parent_plan_id", "environments", "unbilled",
                              "max_subscriptions_per_customer", "requires_payment_method", "metadata",
                              "created_at", "updated_at"],
              (f"{p}\t{tenant_id}\tt\t{owner}\t{prov or N}\t{code}\tPlan {code} {i}\t\tUSD\t{parent or N}\t"
               f'["production"]\tf\t\\N\tf\t{{}}\t{created}\t{created}'
               for i, (p, owner, prov, code, parent) in enumerate(plans)))
        _copy(conn, "plan_fees", ["id", "plan_id", "position", "name", "timing", "revenue_share", "parent_fee_id"],
              (f"{f[0]}\t{f[1]}\t{f[2]}\t{('Hosting', 'Usage', 'Support')[f[2]]}\t{f[3]}\tt\t"
               f"{f[5][0] if f[5] else N}" for f in fees))
        _copy(conn, "fee_prices", ["fee_id", "effective_from", "recorded_at", "amount"],
              (f"{f[0]}\t0001-01-01\t{created}\t{f[4]}" for f in fees))

        expected = Expected()
        subs, changes, prior_bills, prior_charges = [], [], [], []
        counts = {"running": 0, "started": 0, "changed": 0, "canceled": 0}
        for j in range(args.subscriptions):
            sid = f"sub_{tag}{j:010d}"
            provider = provider_ids[rng.randrange(len(provider_ids))]
            k = rng.randrange(PLANS_PER_PROVIDER)
            plan_id, plan_fees = by_provider[provider][k]
            big = j < UPCOMING_SUBSCRIPTIONS  # the upcoming invoice's customer
            customer = customer_ids[0 if big else rng.randrange(len(customer_ids))]
            qty = 1 if rng.random() < 0.8 else rng.randrange(2, 6)
            kind = ("started", "changed", "canceled")[(j // 10) % 3] if j % 10 == 9 else "running"
            counts[kind] += 1
            starts, created_at, ends, version, current = RUNNING_SINCE, RUNNING_SINCE, None, 1, plan_id
            if kind == "started":
                starts, created_at = STARTED[0], STARTED[1]
            changes.append(f"{sid}\t1\tstart\t{starts}\t{created_at}\t{plan_id}\t{qty}")
            if kind == "changed":
                new_id, new_fees = by_provider[provider][(k + 1) % PLANS_PER_PROVIDER]
                changes.append(f"{sid}\t2\tchange\t{CHANGED[0]}\t{CHANGED[0]}\t{new_id}\t{qty}")
                version, current = 2, new_id
            elif kind == "canceled":
                ends = CANCELED[0]
                changes.append(f"{sid}\t2\tend\t{CANCELED[0]}\t{CANCELED[0]}\t\\N\t\\N")
                version = 2
            subs.append(f"{sid}\t{tenant_id}\tt\t{provider}\t{customer}\t{current}\tproduction\t\\N\t{qty}\t"
                        f"{starts}\t{ends or N}\t{{}}\t{created_at}\t{ends or created_at}\t{version}")
            if kind != "started":  # the previous close billed its in-advance fees for the period
                for fee in plan_fees:
                    if fee[3] != "in_advance":
                        continue
                    key = f"sub:{sid}:{fee[0]}:{PERIOD_START}:{PREVIOUS_START}"
                    bill_id = f"bill_{tag}s{len(prior_bills):010d}"
                    platform = fee[5][4] * qty if fee[5] else None
                    prior_bills.append(
                        f"{bill_id}\t{tenant_id}\tt\t{provider}\t{customer}\t{key}\t"
                        f"\\\\x{hashlib.sha256(key.encode()).hexdigest()}\t{fee[4] * qty}\tUSD\tt\tprior\t"
                        f"{PERIOD_START}\t{PERIOD_END}\t{{}}\tpending\t2026-09-25 00:00:00+00\t{PREVIOUS_START}\t"
                        f"subscription\t{N if platform is None else platform}")
                    prior_charges.append(
                        f"{bill_id}\t{sid}\t{fee[0]}\t{plan_id}\t{PREVIOUS_START}\t{PERIOD_START}\t{PERIOD_END}\t"
                        f"in_advance\t{30 * qty}\t30\t30\t{qty}\t{fee[4] * qty}\t"
                        f"{N if platform is None else platform}")
            # what the close of the period bills, from the categories' own arithmetic
            if kind == "running":
                for fee in plan_fees:
                    if fee[3] == "in_arrears":
                        expected.add("in_arrears", fee, qty, PERIOD_DAYS, PERIOD_DAYS)
                    else:
                        expected.add("in_advance", fee, qty, FOLLOWING_DAYS, FOLLOWING_DAYS)
            elif kind == "started":
                for fee in plan_fees:
                    expected.add(fee[3], fee, qty, STARTED[2], PERIOD_DAYS)  # in_advance: P first billed now
                    if fee[3] == "in_advance":
                        expected.add("in_advance", fee, qty, FOLLOWING_DAYS, FOLLOWING_DAYS)
            elif kind == "changed":
                for fee in plan_fees:
                    if fee[3] == "in_arrears":
                        expected.add("in_arrears", fee, qty, CHANGED[1], PERIOD_DAYS)
                    else:
                        expected.add("adjustment", fee, qty, CHANGED[1], PERIOD_DAYS, old_days=PERIOD_DAYS)
                for fee in new_fees:
                    expected.add(fee[3], fee, qty, PERIOD_DAYS - CHANGED[1], PERIOD_DAYS)
                    if fee[3] == "in_advance":
                        expected.add("in_advance", fee, qty, FOLLOWING_DAYS, FOLLOWING_DAYS)
            else:  # canceled
                for fee in plan_fees:
                    if fee[3] == "in_arrears":
                        expected.add("in_arrears", fee, qty, CANCELED[1], PERIOD_DAYS)
                    else:
                        expected.add("adjustment", fee, qty, CANCELED[1], PERIOD_DAYS, old_days=PERIOD_DAYS)

        currency = conn.execute("SELECT currency FROM customers WHERE id = %s", (customer_ids[0],)).fetchone()[0]
        for j in range(UPCOMING_BILLS):  # the upcoming invoice's customer's own bills of the period
            key = f"upcoming-{j}"
            bill_currency = currency if j % 20 else next(c for c in closebench.CURRENCIES if c != currency)
            prior_bills.append(
                f"bill_{tag}u{j:010d}\t{tenant_id}\tt\t{provider_ids[j % len(provider_ids)]}\t{customer_ids[0]}\t"
                f"{key}\t\\\\x{hashlib.sha256(key.encode()).hexdigest()}\t{rng.randrange(100, 50_000)}\t"
                f"{bill_currency}\tt\tUsage {j}\t{PERIOD_START}\t{PERIOD_END}\t{{}}\tpending\t"
                f"2026-10-01 12:00:00+00\t{PERIOD_START}\tapi\t{N}")
        _copy(conn, "subscriptions", ["id", "tenant_id", "livemode", "provider_id", "customer_id", "plan_id",
                                      "environment", "external_billing_id", "quantity", "starts_at", "ends_at",
                                      "metadata", "created_at", "updated_at", "version"], subs)
        _copy(conn, "subscription_changes", ["subscription_id", "seq", "kind", "at", "recorded_at", "plan_id",
                                             "quantity"], changes)
        _copy(conn, "bills", ["id", "tenant_id", "livemode", "provider_id", "customer_id", "idempotency_key",
                              "fingerprint", "amount", "currency", "revenue_share", "description",
                              "service_period_start", "service_period_end", "metadata", "status", "received_at",
                              "period_start", "source", "platform_fee"], prior_bills)
        _copy(conn, "subscription_charges", ["bill_id", "subscription_id", "fee_id", "plan_id", "period_start",
                                             "covered_start", "covered_end", "kind", "units", "days", "period_days",
                                             "quantity", "amount", "platform_fee"], prior_charges)
        conn.commit()
        log(f"catalog: {len(plans)} plans, {len(fees)} fees, {len(subs):,} subscriptions {counts}, "
            f"{len(prior_bills) - UPCOMING_BILLS:,} bills of the previous close: {time.monotonic() - t:.1f}s")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        t = time.monotonic()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        log(f"vacuum analyze + checkpoint: {time.monotonic() - t:.1f}s; database {size / 2**20:,.0f} MB")
    return {"subscriptions": counts, "upcoming_customer": customer_ids[0], "plans": len(plans), "fees": len(fees),
            "previous_close_bills": len(prior_bills) - UPCOMING_BILLS, "expected": expected.by_kind,
            "database_mb": round(size / 2**20)}


def setup(args) -> dict:
    base = closebench.setup(args)
    app_url, conninfo, _, _ = urls(args.database_url)
    t0 = time.monotonic()
    catalog = add_catalog(args, conninfo, base["tenant_id"])
    return {**base, **catalog, "setup_seconds": round(base["setup_seconds"] + time.monotonic() - t0, 1)}


def to_baseline(args) -> dict:
    """Undo the rated close but keep its bills, as plain bills with no subscription behind them."""
    import psycopg

    _, conninfo, _, _ = urls(args.database_url)
    t0 = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET session_replication_role = replica")  # no FK checks, ledger triggers off
        for table in ("ledger_entries", "ledger_journals", "invoice_lines", "credits", "invoices",
                      "invoice_sequences", "period_rates", "periods", "subscription_charges",
                      "subscription_changes", "subscriptions"):
            conn.execute(f"DELETE FROM {table}")
        conn.commit()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    log(f"baseline: the close undone, subscriptions deleted, rated bills kept: {time.monotonic() - t0:.1f}s")
    return {"seconds": round(time.monotonic() - t0, 1)}


# --- the upcoming invoice (child process, before the close) ----------------------------------

def upcoming(args) -> dict:
    """GET /v1/customers/{id}/upcoming_invoice for the customer with 50 subscriptions and 1,000
    pending bills, through the Flask test client (the whole request: key, service, schema), the
    clock at UPCOMING_NOW; then the service function alone. Median of --upcoming-calls each."""
    import statistics

    app_url, _, _, _ = urls(args.database_url)
    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    import sqlalchemy as sa

    from aggregator import create_app
    from aggregator.accounts.keys import Principal
    from aggregator.accounts.service import issue_admin_key
    from aggregator.consolidate import api as consolidate_api
    from aggregator.consolidate.upcoming_service import upcoming_invoice
    from aggregator.db import db

    app = create_app()
    with app.app_context():
        tenant_id = db.session.scalar(sa.text("SELECT id FROM tenants"))
        customer = db.session.scalar(sa.text("SELECT external_id FROM customers ORDER BY id LIMIT 1"))
        bills, subs = db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM bills b JOIN customers c ON c.id = b.customer_id WHERE c.external_id = :c"
            " AND b.period_start = :p), (SELECT count(*) FROM subscriptions s JOIN customers c ON c.id = s.customer_id"
            " WHERE c.external_id = :c)"), {"c": customer, "p": PERIOD_START}).one()
        principal = Principal(tenant_id, True, "admin", None, "bench")
        key = issue_admin_key(principal, UPCOMING_NOW).plaintext
        db.session.remove()
    consolidate_api.clock_now = lambda principal: UPCOMING_NOW  # live mode reads the real clock
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/v1/customers/{customer}/upcoming_invoice"

    def timed(call, n):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            out = call()
            times.append((time.perf_counter() - t) * 1000)
        return times, out

    def http():
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        return response.get_json()

    timed(http, 3)  # warm: imports, statement caches, connections
    http_ms, body = timed(http, args.upcoming_calls)

    def service():
        with app.app_context():
            try:
                return upcoming_invoice(principal, customer, UPCOMING_NOW)
            finally:
                db.session.remove()

    timed(service, 3)
    service_ms, invoice = timed(service, args.upcoming_calls)
    with app.app_context():  # its fees rated with the tenant's whole catalog: the same charges
        from aggregator.catalog import rating_service
        from aggregator.consolidate.close_service import tenant_period, tenant_settings
        from aggregator.periods import calendar as C

        settings = tenant_settings(tenant_id, True)
        period = tenant_period(settings, PERIOD_START)
        following = C.next_period(period, settings.period_anchor_day, settings.timezone)
        subs_rows = db.session.execute(sa.text(
            "SELECT s.id, s.provider_id, s.customer_id, s.plan_id FROM subscriptions s JOIN customers c"
            " ON c.id = s.customer_id WHERE c.external_id = :c"), {"c": customer}).all()
        whole = rating_service.charges_of(subs_rows, rating_service.load_catalog(tenant_id, True), period,
                                          following, settings.timezone)
        db.session.remove()
    rated_amounts = sorted(line.amount if line.original_amount is None else line.original_amount
                           for line in invoice.lines if line.bill_id in invoice.rated)
    same_as_whole_catalog = rated_amounts == sorted(c.amount for c in whole)
    lines = body.get("lines") or body.get("data", {}).get("lines") or []
    return {"customer": customer, "bills": bills, "subscriptions": subs, "calls": args.upcoming_calls,
            "http_ms_median": round(statistics.median(http_ms), 1), "http_ms_p90": round(
                statistics.quantiles(http_ms, n=10)[-1], 1), "http_ms_min": round(min(http_ms), 1),
            "service_ms_median": round(statistics.median(service_ms), 1), "service_ms_min": round(min(service_ms), 1),
            "lines": len(invoice.lines), "rated_lines": len(invoice.rated), "response_lines": len(lines),
            "response_bytes": len(json.dumps(body)), "total": invoice.total, "load_avg": os.getloadavg(),
            "same_as_whole_catalog": same_as_whole_catalog}


# --- measuring (close child process) ---------------------------------------------------------

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
    with app.app_context():
        tenant_id = db.session.scalar(sa.text("SELECT id FROM tenants"))
        n_bills = db.session.scalar(sa.text(
            "SELECT count(*) FROM bills WHERE status = 'pending' AND period_start = :p"), {"p": PERIOD_START})
        n_subs = db.session.scalar(sa.text("SELECT count(*) FROM subscriptions"))
        n_fees = db.session.scalar(sa.text(
            "SELECT count(*) FROM subscriptions s JOIN plan_fees f ON f.plan_id = s.plan_id"))
        db.session.commit()
        timer = SqlTimer(db.engine)
        timer.watch_copy()
        rating: dict = {}
        rate_period = service.rate_period

        def timed_rate_period(settings, period, *a, **kw):
            t, c = time.perf_counter(), os.times()
            pg = _pg_backend_ticks(dbname)
            before = {k: list(v) for k, v in timer.by_statement.items()}
            try:
                return rate_period(settings, period, *a, **kw)
            finally:
                c1 = os.times()
                rating.update(wall_s=round(time.perf_counter() - t, 3),
                              python_cpu_s=round(c1.user - c.user + c1.system - c.system, 2),
                              postgres_cpu_s=round((_pg_backend_ticks(dbname) - pg) / CLK_TCK, 2),
                              rss_peak_mb=round(sampler.peak_kb / 1024, 1),
                              statements=sorted(([k, v[0] - before.get(k, [0, 0])[0],
                                                  round(v[1] - before.get(k, [0, 0.0])[1], 3)]
                                                 for k, v in timer.by_statement.items()
                                                 if v[0] != before.get(k, [0])[0]), key=lambda e: -e[2]))

        service.rate_period = timed_rate_period
        from aggregator.catalog import rating as rules
        from aggregator.catalog import rating_service

        parts: dict[str, list[float]] = {}  # where rate_period's time goes: [wall s, cpu s, calls]

        def part(module, name, key):
            original = getattr(module, name)

            def timed(*a, **kw):
                t, c = time.perf_counter(), time.process_time()
                try:
                    return original(*a, **kw)
                finally:
                    entry = parts.setdefault(key, [0.0, 0.0, 0])
                    entry[0] += time.perf_counter() - t
                    entry[1] += time.process_time() - c
                    entry[2] += 1
            setattr(module, name, timed)
        part(rating_service, "charges_of", "read and rate (charges_of)")
        part(rules, "charges_at_close", "rate: the pure rules (charges_at_close)")
        part(rating_service, "_store", "write (_store: bills and charges)")
        part(rating_service, "create_bills", "write: INSERT bills (create_bills)")
        gc.collect()
        rss_before_kb = _vmrss_kb()
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
        service.rate_period = rate_period
        py_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        pg_cpu = (pg1 - pg0) / CLK_TCK
        busy = ((m1[0] - m1[1]) - (m0[0] - m0[1])) / CLK_TCK / wall
        rating["parts"] = {k: [round(v[0], 2), round(v[1], 2), v[2]] for k, v in parts.items()}
        rated_bills = db.session.scalar(sa.text(
            "SELECT count(*) FROM subscription_charges WHERE period_start = :p"), {"p": PERIOD_START})
        db.session.commit()
        result = {
            "tenant_id": tenant_id, "bills_before": n_bills, "subscriptions": n_subs, "subscription_fees": n_fees,
            "rated_bills": rated_bills, "invoices_created": report.invoices_created, "status": report.status,
            "wall_s": round(wall, 2), "bills_per_s": round((n_bills + rated_bills) / wall),
            "rating": rating, "rating_fees_per_s": round(n_fees / rating["wall_s"]) if n_fees else None,
            "rss_baseline_mb": round(rss_before_kb / 1024, 1), "rss_peak_mb": round(peak_kb / 1024, 1),
            "rss_mb_at_10_25_50_75_100pct": sampler.at_fractions(),
            "ru_maxrss_after_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "python_cpu_s": round(py_cpu, 2), "postgres_cpu_s": round(pg_cpu, 2),
            "other_busy_cores": round(max(0.0, busy - (py_cpu + pg_cpu) / wall), 2),
            "load_avg": os.getloadavg(),
            "statements": sorted(([k, v[0], round(v[1], 3)] for k, v in timer.by_statement.items()),
                                 key=lambda e: -e[2])[:10],
        }
        if profiler:
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(profiler, stream=sys.stderr)
            print(f"\n--- cProfile of the rated close (saved to {args.profile}), by own time ---", file=sys.stderr)
            stats.sort_stats("tottime").print_stats(25)
            print("--- by cumulative time ---", file=sys.stderr)
            stats.sort_stats("cumulative").print_stats(45)
        result["invoices_digest"] = _invoices_digest(conninfo)
        if args.verify:
            result["verification"] = verify(conninfo, json.loads(args.verify))
    return result


def _invoices_digest(conninfo: str) -> str:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT md5(string_agg(customer_id || ':' || subtotal || ':' || tax || ':' || total || ':' || currency,"
            " ',' ORDER BY customer_id)) FROM invoices WHERE period_start = %s", (PERIOD_START,)).fetchone()[0]


def verify(conninfo: str, expected: dict) -> dict:
    import psycopg

    checks: dict = {}
    with psycopg.connect(conninfo) as conn:
        def one(q, *params):
            return conn.execute(q, params).fetchone()

        rows = conn.execute("SELECT kind, count(*), sum(amount), coalesce(sum(platform_fee), 0)"
                            " FROM subscription_charges WHERE period_start = %s GROUP BY kind",
                            (PERIOD_START,)).fetchall()
        checks["charges"] = {k: [n, int(a), int(p)] for k, n, a, p in rows}
        checks["charges_as_expected"] = checks["charges"] == {k: list(v) for k, v in expected.items()}
        checks["charges_without_their_bill"] = one(
            "SELECT count(*) FROM subscription_charges c JOIN bills b ON b.id = c.bill_id WHERE c.period_start = %s"
            " AND (b.period_start <> c.period_start OR b.amount <> c.amount OR b.source <> 'subscription'"
            " OR b.platform_fee IS DISTINCT FROM c.platform_fee)", PERIOD_START)[0]
        checks["bills_with_platform_fee"] = one(
            "SELECT count(*) FROM bills WHERE period_start = %s AND platform_fee IS NOT NULL", PERIOD_START)[0]
        checks["customers_with_bills"], checks["invoices"] = one(
            "SELECT (SELECT count(DISTINCT customer_id) FROM bills WHERE period_start = %s AND status = 'pending'),"
            " (SELECT count(*) FROM invoices WHERE period_start = %s)", PERIOD_START, PERIOD_START)
        checks["subtotal_ne_converted_bills"] = one(
            "WITH expected AS ("
            " SELECT b.customer_id, sum(CASE WHEN b.currency = c.currency THEN b.amount::numeric"
            "   ELSE round(b.amount * r.rate::numeric) END) AS s"
            " FROM bills b JOIN customers c ON c.id = b.customer_id"
            " LEFT JOIN fx_rates r ON r.base = b.currency AND r.quote = c.currency"
            "   AND r.effective_date = (SELECT max(effective_date) FROM fx_rates r2 WHERE r2.base = r.base"
            "     AND r2.quote = r.quote AND r2.effective_date <= '2026-10-24')"
            " WHERE b.period_start = %s GROUP BY b.customer_id)"
            " SELECT count(*) FROM invoices i JOIN expected e ON e.customer_id = i.customer_id"
            " WHERE i.period_start = %s AND i.subtotal <> e.s", PERIOD_START, PERIOD_START)[0]
        checks["period_status"] = one("SELECT status FROM periods WHERE start = %s", PERIOD_START)[0]
    checks["ok"] = (checks["charges_as_expected"] and checks["charges_without_their_bill"] == 0
                    and checks["bills_with_platform_fee"] > 0
                    and checks["customers_with_bills"] == checks["invoices"]
                    and checks["subtotal_ne_converted_bills"] == 0 and checks["period_status"] == "closed")
    return checks


# --- orchestration ----------------------------------------------------------------------------

def _child(phase: str, args, extra: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase,
           "--database-url", args.database_url, "--customers", str(args.customers),
           "--bills", str(args.bills), "--providers", str(args.providers), "--chunk", str(args.chunk),
           "--subscriptions", str(args.subscriptions), "--seed", str(args.seed), *extra]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_size(args, label: str) -> dict:
    log(f"[{label}] {args.subscriptions:,} subscriptions, {args.customers:,} customers x {args.bills:,} bills, "
        f"database {urls(args.database_url)[3]}")
    prepared = _child("setup", args, [])
    log(f"[{label}] upcoming invoice, {args.upcoming_calls} calls")
    prepared["upcoming"] = _child("upcoming", args, ["--upcoming-calls", str(args.upcoming_calls)])
    log(f"[{label}] rated close")
    rated = _child("close", args, ["--verify", json.dumps(prepared["expected"])]
                   + (["--profile", args.profile] if args.profile else []))
    log(f"[{label}] rated close {rated['wall_s']} s, rating {rated['rating']['wall_s']} s; baseline")
    _child("baseline", args, [])
    base = _child("close", args, [])
    log(f"[{label}] baseline close {base['wall_s']} s")
    base.pop("statements", None)
    return {"label": label, "database": urls(args.database_url)[3], "setup": prepared, "rated": rated,
            "baseline": base, "ratio": round(rated["wall_s"] / base["wall_s"], 3),
            "same_invoices": rated["invoices_digest"] == base["invoices_digest"]}


def format_report(runs: list[dict], quick: bool) -> str:
    lines = [f"{'run':<7}{'subs':>9}{'sub-fees':>10}{'rated bills':>12}{'bills':>11}{'rating s':>9}"
             f"{'fees/s':>9}{'close s':>8}{'baseline s':>11}{'ratio':>7}{'peak RSS':>9}{'base RSS':>9}"
             f"{'load':>6}  verified",
             "-" * 122]
    for r in runs:
        a, b = r["rated"], r["baseline"]
        lines.append(
            f"{r['label']:<7}{a['subscriptions']:>9,}{a['subscription_fees']:>10,}{a['rated_bills']:>12,}"
            f"{a['bills_before']:>11,}{a['rating']['wall_s']:>9.2f}{a['rating_fees_per_s']:>9,}{a['wall_s']:>8.1f}"
            f"{b['wall_s']:>11.1f}{r['ratio']:>7.2f}{a['rss_peak_mb']:>8.0f}M{b['rss_peak_mb']:>8.0f}M"
            f"{a['load_avg'][0]:>6.1f}  {'ok' if a['verification']['ok'] and r['same_invoices'] else 'FAILED'}")
    for r in runs:
        a = r["rated"]
        lines.append(f"{r['label']}: rating py cpu {a['rating']['python_cpu_s']} s, pg cpu "
                     f"{a['rating']['postgres_cpu_s']} s, peak RSS by its end {a['rating']['rss_peak_mb']:.0f} MB; "
                     f"whole close py {a['python_cpu_s']} s pg {a['postgres_cpu_s']} s (baseline py "
                     f"{r['baseline']['python_cpu_s']} s pg {r['baseline']['postgres_cpu_s']} s), other cores busy "
                     f"{a['other_busy_cores']}; VmRSS at 10/25/50/75/100%: "
                     + " / ".join(f"{v:.0f}" for v in a["rss_mb_at_10_25_50_75_100pct"]) + " MB")
    r = runs[0]
    lines.append(f"\ntime inside SQL statements of the rating ({r['label']} run; count, seconds):")
    for key, count, seconds in r["rated"]["rating"]["statements"][:8]:
        lines.append(f"  {seconds:>8.2f}s {count:>7,}x  {key}")
    lines.append(f"  {r['rated']['rating']['wall_s'] - sum(s[2] for s in r['rated']['rating']['statements']):>8.2f}s"
                 " outside SQL (Python: SQLAlchemy, rating, rows)")
    fees = r["rated"]["subscription_fees"]
    lines.append(f"rate_period's parts ({r['label']} run; wall s, cpu s of this process, sub-fees/s):")
    for key, (wall, cpu, _) in r["rated"]["rating"]["parts"].items():
        lines.append(f"  {wall:>8.2f}s {cpu:>7.2f}s {fees / wall if wall else 0:>10,.0f}/s  {key}")
    for r in runs:
        u = r["setup"]["upcoming"]
        lines.append(f"{r['label']}: upcoming invoice of {u['customer']} ({u['subscriptions']} subscriptions, "
                     f"{u['bills']:,} bills; {u['lines']:,} lines of which {u['rated_lines']} rated, "
                     f"{u['response_bytes'] / 1024:,.0f} KB of JSON): GET median {u['http_ms_median']} ms (p90 "
                     f"{u['http_ms_p90']}, min {u['http_ms_min']}), the service alone {u['service_ms_median']} ms, "
                     f"{u['calls']} calls each, load {u['load_avg'][0]:.1f}")
    big = runs[0]
    fees_s = big["rated"]["rating_fees_per_s"]
    verdicts = [f"rating {fees_s:,} subscription-fees/s vs >= {TARGET_FEES_PER_S:,}: "
                f"{'MET' if fees_s >= TARGET_FEES_PER_S else 'NOT MET'}",
                f"close {big['rated']['wall_s']:.1f} s vs baseline {big['baseline']['wall_s']:.1f} s = "
                f"x{big['ratio']:.2f} vs <= x{TARGET_RATIO}: {'MET' if big['ratio'] <= TARGET_RATIO else 'NOT MET'}"]
    up = big["setup"]["upcoming"]["http_ms_median"]
    verdicts.append(f"upcoming invoice {up} ms vs < {TARGET_UPCOMING_MS} ms: "
                    f"{'MET' if up < TARGET_UPCOMING_MS else 'NOT MET'}")
    if len(runs) > 1:
        ratio = big["rated"]["rss_peak_mb"] / runs[1]["rated"]["rss_peak_mb"]
        same = "SAME" if ratio <= 1.10 else "HIGHER at full size"
        verdicts.append(f"peak RSS full/tenth {ratio:.2f} ({big['rated']['rss_peak_mb']:.0f} / "
                        f"{runs[1]['rated']['rss_peak_mb']:.0f} MB): {same}")
    lines += ["", "targets" + (" (--quick: not comparable)" if quick else "") + ":"] + ["  " + v for v in verdicts]
    lines.append("sub-fees = subscriptions x their plan's fees (what rating rates); fees/s = sub-fees / the time "
                 "inside rate_period; baseline = the same bills closed with no subscription (rated bills as plain "
                 "bills); load = 1-minute load average after the rated close.")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size_arguments(p, DEFAULT_URL, seed=20261207)
    p.add_argument("--subscriptions", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=None,
                   help="customers per transaction of the close (default: aggregator's CHUNK_CUSTOMERS)")
    p.add_argument("--profile", metavar="PATH", help="run the rated close under cProfile, save the stats to PATH")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--upcoming-calls", type=int, default=50, help="calls of the upcoming invoice timed")
    p.add_argument("--phase", choices=["setup", "upcoming", "close", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--verify", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.chunk is None:
        from aggregator.consolidate.close_service import CHUNK_CUSTOMERS
        args.chunk = CHUNK_CUSTOMERS
    if args.quick and args.phase is None:
        args.subscriptions, args.upcoming_calls = 500, 5
    return sized(p, args, DEFAULT_URL)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        out = {"setup": setup, "upcoming": upcoming, "close": close, "baseline": to_baseline}[args.phase](args)
        print(json.dumps(out, default=str))
        return 0
    if args.scale_check:
        args.subscriptions_tenth = args.subscriptions // 10
    result = run_sizes("rating", args, _run_size_scaled)
    runs = result["runs"]
    print()
    print(f"aggregator rating benchmark — {result['date']} — {os.cpu_count()} cores, chunk {args.chunk} customers, "
          f"no PDFs — {code_label(result)} — load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(format_report(runs, args.quick))
    failures = [f"{r['label']}: verification failed {r['rated']['verification']}" for r in runs
                if not r["rated"]["verification"]["ok"]]
    failures += [f"{r['label']}: the baseline's invoices differ from the rated close's" for r in runs
                 if not r["same_invoices"]]
    failures += [f"{r['label']}: the upcoming invoice's fees differ from those rated with the whole catalog"
                 for r in runs if not r["setup"]["upcoming"]["same_as_whole_catalog"]]
    if args.check_targets and not args.quick:
        big = runs[0]
        if (big["rated"]["rating_fees_per_s"] < TARGET_FEES_PER_S or big["ratio"] > TARGET_RATIO
                or big["setup"]["upcoming"]["http_ms_median"] >= TARGET_UPCOMING_MS):
            failures.append("target missed")
    return finish(result, args.json, failures)


def _run_size_scaled(args, label: str) -> dict:
    """run_sizes scales customers and bills for the tenth; subscriptions follow them."""
    if label == "tenth":
        args.subscriptions = args.subscriptions_tenth
    return run_size(args, label)


if __name__ == "__main__":
    sys.exit(main())
