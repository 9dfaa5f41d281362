#!/usr/bin/env python
"""Payout day benchmark: build_service.build_payouts over N paid bills on PostgreSQL, then the
review (approve the period) and the bank transfers recorded paid.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/payouts.py                 # 100,000 invoices, 1,000,000 paid bills
    .venv/bin/python bench/payouts.py --scale-check   # the same, then at a tenth of the size
    .venv/bin/python bench/payouts.py --quick         # 500 invoices / 5,000 bills, seconds
    .venv/bin/python bench/payouts.py --profile /tmp/payouts.prof   # cProfile the build

What it does, per size:
  1. setup, in a child process (its memory never counts): bench/close.py's setup (database
     aggregator_bench_payouts, _quick, _tenth; tenant; --providers providers, --customers
     customers in USD/EUR/GBP, FX rates, --bills pending bills, ~5% in another currency than the
     customer's, ~1% negative, 0.5% of customers with only negative bills), then mixed
     revenue-share rates (some 0) and the bills of every tenth provider pass-through, then the
     close (close_service.close_period, untimed), then every invoice paid as the charge day
     and a recorded payment would leave it, written with SQL: one succeeded Stripe payment of its
     total settled on 2026-11-02 (~1% of invoices: a recorded bank transfer of a third on
     2026-11-02 and the card charge of the rest on 2026-11-05), invoices `paid` with
     amount_paid = total; invoices of total 0 (their credit covers them) `paid` on the charge day;
     ~0.1% of invoices get a succeeded refund of a quarter of their card payment on 2026-11-06
     (payment's and invoice's amount_refunded updated). VACUUM ANALYZE, CHECKPOINT.
  2. measured, in a fresh child process: build_payouts(tenant, True, 2026-11-10) (all of it:
     one payout per provider and currency), then (unless --no-record-paid) approve_period and
     record_bank_transfer for every approved bank-transfer payout; each phase with wall time,
     CPU of this process and of the database's PostgreSQL backends, and peak VmRSS (sampled every
     10 ms). In the same process, the baseline: a plain SQL GROUP BY provider, currency summing
     the same paid bills (bills joined to their paid invoices).
  3. verification (not timed): Σ payout gross per currency == Σ paid bills per currency (and per
     provider and currency, against the baseline's rows); net + fee == gross + clawback for
     every payout (clawback: the refunds' lines, <= 0); every succeeded payment and refund, and
     every settled invoice, in payout_sources exactly once; what each paid invoice's sources
     collected == its total less its refunds; build_payouts run again creates nothing.

Targets: build >= 100,000 bills/s; flat memory: --scale-check runs a tenth of the size too and
the peak RSS of the build must be within 10% of it. Exit status 1 when verification fails (and,
with --check-targets, when a target is missed). Recording payouts paid posts their `payout_sent`
ledger journals: until the payments' ledger journals are wired in, it fails with
provider_payable_negative; that is reported, not counted as a failure.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

from _common import code_label, finish, run_sizes, size_arguments, sized
from close import (
    CLK_TCK,
    PERIOD_START,
    ROOT,
    RssSampler,
    SqlTimer,
    _machine_ticks,
    _pg_backend_ticks,
    _vmrss_kb,
    log,
    urls,
)
from close import NOW as CLOSED_AT
from close import setup as close_setup

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_payouts"
PAYOUT_DATE = date(2026, 11, 10)  # the tenant's payout day (10) after the charge day (2 Nov)
RECORDED_AT = datetime(2026, 11, 10, 9, 0, tzinfo=timezone.utc)  # finance reviews and pays
RATES = ("0.3", "0", "0.15", "0.2", "0.125", "0.333333", "0.05", "0.1")  # per provider, cyclic
TARGET_BILLS_PER_S = 100_000
TARGET_RSS_RATIO = 1.10


# --- setup (child process) -------------------------------------------------------------------

PAY_SQL = """
WITH paid AS (
  SELECT i.*, (abs(hashtext(i.id)) %% 100 = 0 AND i.total >= 3) AS split
  FROM invoices i WHERE i.tenant_id = %(t)s AND i.status = 'open' AND i.total > 0)
