#!/usr/bin/env python
"""Sustained load: bill intake at 80 % of the intake rate measured in the same run, for
--seconds (300), while another tenant's billing cycle runs beside it: its close, its charge run
(at localstripe) and its payout day, done by a worker process.

Not a pytest test. From the repository root with the project's virtualenv:

    .venv/bin/python bench/load.py                # 5 minutes, after a 20 s measurement
    .venv/bin/python bench/load.py --quick        # 5 s (tests/integration/test_benchmarks_run.py)
    .venv/bin/python bench/load.py --json /tmp/load.json

What it does: a fresh database (aggregator_load; _quick with --quick), gunicorn as bench/ingest.py
serves it; 1. the intake rate: POST /v1/bills at --concurrency for --measure-seconds, as fast as
it goes; 2. a separate client process sends POST /v1/bills paced at --fraction (0.8) of that rate
for --seconds, while this process moves the cycle tenant's test clock past its period's end
(the close: --cycle-customers invoices), its charge day (cards at localstripe) and its payout
day, and approves the payouts. Reported: the target and achieved rates, p50/p99/max latency,
errors (must be 0), the cycle's stage durations. Exit 1 on any error, a cycle that did not
finish, or a rate below 95 % of the target.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (  # noqa: E402
    BIN,
    ROOT,
    Api,
    LeanHTTP,
    Server,
    _bill,
    _request_bytes,
    flask_cli,
    log,
    percentile,
    recreate_database,
    run_scenario,
    setup_accounts,
    urls,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_load"
#: After the period's end (UTC, anchor 25: the 25th): past its charge day (the 2nd, 9:00) and its payout day (the 10th).
CHARGE_AFTER, PAYOUT_AFTER = timedelta(days=9), timedelta(days=17)


def _paced_client(spec: dict, queue) -> None:
    """`threads` connections sending POST /v1/bills at `rate` bills/s in all, for `seconds`."""
    interval = spec["threads"] / spec["rate"]
    stats = {"latencies": [], "errors": 0, "samples": [], "late": 0}
    lock = threading.Lock()

    def sender(t: int) -> None:
        conn = LeanHTTP("127.0.0.1", spec["port"], timeout=60)
        latencies, errors, samples, late = [], 0, [], 0
        start = spec["start"] + t * interval / spec["threads"]
        n = 0
        while True:
            due = start + n * interval
            if due >= spec["start"] + spec["seconds"]:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -interval:
                late += 1
            body = json.dumps(_bill(f"c{(n * 7 + t) % spec['customers'] + 1:04d}")).encode()
            data = _request_bytes("/v1/bills", {"Authorization": f"Bearer {spec['key']}",
                                                "Content-Type": "application/json",
                                                "Idempotency-Key": f"{spec['run']}-{t}-{n}"}, body)
            t0 = time.monotonic()
            try:
                status, answer = conn.request(data)
            except Exception as exc:  # noqa: BLE001 - counted
                conn.close()
                status, answer = 0, f"{type(exc).__name__}: {exc}".encode()
            latencies.append((time.monotonic() - t0) * 1000)
            if status != 201:
                errors += 1
                if len(samples) < 3:
                    samples.append(f"{status}: {answer[:300]!r}")
            n += 1
        conn.close()
        with lock:
            stats["latencies"] += latencies
            stats["errors"] += errors
            stats["samples"] += samples
            stats["late"] += late

    threads = [threading.Thread(target=sender, args=(t,)) for t in range(spec["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(stats)


class Cycle:
    """The other tenant's billing cycle, moved by its test clock and done by a worker process."""

    def __init__(self, port: int, admin_key: str, customers: int, stripe_url: str | None):
        self.api, self.port, self.key = Api(port, admin_key), port, admin_key
        self.customers, self.stripe_url = customers, stripe_url

    def _get(self, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", path, headers={"Authorization": f"Bearer {self.key}"})
        body = json.loads(conn.getresponse().read())
        conn.close()
        return body

    def _send(self, method: str, path: str, payload: dict, key: str | None = None) -> tuple[int, dict]:
        """One request on a connection of its own (the cycle's calls are minutes apart)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request(method, path, json.dumps(payload), {"Authorization": f"Bearer {key or self.key}",
                                                         "Content-Type": "application/json"})
        response = conn.getresponse()
        body = json.loads(response.read() or b"{}")
        conn.close()
        return response.status, body

    def _patch(self, path: str, payload: dict) -> None:
        status, body = self._send("PATCH", path, payload)
        if status != 200:
            raise RuntimeError(f"PATCH {path} -> {status}: {body}")

    def prepare(self, stripe) -> None:
        """Customers (with cards when localstripe runs) and a bill each, in the period."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if stripe is not None:
            self._patch("/v1/tenant", {"stripe_secret_key": "sk_test_load4242", "stripe_api_base": stripe.url})
        status, provider = self.api.post("/v1/providers", {"name": "Cycle Apps", "revenue_share_rate": "0.30"})
        assert status == 201, provider
        for i in range(self.customers):
            status, body = self.api.post("/v1/customers", {"external_id": f"k{i:04d}", "email": f"k{i}@example.com"})
            assert status == 201, body
            if stripe is not None:
                customer, method = stripe.customer_with_card(email=f"k{i}@example.com")
                self._patch(f"/v1/customers/k{i:04d}", {"stripe_customer_id": customer,
                                                       "stripe_payment_method": method})
        bills = Api(self.port, provider["api_key"])
        for start in range(0, self.customers, 100):
            status, body = bills.post("/v1/bills/batch", {"bills": [
                _bill(f"k{i:04d}", f"cycle-{i}") for i in range(start, min(start + 100, self.customers))]})
            assert status == 200, body
            self.period = body["data"][0]["bill"]["period"] if "bill" in body["data"][0] else body["data"][0]["period"]
        conn.close()

    def stage(self, to: str, done, timeout: float) -> float:
        started = time.monotonic()
        status, body = self._send("POST", "/v1/test_clock/advance", {"to": to, "wait": False})
        assert status == 202, body
        while not done():
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the cycle's stage to {to} did not finish in {timeout:.0f} s")
            time.sleep(0.5)
        return round(time.monotonic() - started, 1)

    def run(self, timeout: float) -> dict:
        def invoices(**query) -> list:
            params = "&".join(f"{k}={v}" for k, v in query.items())
            return self._get(f"/v1/invoices?limit=100&{params}")["data"]

        def ready() -> bool:
            return self._get("/v1/test_clock")["status"] == "ready"

        end = datetime.fromisoformat(self._get(f"/v1/periods/{self.period}")["end_at"])
        times = {"close_s": self.stage(end.isoformat(), lambda: ready() and len(invoices()) >= min(self.customers, 100)
                                       and self._get(f"/v1/periods/{self.period}")["status"] == "closed", timeout)}
        times["charge_s"] = self.stage((end + CHARGE_AFTER).isoformat(),
                                       lambda: ready() and not invoices(status="open"), timeout)
        times["payout_day_s"] = self.stage((end + PAYOUT_AFTER).isoformat(),
                                           lambda: ready() and self._get("/v1/payouts")["data"], timeout)
        period = self._get("/v1/payouts")["data"][0]["period"]
        status, body = self._send("POST", "/v1/payouts/approve", {"period": period})
        assert status == 200, body
        times["payouts_approved"] = len(body["data"])
        return times


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--quick", action="store_true", help="5 s of load after a 1.5 s measurement (CI)")
    p.add_argument("--seconds", type=float, default=None, help="the sustained load (300)")
    p.add_argument("--measure-seconds", type=float, default=None, help="the rate measurement (20)")
    p.add_argument("--fraction", type=float, default=0.8)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--customers", type=int, default=200, help="the intake tenant's customers")
    p.add_argument("--cycle-customers", type=int, default=None, help="the cycle tenant's invoices (300)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.seconds = args.seconds or (5.0 if args.quick else 300.0)
    args.measure_seconds = args.measure_seconds or (1.5 if args.quick else 20.0)
    args.cycle_customers = args.cycle_customers or (10 if args.quick else 300)
    args.database_url = args.database_url or DEFAULT_URL + ("_quick" if args.quick else "")
    args.warmup, args.batch_size = 1.0, 1
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    app_url, conninfo, admin_conninfo, dbname = urls(args.database_url)
    run_id = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="aggregator-load-"))
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, FLASK_DEBUG="0", AGGREGATOR_VAR_DIR=str(workdir),
               AGGREGATOR_TICK_SECONDS="1", AGGREGATOR_DRAIN_SECONDS="0.5",
               # the tenant's Stripe is the run's localstripe on 127.0.0.1: allowed for this run only
               AGGREGATOR_STRIPE_TENANT_API_BASE="1", AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE="1")
    env.pop("FLASK_APP", None)
    log(f"recreating database {dbname!r}")
    recreate_database(admin_conninfo, dbname)
    flask_cli(ROOT, env, "db", "upgrade")
    tenants = [json.loads(next(line for line in reversed(flask_cli(ROOT, env, "tenants", "create", "--name", name,
                                                                   "--json").splitlines()) if line.startswith("{")))
               for name in ("Intake", "Cycle")]
    server = Server(ROOT, env, args.workers, "gthread", args.threads, workdir / "gunicorn.log")
    worker = stripe = None
    try:
        server.wait_ready(args.workers)
        from aggregator.payments.stripe import localstripe

        program = localstripe.executable()
        stripe = localstripe.LocalStripe(program) if program else None
        provider_key = setup_accounts(server.port, tenants[0]["admin_keys"]["live"], args.customers)
        cycle = Cycle(server.port, tenants[1]["admin_keys"]["test"], args.cycle_customers, stripe)
        cycle.prepare(stripe)
        log(f"measuring the intake rate: {args.measure_seconds:.0f} s at concurrency {args.concurrency}")
        measure_args = argparse.Namespace(**{**vars(args), "seconds": args.measure_seconds})
        measured = run_scenario("measure", "single", args.concurrency, 2, server=server, api_key=provider_key,
                                args=measure_args, run_id=run_id, dbname=dbname)
        rate = measured["bills_per_s"]
        target = round(rate * args.fraction, 1)
        log(f"intake rate {rate:,.0f} bills/s (errors {measured['errors']}); sustaining {target:,.0f} bills/s "
            f"for {args.seconds:.0f} s while the cycle runs")
        worker = subprocess.Popen([str(BIN / "python"), "-m", "aggregator.worker"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=(workdir / "worker.log").open("w"))
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        spec = {"port": server.port, "key": provider_key, "rate": target, "threads": args.concurrency,
                "seconds": args.seconds, "customers": args.customers, "run": run_id, "start": time.monotonic() + 1}
        client = ctx.Process(target=_paced_client, args=(spec, queue), daemon=True)
        client.start()
        try:
            stages = cycle.run(timeout=max(args.seconds, 120))
            cycle_error = None
        except (RuntimeError, AssertionError) as exc:
            stages, cycle_error = {}, str(exc)
        stats = queue.get(timeout=args.seconds + 120)
        client.join(10)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        server.stop()
        if stripe is not None:
            stripe.stop()
    latencies = sorted(stats["latencies"])
    achieved = round(len(latencies) / args.seconds, 1)
    result = {"benchmark": "load", "seconds": args.seconds, "measured_rate_bills_per_s": rate,
              "measure_errors": measured["errors"], "target_bills_per_s": target, "achieved_bills_per_s": achieved,
              "requests": len(latencies), "errors": stats["errors"], "error_samples": stats["samples"],
              "late_sends": stats["late"], "p50_ms": round(percentile(latencies, 0.5) or 0, 1),
              "p99_ms": round(percentile(latencies, 0.99) or 0, 1), "max_ms": round(latencies[-1], 1) if latencies
              else None, "cycle": stages, "cycle_error": cycle_error, "cards": stripe is not None,
              "server": server.problems(), "elapsed_s": round(time.monotonic() - started, 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    failures = ([f"{result['errors']} errors"] if result["errors"] or measured["errors"] else []) + (
        [cycle_error] if cycle_error else []) + (
        [f"achieved {achieved} < 95 % of {target}"] if achieved < 0.95 * target else [])
    for failure in failures:
        log(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
