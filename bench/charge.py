#!/usr/bin/env python
"""Charge benchmark: a charge run of N open invoices (one per customer), as the worker runs it
on the charge day, against two Stripe peers on this machine, on PostgreSQL.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/charge.py            # 10,000 invoices per run against the peer, 500 against localstripe
    .venv/bin/python bench/charge.py --quick    # 60 invoices: checks the script still works

What it does:
  1. drops and creates the database (default postgresql://postgres@127.0.0.1:5432/
     aggregator_bench_charge, ..._quick with --quick) and runs the migrations;
  2. starts the peers, each in its own process: the tests' request-checking Stripe server
     (tests/stripe_peer.py: checks every request's shape and Idempotency-Key) and localstripe
     (PyPI, started with --from-scratch);
  3. measures each peer alone: a plain keep-alive client loop creating PaymentIntents directly
     (no database, no SDK), one at a time (the peer's own time per request) and at the run's
     concurrency (the most requests/s it can take here);
  4. for each run, a new test-mode tenant: N customers with a card on file and one bill each
     (SQL), the period closed by close_service (N invoices finalized, each due on the 2nd),
     then times `charge_service.charge_due` as of the charge instant — batches of 200: the
     pending payments committed, the PaymentIntents created concurrently (the tenant's
     concurrency) at the tenant's rate limit, the outcomes settled;
     - peer at 100/s: Stripe's live-mode limit (is the limit kept busy?);
     - peer at 1,000/s (the highest setting): our own ceiling and CPU per charge;
     - localstripe at 100/s;
  5. verifies: every invoice paid, one succeeded payment each, and one PaymentIntent per invoice
     at the peer.

Figures: invoices/s (wall), the share of the rate limit used, our process's CPU per charge
(the app, the SDK and its HTTP client: ms), PostgreSQL's CPU per charge, and the peer's own
time per request measured alone. Target: <= 2 ms of our CPU per charge.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import fresh_database  # noqa: E402
from close import ROOT, _pg_backend_ticks, log  # noqa: E402

sys.path.insert(0, str(ROOT))
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_charge"
TARGET_CPU_MS = 2.0
PERIOD = date(2026, 10, 25)
CLOSE_AT = datetime(2026, 11, 25, tzinfo=timezone.utc)
CHARGE_AT = datetime(2026, 12, 2, 9, tzinfo=timezone.utc)  # the 2nd at the charge hour (UTC tenant)
TICK = os.sysconf("SC_CLK_TCK")


# --- the peers (their own processes) ------------------------------------------------------------

PEER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.stripe_peer import PeerServer
server = PeerServer()
print(server.url, flush=True)
time.sleep(10 ** 9)
"""


def start_peer() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-c", PEER, str(ROOT)], stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


def start_localstripe():
    from tests.localstripe_server import LocalStripe

    return LocalStripe()