INSERT INTO payments (id, tenant_id, livemode, invoice_id, customer_id, gateway, method, trigger, attempt,
                      amount, currency, status, stripe_customer_id, stripe_payment_method,
                      stripe_payment_intent_id, stripe_charge_id, gateway_status, hard_decline, requests,
                      reference, received_on, amount_refunded, created_at, settled_at)
SELECT 'pay_' || substr(md5(p.id || n), 1, 26), p.tenant_id, p.livemode, p.id, p.customer_id,
       CASE WHEN manual THEN 'manual' ELSE 'stripe' END, CASE WHEN manual THEN 'bank_transfer' ELSE 'card' END,
       CASE WHEN manual THEN 'recorded' ELSE 'scheduled' END, CASE WHEN manual THEN NULL ELSE 1 END,
       CASE WHEN NOT p.split THEN p.total WHEN manual THEN p.total / 3 ELSE p.total - p.total / 3 END,
       p.currency, 'succeeded',
       CASE WHEN manual THEN NULL ELSE 'cus_' || substr(md5(p.customer_id), 1, 14) END,
       CASE WHEN manual THEN NULL ELSE 'pm_card_visa' END,
       CASE WHEN manual THEN NULL ELSE 'pi_' || substr(md5(p.id || 'pi'), 1, 24) END,
       CASE WHEN manual THEN NULL ELSE 'ch_' || substr(md5(p.id || 'ch'), 1, 24) END,
       CASE WHEN manual THEN NULL ELSE 'succeeded' END, false, CASE WHEN manual THEN 0 ELSE 1 END,
       CASE WHEN manual THEN 'bank-' || p.number END, CASE WHEN manual THEN date '2026-11-02' END, 0,
       at, at
FROM paid p
CROSS JOIN LATERAL (SELECT n, p.split AND n = 1 AS manual,
                           timestamptz '2026-11-02 00:00:05+00' + (CASE WHEN p.split AND n = 2 THEN 3 ELSE 0 END)
                           * interval '1 day' AS at
                    FROM generate_series(1, CASE WHEN p.split THEN 2 ELSE 1 END) n) k
"""

REFUND_SQL = """
INSERT INTO refunds (id, tenant_id, livemode, invoice_id, payment_id, amount, currency, reason, gateway, status,
                     stripe_refund_id, requests, created_at, settled_at)
SELECT 're_' || substr(md5(p.id || 're'), 1, 26), p.tenant_id, p.livemode, p.invoice_id, p.id,
       greatest(p.amount / 4, 1), p.currency, 'requested_by_customer', 'stripe', 'succeeded',
       're_' || substr(md5(p.id || 'stripe'), 1, 24), 1, timestamptz '2026-11-06 10:00:00+00',
       timestamptz '2026-11-06 10:00:05+00'
FROM payments p WHERE p.tenant_id = %(t)s AND p.gateway = 'stripe' AND abs(hashtext(p.invoice_id)) %% 1000 = 7
"""


def setup(args) -> dict:
    """close.py's data, the close, then every invoice paid (see the module docstring)."""
    import psycopg

    info = close_setup(args)
    tenant_id = info["tenant_id"]
    app_url, conninfo, _, _ = urls(args.database_url)
    with psycopg.connect(conninfo) as conn:
        providers = [r[0] for r in conn.execute("SELECT id FROM providers ORDER BY id")]
        with conn.cursor() as cur:
            cur.executemany("UPDATE providers SET revenue_share_rate = %s WHERE id = %s",
                            [(RATES[k % len(RATES)], p) for k, p in enumerate(providers)])
        conn.execute("UPDATE bills SET revenue_share = false WHERE provider_id = ANY(%s)", (providers[3::10],))
        conn.commit()

    from aggregator import create_app
    from aggregator.consolidate import close_service

    t = time.monotonic()
    with create_app().app_context():
        report = close_service.close_period(tenant_id, True, PERIOD_START, CLOSED_AT)
    log(f"close: {report.invoices_created:,} invoices, {time.monotonic() - t:.1f}s")

    t = time.monotonic()
    with psycopg.connect(conninfo) as conn:
        params = {"t": tenant_id}
        payments = conn.execute(PAY_SQL, params).rowcount
        conn.execute("UPDATE invoices i SET amount_paid = i.total, status = 'paid', next_charge_at = NULL,"
                     " collection = NULL, paid_at = (SELECT max(settled_at) FROM payments p WHERE p.invoice_id = i.id)"
                     " WHERE i.tenant_id = %(t)s AND i.status = 'open' AND i.total > 0", params)
        settled = conn.execute("UPDATE invoices SET status = 'paid', next_charge_at = NULL, collection = NULL,"
                               " paid_at = timestamptz '2026-11-02 00:00:00+00'"
                               " WHERE tenant_id = %(t)s AND status = 'open' AND total = 0", params).rowcount
        refunds = conn.execute(REFUND_SQL, params).rowcount
        conn.execute("UPDATE payments p SET amount_refunded = r.amount FROM refunds r WHERE r.payment_id = p.id")
        conn.execute("UPDATE invoices i SET amount_refunded = r.amount FROM refunds r WHERE r.invoice_id = i.id")
        left = conn.execute("SELECT count(*) FROM invoices WHERE tenant_id = %(t)s AND status <> 'paid'",
                            params).fetchone()[0]
        conn.commit()
    if left:
        raise RuntimeError(f"{left} invoices are not paid after the setup")
    log(f"paid: {payments:,} payments, {settled:,} invoices settled by credits, {refunds:,} refunds: "
        f"{time.monotonic() - t:.1f}s")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        t = time.monotonic()
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
        log(f"vacuum analyze + checkpoint: {time.monotonic() - t:.1f}s")
    return dict(info, invoices=report.invoices_created, payments=payments, settled_invoices=settled,
                refunds=refunds)