def peer_alone(url: str, requests: int, concurrency: int, ids: tuple[str, str] = ("cus_alone", "pm_alone")) -> dict:
    """The peer's own time per PaymentIntent create, one at a time, and its requests/s at
    `concurrency`: a plain keep-alive client (urllib3), prepared bodies, no database, no SDK."""
    import urllib3

    host, port = url.removeprefix("http://").split(":")
    pool = urllib3.HTTPConnectionPool(host, int(port), maxsize=concurrency, retries=False)
    headers = {"Authorization": "Bearer sk_test_bench", "Content-Type": "application/x-www-form-urlencoded"}

    def create(n: int) -> None:
        body = (f"amount=1000&currency=usd&customer={ids[0]}&payment_method={ids[1]}&off_session=true"
                f"&confirm=true&metadata[payment_id]=alone_{n}_{time.monotonic_ns()}")
        answer = pool.request("POST", "/v1/payment_intents", body=body,
                              headers={**headers, "Idempotency-Key": f"alone-{n}-{time.monotonic_ns()}"})
        if answer.status != 200:
            raise RuntimeError(f"the peer answered {answer.status}: {answer.data[:300]!r}")

    sequential = max(10, requests // 10)
    started = time.perf_counter()
    for n in range(sequential):
        create(n)
    per_request_ms = (time.perf_counter() - started) / sequential * 1000
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as executor:
        list(executor.map(create, range(requests)))
    return {"ms_per_request_alone": round(per_request_ms, 2),
            "requests_per_s_at_concurrency": round(requests / (time.perf_counter() - started))}


def intents_per_invoice(url: str, tenant_id: str, localstripe=None) -> dict[str, int]:
    """PaymentIntents the peer holds for this tenant, per invoice id."""
    counts: dict[str, int] = {}
    if localstripe is not None:
        intents = [pi.to_dict() for pi in localstripe.payment_intents()]
    else:
        import urllib3

        intents = json.loads(urllib3.request("GET", f"{url}/v1/payment_intents?limit=100000000").data)["data"]
    for pi in intents:
        metadata = pi.get("metadata") or {}
        if metadata.get("tenant") == tenant_id:
            counts[metadata["invoice_id"]] = counts.get(metadata["invoice_id"], 0) + 1
    return counts


# --- one run ----------------------------------------------------------------------------------

def seed(app, conninfo: str, n: int, peer_url: str, stripe_ids: tuple[str, str], rate: int, concurrency: int,
         label: str) -> str:
    """A test-mode tenant with n customers paying by card, one bill each, its period closed."""
    import psycopg

    from aggregator.accounts import service as accounts
    from aggregator.consolidate import close_service
    from aggregator.db import db, new_id

    with app.app_context():
        tenant_id = accounts.create_tenant({
            "name": f"Charge bench {label}", "timezone": "UTC", "default_currency": "USD", "charge_day": 2,
            "period_anchor_day": 25, "invoice_review": "auto"}, datetime(2026, 1, 1, tzinfo=timezone.utc)).tenant.id
        db.session.commit()
    provider = new_id("prov")
    customers = [new_id("cus") for _ in range(n)]
    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO providers (id, tenant_id, livemode, name, revenue_share_rate, created_at) "
                     "VALUES (%s, %s, false, 'Bench app', '0.3', now())", (provider, tenant_id))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO customers (id, tenant_id, livemode, external_id, currency, tax_exempt, created_at, "
                "stripe_customer_id, stripe_payment_method) VALUES (%s, %s, false, %s, 'USD', false, now(), %s, %s)",
                [(c, tenant_id, f"c{i:06d}", *stripe_ids) for i, c in enumerate(customers)])
            cur.executemany(
                "INSERT INTO bills (id, tenant_id, livemode, provider_id, customer_id, idempotency_key, fingerprint, "
                "amount, currency, revenue_share, description, metadata, status, received_at, period_start) "
                "VALUES (%s, %s, false, %s, %s, %s, '\\x00', %s, 'USD', true, 'Pro plan', '{}', 'pending', "
                "'2026-11-10T00:00:00Z', %s)",
                [(new_id("bill"), tenant_id, provider, c, f"k{i}", 1000 + i % 5000, PERIOD)
                 for i, c in enumerate(customers)])
    with app.app_context():
        report = close_service.close_period(tenant_id, False, PERIOD, CLOSE_AT)
        assert report.invoices_created == n, report
        accounts.update_tenant(accounts.operator(tenant_id, False), {
            "stripe_secret_key": "sk_test_bench4242", "stripe_api_base": peer_url, "stripe_rate_limit": rate,
            "stripe_concurrency": concurrency}, vault=app.extensions["aggregator.adapters"].vault,
            check_api_base=app.extensions["aggregator.adapters"].payments.check_tenant_api_base)
        db.session.commit()
    return tenant_id


def charge_run(app, dbname: str, tenant_id: str) -> dict:
    from aggregator.payments import charge_service

    with app.app_context():
        adapters = app.extensions["aggregator.adapters"]
        pg_before, cpu_before = _pg_backend_ticks(dbname), time.process_time()
        started = time.perf_counter()
        report = charge_service.charge_due(tenant_id, False, CHARGE_AT, adapters)
        wall = time.perf_counter() - started
        cpu, pg = time.process_time() - cpu_before, (_pg_backend_ticks(dbname) - pg_before) / TICK
    return {"wall_s": wall, "cpu_s": cpu, "pg_s": pg, "report": report}


def verify(app, tenant_id: str, n: int, per_invoice: dict[str, int]) -> list[str]:
    import sqlalchemy as sa

    from aggregator.db import db

    problems = []
    with app.app_context():
        paid, payments, succeeded, invoices = db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM invoices WHERE tenant_id = :t AND status = 'paid' "
            "AND amount_paid = amount_due), (SELECT count(*) FROM payments WHERE tenant_id = :t), "
            "(SELECT count(DISTINCT invoice_id) FROM payments WHERE tenant_id = :t AND status = 'succeeded'), "
            "(SELECT count(*) FROM invoices WHERE tenant_id = :t)"), {"t": tenant_id}).one()
    if not paid == payments == succeeded == invoices == n:
        problems.append(f"{paid} paid of {invoices} invoices, {payments} payments "
                        f"({succeeded} succeeded), expected {n}")
    if len(per_invoice) != n or set(per_invoice.values()) != {1}:
        problems.append(f"PaymentIntents per invoice at the peer: {sorted(set(per_invoice.values()))} "
                        f"for {len(per_invoice)} invoices, expected one each for {n}")
    return problems