# --- measuring (child process) ---------------------------------------------------------------

PAID_BILLS = """
SELECT b.provider_id, b.currency, sum(b.amount), count(*)
FROM bills b JOIN invoices i ON i.tenant_id = b.tenant_id AND i.livemode = b.livemode
  AND i.customer_id = b.customer_id AND i.period_start = b.period_start
WHERE b.tenant_id = :t AND b.livemode AND b.status = 'pending' AND i.status = 'paid'
GROUP BY b.provider_id, b.currency
"""


class Phase:
    """Wall time, CPU of this process and of the bench database's backends, peak VmRSS."""

    def __init__(self, dbname: str):
        self.dbname = dbname

    def __enter__(self):
        import gc

        gc.collect()
        self.rss_before_kb = _vmrss_kb()
        self.sampler = RssSampler()
        self.sampler.start()
        self.pg0, self.m0, self.cpu0 = _pg_backend_ticks(self.dbname), _machine_ticks(), os.times()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        cpu1, m1, pg1 = os.times(), _machine_ticks(), _pg_backend_ticks(self.dbname)
        peak_kb = self.sampler.stop()
        self.py_cpu = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        self.pg_cpu = (pg1 - self.pg0) / CLK_TCK
        busy = ((m1[0] - m1[1]) - (self.m0[0] - self.m0[1])) / CLK_TCK / self.wall
        self.figures = {"wall_s": round(self.wall, 3), "python_cpu_s": round(self.py_cpu, 2),
                        "postgres_cpu_s": round(self.pg_cpu, 2),
                        "other_busy_cores": round(max(0.0, busy - (self.py_cpu + self.pg_cpu) / self.wall), 2),
                        "rss_before_mb": round(self.rss_before_kb / 1024, 1), "rss_peak_mb": round(peak_kb / 1024, 1),
                        "rss_mb_at_10_25_50_75_100pct": self.sampler.at_fractions()}
        return False


def measure(args) -> dict:
    import cProfile
    import pstats

    app_url, conninfo, _, dbname = urls(args.database_url)
    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    import sqlalchemy as sa

    from aggregator import create_app
    from aggregator.auth import Principal
    from aggregator.db import db
    from aggregator.ledger.service import ProviderPayableNegative
    from aggregator.payouts import build_service
    from aggregator.payouts import service as payouts
    from aggregator.payouts.models import Payout

    result: dict = {}
    with create_app().app_context():
        tenant_id = db.session.scalar(sa.text("SELECT id FROM tenants"))
        n_bills, n_invoices = db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM bills b JOIN invoices i ON i.tenant_id = b.tenant_id"
            " AND i.livemode = b.livemode AND i.customer_id = b.customer_id AND i.period_start = b.period_start"
            " WHERE b.tenant_id = :t AND b.status = 'pending' AND i.status = 'paid'),"
            " (SELECT count(*) FROM invoices WHERE tenant_id = :t AND status = 'paid')"), {"t": tenant_id}).one()
        db.session.commit()
        timer = SqlTimer(db.engine)
        timer.watch_copy()
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        profiler = cProfile.Profile() if args.profile else None
        with Phase(dbname) as build:
            if profiler:
                profiler.enable()
            report = build_service.build_payouts(tenant_id, True, PAYOUT_DATE)
            if profiler:
                profiler.disable()
        result.update(tenant_id=tenant_id, bills=int(n_bills), invoices=n_invoices, sources=report.sources,
                      payouts=len(report.payouts), build=dict(build.figures, bills_per_s=round(n_bills / build.wall)),
                      ru_maxrss_after_build_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      ru_maxrss_before_mb=round(maxrss_before / 1024, 1),
                      statements=sorted(([k, v[0], round(v[1], 3)] for k, v in timer.by_statement.items()),
                                        key=lambda e: -e[2]))
        if profiler:
            profiler.dump_stats(args.profile)
            stats = pstats.Stats(profiler, stream=sys.stderr)
            print(f"\n--- cProfile of build_payouts (saved to {args.profile}), by own time ---", file=sys.stderr)
            stats.sort_stats("tottime").print_stats(20)
            print("--- by cumulative time ---", file=sys.stderr)
            stats.sort_stats("cumulative").print_stats(30)

        if args.record_paid:
            principal = Principal(tenant_id, True, "admin", None, "key_bench_finance")
            failure, recorded = None, 0
            with Phase(dbname) as paying:
                approved = payouts.approve_period(principal, PERIOD_START, RECORDED_AT)
                for payout in [p for p in approved if p.method == "bank_transfer"]:
                    try:
                        payouts.record_bank_transfer(principal, payout.id, f"bench-{payout.id}", RECORDED_AT)
                        recorded += 1
                    except ProviderPayableNegative as exc:  # the ledger wiring is not merged yet
                        db.session.rollback()
                        failure = f"{exc.code}: {exc}"
                        break
            result["record_paid"] = dict(paying.figures, approved=len(approved), recorded_paid=recorded,
                                         failed=failure)

        with Phase(dbname) as base:
            baseline = [tuple(r) for r in db.session.execute(sa.text(PAID_BILLS), {"t": tenant_id})]
            db.session.commit()
        result["baseline"] = dict(base.figures, bills_per_s=round(n_bills / base.wall), groups=len(baseline))

        again = build_service.build_payouts(tenant_id, True, PAYOUT_DATE)
        result["rerun"] = {"sources": again.sources, "payouts": len(again.payouts)}
        result["statuses"] = dict(db.session.execute(sa.select(Payout.status, sa.func.count()).group_by(Payout.status))
                                  .all())
        db.session.rollback()
    result["verification"] = verify(conninfo, tenant_id, report.run_id, baseline, result["rerun"])
    return result