def run(args) -> dict:
    _, conninfo = fresh_database(args.database_url)
    dbname = conninfo.rsplit("/", 1)[1]
    done = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "wsgi", "db", "upgrade"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")
    os.environ["AGGREGATOR_VAR_DIR"] = str(args.tmp)
    # each run's tenant points at its own peer on 127.0.0.1: the bench is the operator and allows it
    os.environ.update(AGGREGATOR_STRIPE_TENANT_API_BASE="1", AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE="1")
    from aggregator import create_app

    app = create_app()
    peer_process, peer_url = start_peer()
    localstripe = start_localstripe()
    results, problems = {"invoices": args.invoices, "concurrency": args.concurrency, "cores": os.cpu_count()}, []
    try:
        log("peers alone")
        results["peer_alone"] = peer_alone(peer_url, args.alone_requests, args.concurrency)
        stripe_customer, card = localstripe.customer_with_card()
        results["localstripe_alone"] = peer_alone(localstripe.url, max(50, args.alone_requests // 10),
                                                  args.concurrency, (stripe_customer, card))
        runs = [("peer, 100/s", peer_url, None, ("cus_bench", "pm_bench"), 100, args.invoices),
                ("peer, 1000/s", peer_url, None, ("cus_bench", "pm_bench"), 1000, args.invoices),
                ("localstripe, 100/s", localstripe.url, localstripe, (stripe_customer, card), 100,
                 args.localstripe_invoices)]
        results["runs"] = []
        for label, url, ls, ids, rate, n in runs:
            log(f"{label}: seeding {n:,} invoices")
            tenant_id = seed(app, conninfo, n, url, ids, rate, args.concurrency, label)
            log(f"{label}: charging")
            measured = charge_run(app, dbname, tenant_id)
            report = measured["report"]
            per_invoice = intents_per_invoice(url, tenant_id, ls)
            run_problems = verify(app, tenant_id, n, per_invoice)
            problems += [f"{label}: {p}" for p in run_problems]
            per_s = n / measured["wall_s"]
            results["runs"].append({
                "run": label, "invoices": n, "rate_limit": rate, "wall_s": round(measured["wall_s"], 2),
                "invoices_per_s": round(per_s, 1), "limit_used": round(per_s / rate, 3),
                "our_cpu_ms_per_charge": round(measured["cpu_s"] / n * 1000, 3),
                "postgres_cpu_ms_per_charge": round(measured["pg_s"] / n * 1000, 3),
                "requests": report.requests, "succeeded": report.succeeded, "problems": run_problems})
            log(f"{label}: {per_s:,.1f} invoices/s, our CPU {measured['cpu_s'] / n * 1000:.2f} ms per charge")
        results["localstripe_alone_after"] = peer_alone(localstripe.url, max(50, args.alone_requests // 10),
                                                        args.concurrency, (stripe_customer, card))
    finally:
        peer_process.kill()
        localstripe.stop()
    results["problems"] = problems
    return results


def format_report(result: dict) -> str:
    alone, ls_alone = result["peer_alone"], result["localstripe_alone"]
    lines = [f"\nCharge runs on {result['cores']} cores (concurrency {result['concurrency']}, batches of 200)",
             f"  peers alone (plain client, no database):  request-checking peer "
             f"{alone['ms_per_request_alone']} ms/request one at a time, {alone['requests_per_s_at_concurrency']:,}/s "
             f"at c={result['concurrency']};  localstripe {ls_alone['ms_per_request_alone']} ms/request, "
             f"{ls_alone['requests_per_s_at_concurrency']:,}/s empty, "
             f"{result['localstripe_alone_after']['ms_per_request_alone']} ms/request, "
             f"{result['localstripe_alone_after']['requests_per_s_at_concurrency']:,}/s after its run",
             "",
             f"  {'run':<20} {'invoices':>9} {'limit/s':>8} {'wall s':>8} {'inv/s':>8} {'limit used':>10} "
             f"{'our cpu ms':>10} {'pg cpu ms':>9}  (per charge; target our cpu <= {TARGET_CPU_MS} ms)"]
    for r in result["runs"]:
        limit, used = str(r["rate_limit"]), f"{r['limit_used']:.0%}"
        lines.append(f"  {r['run']:<20} {r['invoices']:>9,} {limit:>8} {r['wall_s']:>8.1f} {r['invoices_per_s']:>8.1f} "
                     f"{used:>10} {r['our_cpu_ms_per_charge']:>10.2f} {r['postgres_cpu_ms_per_charge']:>9.2f}")
    lines.append("")
    lines.append("verification: " + ("every invoice paid once, one PaymentIntent each at the peer"
                                     if not result["problems"] else "; ".join(result["problems"])))
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--invoices", type=int, default=10_000, help="invoices per run against the request-checking peer")
    p.add_argument("--localstripe-invoices", type=int, default=500,
                   help="invoices of the localstripe run (it slows down as it fills: about 6 charges/s after 1,500)")
    p.add_argument("--concurrency", type=int, default=10, help="the tenants' stripe_concurrency")
    p.add_argument("--alone-requests", type=int, default=3_000, help="requests measuring the peer alone")
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--quick", action="store_true", help="60 invoices: checks the script still works")
    p.add_argument("--check-targets", action="store_true")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    args = p.parse_args()
    if args.quick:
        args.invoices, args.localstripe_invoices, args.alone_requests = 60, 40, 100
        if args.database_url == DEFAULT_URL:
            args.database_url += "_quick"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = Path(tmp)
        result = run(args)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if result["problems"]:
        return 1
    if args.check_targets and any(r["our_cpu_ms_per_charge"] > TARGET_CPU_MS for r in result["runs"]):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