def verify(conninfo: str, tenant_id: str, run_id: str, baseline: list[tuple], rerun: dict) -> dict:
    """The run's payouts against the paid bills, payments and refunds, in SQL."""
    import psycopg

    checks: dict[str, object] = {}
    expected: dict[str, int] = {}
    for _, currency, amount, _ in baseline:
        expected[currency] = expected.get(currency, 0) + int(amount)
    with psycopg.connect(conninfo) as conn:
        def one(sql, **params):
            return conn.execute(sql, dict(params, t=tenant_id, run=run_id)).fetchone()

        got = {c: (int(g), int(f), int(n), int(k)) for c, g, f, n, k in conn.execute(
            "SELECT currency, sum(gross), sum(fee), sum(net), sum(clawback) FROM payouts WHERE run_id = %s"
            " GROUP BY currency", (run_id,))}
        checks["gross_by_currency"] = {c: v[0] for c, v in sorted(got.items())}
        checks["paid_bills_by_currency"] = dict(sorted(expected.items()))
        checks["fee_net_clawback_by_currency"] = {c: v[1:] for c, v in sorted(got.items())}
        by_key = {(p, c): int(a) for p, c, a, _ in baseline}
        payouts = {(p, c): int(g) for p, c, g in conn.execute(
            "SELECT provider_id, currency, gross FROM payouts WHERE run_id = %s", (run_id,))}
        checks["payouts_gross_ne_bills"] = sum(payouts.get(k, 0) != v for k, v in by_key.items()) + len(
            set(payouts) - set(by_key))
        checks["payouts_net_fee_ne_gross"] = one(
            "SELECT count(*) FROM payouts WHERE run_id = %(run)s AND net + fee <> gross + clawback")[0]
        checks["payments_not_sourced"], checks["payments_sourced"], checks["payments"] = one(
            "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM payout_sources s WHERE s.source_id = p.id)),"
            " (SELECT count(*) FROM payout_sources WHERE kind = 'payment'), count(*)"
            " FROM payments p WHERE p.tenant_id = %(t)s AND p.status = 'succeeded'")
        checks["refunds_not_sourced"], checks["refunds_sourced"], checks["refunds"] = one(
            "SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM payout_sources s WHERE s.source_id = r.id)),"
            " (SELECT count(*) FROM payout_sources WHERE kind = 'refund'), count(*)"
            " FROM refunds r WHERE r.tenant_id = %(t)s AND r.status = 'succeeded'")
        checks["settled_sourced"], checks["settled_invoices"] = one(
            "SELECT (SELECT count(*) FROM payout_sources WHERE kind = 'settled'),"
            " (SELECT count(*) FROM invoices WHERE tenant_id = %(t)s AND status = 'paid' AND total = 0)")
        checks["sources_outside_run"] = one("SELECT count(*) FROM payout_sources WHERE run_id <> %(run)s")[0]
        checks["invoices_collected_ne_total_less_refunds"] = one(
            "SELECT count(*) FROM invoices i WHERE i.tenant_id = %(t)s AND i.status = 'paid' AND i.total"
            " - i.amount_refunded <> coalesce((SELECT sum(s.amount) FROM payout_sources s"
            " WHERE s.invoice_id = i.id), 0)")[0]
    checks["rerun_created"] = rerun
    checks["ok"] = (expected == checks["gross_by_currency"] and checks["payouts_gross_ne_bills"] == 0
                    and checks["payouts_net_fee_ne_gross"] == 0
                    and checks["payments_not_sourced"] == 0 and checks["payments_sourced"] == checks["payments"] > 0
                    and checks["refunds_not_sourced"] == 0 and checks["refunds_sourced"] == checks["refunds"]
                    and checks["settled_sourced"] == checks["settled_invoices"]
                    and checks["sources_outside_run"] == 0 and checks["invoices_collected_ne_total_less_refunds"] == 0
                    and rerun == {"sources": 0, "payouts": 0})
    return checks


# --- orchestration ----------------------------------------------------------------------------

def _child(phase: str, args, extra: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", phase,
           "--database-url", args.database_url, "--customers", str(args.customers),
           "--bills", str(args.bills), "--providers", str(args.providers), "--seed", str(args.seed), *extra]
    done = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{phase} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_size(args, label: str) -> dict:
    log(f"[{label}] {args.customers:,} customers x {args.bills:,} bills, {args.providers} providers, "
        f"database {urls(args.database_url)[3]}")
    prepared = _child("setup", args, [])
    log(f"[{label}] building the payouts of {PAYOUT_DATE}")
    extra = (["--profile", args.profile] if args.profile else []) + ([] if args.record_paid else ["--no-record-paid"])
    measured = _child("measure", args, extra)
    return {"label": label, "database": urls(args.database_url)[3], "setup": prepared, **measured}


def format_report(runs: list[dict], quick: bool) -> str:
    def row(name, r, phase, rate):
        p = r[phase]
        return (f"{name:<22}{r['bills']:>11,}{p['wall_s']:>9.2f}{rate:>10}{p['python_cpu_s']:>8.1f}"
                f"{p['postgres_cpu_s']:>8.1f}{p['rss_before_mb']:>8.0f}M{p['rss_peak_mb']:>7.0f}M"
                f"{p['other_busy_cores']:>7.2f}")
    lines = [f"{'run':<22}{'bills':>11}{'wall s':>9}{'bills/s':>10}{'py cpu':>8}{'pg cpu':>8}{'RSS base':>9}"
             f"{'peak':>8}{'other':>7}", "-" * 92]
    for r in runs:
        lines.append(row(f"{r['label']} build", r, "build", f"{r['build']['bills_per_s']:,}"))
        if "record_paid" in r:
            lines.append(row(f"{r['label']} approve+paid", r, "record_paid", ""))
        lines.append(row(f"{r['label']} baseline SQL", r, "baseline", f"{r['baseline']['bills_per_s']:,}"))
    lines.append("")
    for r in runs:
        lines.append(f"{r['label']}: {r['invoices']:,} paid invoices, {r['sources']:,} sources "
                     f"({r['setup']['payments']:,} payments, {r['setup']['refunds']:,} refunds, "
                     f"{r['setup']['settled_invoices']:,} settled by credits) -> {r['payouts']} payouts; "
                     f"baseline {r['baseline']['groups']} (provider, currency) groups; build x"
                     f"{r['build']['wall_s'] / r['baseline']['wall_s']:.1f} the baseline's time; "
                     f"verification {'ok' if r['verification']['ok'] else 'FAILED'}")
        if "record_paid" in r:
            rp = r["record_paid"]
            lines.append(f"  approved {rp['approved']}, recorded paid {rp['recorded_paid']}"
                         + (f"; RECORDING PAID FAILED: {rp['failed']}" if rp["failed"] else "")
                         + f"; statuses now {r['statuses']}")
        lines.append("  build VmRSS at 10/25/50/75/100%: "
                     + " / ".join(f"{v:.0f}" for v in r["build"]["rss_mb_at_10_25_50_75_100pct"]) + " MB")
    r = runs[0]
    lines.append(f"time inside SQL statements of the build and after ({r['label']} run; seconds, count):")
    for key, count, seconds in r["statements"][:8]:
        lines.append(f"  {seconds:>8.2f}s {count:>7,}x  {key}")
    big = runs[0]
    verdicts = [f"build {big['build']['bills_per_s']:,} bills/s vs target {TARGET_BILLS_PER_S:,}: "
                f"{'MET' if big['build']['bills_per_s'] >= TARGET_BILLS_PER_S else 'NOT MET'}"]
    if len(runs) > 1:
        ratio = big["build"]["rss_peak_mb"] / runs[1]["build"]["rss_peak_mb"]
        verdicts.append(f"peak RSS of the build full/tenth {big['build']['rss_peak_mb']:.0f}/"
                        f"{runs[1]['build']['rss_peak_mb']:.0f} MB = x{ratio:.2f} (target <= x{TARGET_RSS_RATIO}): "
                        f"{'MET' if ratio <= TARGET_RSS_RATIO else 'NOT MET'}")
    lines += ["targets" + (" (--quick: not comparable)" if quick else "") + ":"] + ["  " + v for v in verdicts]
    lines.append("py cpu / pg cpu = CPU seconds of the measuring process / of the bench database's PostgreSQL "
                 "backends; RSS base = VmRSS before the phase, peak = max sampled every 10 ms during it; other = "
                 "busy cores of other processes.")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size_arguments(p, DEFAULT_URL, seed=20261202)
    p.add_argument("--no-record-paid", dest="record_paid", action="store_false",
                   help="skip approving the payouts and recording the bank transfers paid")
    p.add_argument("--profile", metavar="PATH", help="run the build under cProfile, save the stats to PATH")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--phase", choices=["setup", "measure"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    return sized(p, args, DEFAULT_URL)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.phase:
        out = {"setup": setup, "measure": measure}[args.phase](args)
        print(json.dumps(out, default=str))
        return 0
    result = run_sizes("payouts", args, run_size)
    runs = result["runs"]
    print()
    print(f"aggregator payouts benchmark — {result['date']} — {os.cpu_count()} cores — payout day {PAYOUT_DATE} — "
          f"{code_label(result)}")
    print(format_report(runs, args.quick))
    failures = [f"{r['label']}: verification failed {r['verification']}" for r in runs if not r["verification"]["ok"]]
    if args.check_targets and not args.quick:
        if runs[0]["build"]["bills_per_s"] < TARGET_BILLS_PER_S:
            failures.append("target missed: build bills/s")
        if len(runs) > 1 and runs[0]["build"]["rss_peak_mb"] > TARGET_RSS_RATIO * runs[1]["build"]["rss_peak_mb"]:
            failures.append("target missed: peak RSS at full size vs a tenth")
    return finish(result, args.json, failures)


if __name__ == "__main__":
    sys.exit(main())
