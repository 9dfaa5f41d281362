"""The crash harness: one billing cycle on PostgreSQL, in processes, one of them killed (kill -9)
at a named crash point (aggregator.faults), then restarted and run to the end; the cycle's
invariants are then checked.

A run, for a seed and a point:

* two tenants: "cards" charges at localstripe (a real Stripe-compatible server, which ignores
  idempotency keys, so a second charge would be a second PaymentIntent) and pays its providers by
  bank transfer; "connect" charges and pays its providers by Stripe Connect at the tests' own
  Stripe peer (tests/stripe_peer.py). Each has customers with emails and cards, providers, a
  webhook endpoint (a real receiver) and a finance address, and a parent plan, a provider's plan on
  it and subscriptions to it (rated into bills by the close); mail goes to a real SMTP server
  (aiosmtpd);
* processes: two workers (`python -m aggregator.worker`) and the actor (tests.crash.actor), all
  started with AGGREGATOR_CRASH_AT=<point>@<n> and AGGREGATOR_CRASH_ONCE: the first process that
  reaches the point the n-th time dies there (SIGKILL), the others go on. A killed process is
  started again without the setting, as a supervisor would;
* the cycle, on the tenants' test clocks: intake (the actor posts and cancels bills through the
  API while the clock passes the period's end, so bills race the close), the close with its
  invoices, PDFs, events, webhooks and emails; the charge day; a refund; the payout day's build,
  finance's approval, the Stripe transfers and bank transfers. Each stage waits until nothing is
  left to do; it fails when its work stood still for STAGE_SECONDS while every worker was up (a
  worker restarted after a kill spends seconds starting, more on a loaded machine: that time is
  not counted against the work).

Invariants (`check`): every accepted bill is in exactly one invoice, or cancelled, or pending in
a period not closed, and nothing else was stored but the close's rated bills, three per
subscription, each once; invoice totals are their bills; invoice numbers
are gapless per tenant; one PaymentIntent per payment attempt at the Stripe server (and each
attempt's intent the one recorded); each refund one Stripe refund; each payout paid once, one
transfer per Stripe payout of its exact amount, each payment a payout source once; every journal
balanced and the trial balance zero; every event delivered to the endpoint and every email
received, each once (a kill between the send and its recording may resend the same webhook-id
or Message-ID: at-least-once is what HTTP and SMTP allow, and receivers deduplicate by those
ids; such a resend is reported, any other duplicate is a violation); no delivery failed.

`python -m tests.crash --seed 1 --points all` runs every point; tests/crash/test_crash_cycle.py
runs a few, chosen by seed, in CI."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from aggregator.config import PROJECT_ROOT
from aggregator.faults import POINTS

#: A kill at these points may resend what the dead process had sent (same id, never new content).
RESEND_WINDOWS = {"webhooks.send.after_post": "webhook", "email.send.after_smtp": "email"}

#: Points reached only after a kill at another in the same cycle: the refund queue resumes a
#: refund only when the process that created it died before settling it.
NEEDS = {"refund.resume.after_claim": "refund.create.after_commit"}

#: Points a cycle passes many times (each bill, PDF, batch of deliveries): killed at the 1st-3rd pass.
FREQUENT = ("ingest.", "pdf.", "events.", "webhooks.", "email.", "due.")

START = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)  # Sydney: in the period 2026-10-25
SUBSCRIBED = 3  # customers of each tenant subscribed to a plan (the close rates them into bills)
PERIOD = "2026-10-25"
CLOSE_AT = "2026-11-24T13:00:00+00:00"  # the period's end
CHARGE_AT = "2026-12-02T00:00:00+00:00"  # after the charge day's charge hour (9:00 Sydney, 2 Dec)
PAYOUT_AT = "2026-12-10T00:00:00+00:00"  # the payout day (10 Dec, Sydney) has begun
STAGE_SECONDS = 90.0  # how long a stage's work may stand still while every worker is up
STAGE_LIMIT_SECONDS = 600.0  # a stage's whole time, moving or not


@dataclass
class Outcome:
    seed: int
    points: list[tuple[str, int]]  # (point, the hit that kills)
    killed: list[str] = field(default_factory=list)  # the points at which a process died
    violations: list[str] = field(default_factory=list)
    resent: int = 0  # webhooks or emails sent again after a kill in a resend window
    seconds: float = 0.0

    def line(self) -> str:
        points = ", ".join(f"{p}@{n}" + ("" if p in self.killed else " (not reached)") for p, n in self.points)
        return (f"seed {self.seed}: {len(self.killed)} kills at {points}; {len(self.violations)} violations"
                + (f", {self.resent} resent" if self.resent else "") + f" ({self.seconds:.1f} s)")


def plan_runs(seed: int, count: int | None, per_run: int) -> list[list[tuple[str, int]]]:
    """The seed's points (every one when `count` is None), each with the hit at which it kills
    (1-3 for the points a cycle passes many times, else 1), in the seed's order, `per_run` to a cycle."""
    rng = random.Random(seed)
    points = list(POINTS)
    rng.shuffle(points)
    chosen = [(p, rng.choice((1, 2, 3)) if p.startswith(FREQUENT) else 1)
              for p in (points if count is None else points[:count])]
    runs = [chosen[i:i + per_run] for i in range(0, len(chosen), per_run)]
    for point, after in NEEDS.items():  # into the cycle of the kill that leaves it work to do
        home = next((run for run in runs if any(p == after for p, _ in run)), None)
        held = next((run for run in runs if any(p == point for p, _ in run)), None)
        if home is not None and held is not None and home is not held:
            held[:] = [(p, n) for p, n in held if p != point]
            home.append((point, 1))
    return [run for run in runs if run]


class Processes:
    """The workers and the actor of one run; a killed one is started again (with the same setting:
    it dies only at the points no process reached yet)."""

    def __init__(self, folder: Path, env: dict, crash_env: dict):
        self.folder, self.env, self.crash_env = folder, env, crash_env
        self.workers: list[subprocess.Popen] = []
        self.worker_logs: list[Path] = []
        self.up: set[Path] = set()  # the logs of workers seen started
        self.logs: list[Path] = []
        self.restarts = 0
        self.started_at = time.monotonic()  # when the last worker was (re)started

    def _start(self, command: list[str], crash: bool, name: str) -> subprocess.Popen:
        log = self.folder / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        env = {**self.env, **self.crash_env}
        return subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=log.open("w"))

    def _start_worker(self) -> subprocess.Popen:
        process = self._start([sys.executable, "-m", "aggregator.worker"], True, "worker")
        self.started_at = time.monotonic()
        return process

    def start_workers(self, n: int = 2) -> None:
        self.workers = [self._start_worker() for _ in range(n)]
        self.worker_logs = self.logs[-n:]

    def keep_workers(self) -> None:
        """A worker killed (the crash) is started again."""
        for i, process in enumerate(self.workers):
            if process.poll() is not None:
                if process.returncode != -signal.SIGKILL:
                    raise RuntimeError(f"worker exited {process.returncode}\n{self.log_tail()}")
                self.restarts += 1
                self.workers[i] = self._start_worker()
                self.worker_logs[i] = self.logs[-1]

    def workers_up(self) -> bool:
        """Whether every worker has started its scheduler (its log says so)."""
        for process, log in zip(self.workers, self.worker_logs):
            if process.poll() is not None:
                return False
            if log not in self.up:
                with log.open() as text:
                    if "worker started" not in text.read(8192):
                        return False
                self.up.add(log)
        return True

    def act(self, step: str, plan: Path, out: Path, wait_while=None) -> int:
        """Run an actor step to its end, started again if it is killed."""
        while True:
            process = self._start([sys.executable, "-m", "tests.crash.actor", step, str(plan), str(out)], True,
                                  f"actor-{step}")
            while process.poll() is None:
                if wait_while:
                    wait_while()
                self.keep_workers()
                time.sleep(0.1)
            if process.returncode != -signal.SIGKILL:
                return process.returncode
            self.restarts += 1

    def stop(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def log_tail(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-1500:]}" for log in self.logs if log.exists())


class Cycle:
    """One crash run's world: the servers, the tenants and their plan."""

    def __init__(self, app, database_url: str, folder: Path, localstripe, peer, smtp, receiver, *,
                 customers: int = 6, bills: int = 60):
        self.app, self.database_url, self.folder = app, database_url, folder
        self.localstripe, self.peer, self.smtp, self.receiver = localstripe, peer, smtp, receiver
        self.customers, self.bills = customers, bills
        self.tenants: list[dict] = []
        self.timings: list[str] = []

    # --- setting up --------------------------------------------------------------------------

    def _api(self, key: str):
        from tests.support.callers import Caller

        return Caller(self.app.test_client(), key)

    def setup(self) -> Path:
        from aggregator.accounts import service
        from aggregator.db import db

        for kind in ("cards", "connect"):
            with self.app.app_context():
                created = service.create_tenant({"name": f"Crash {kind}", "timezone": "Australia/Sydney",
                                                 "default_currency": "AUD"}, START)
                tenant_id, keys = created.tenant.id, created.admin_keys
                db.session.execute(sa.text(
                    "INSERT INTO test_clocks (tenant_id, now) VALUES (:t, :now) "
                    "ON CONFLICT (tenant_id) DO UPDATE SET now = excluded.now"), {"t": tenant_id, "now": START})
                db.session.commit()
            admin = self._api(keys["test"])
            base = self.localstripe.url if kind == "cards" else self.peer.url
            _ok(admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_crash4242", "stripe_api_base": base,
                                           "finance_email": f"finance@{kind}.example"}))
            _ok(admin.post("/v1/webhook_endpoints", {"url": self.receiver.url(self._hook_path(kind)),
                                                     "enabled_events": ["*"]}))
            providers = []
            for p, account in enumerate(("acct_provider_a", "acct_provider_b")):
                made = _ok(admin.post("/v1/providers", {"name": f"App {p}", "revenue_share_rate": "0.30"}))
                if kind == "connect":
                    _ok(admin.patch(f"/v1/providers/{made['id']}", {"stripe_account_id": account}))
                providers.append(made["api_key"])
            customers = []
            for c in range(self.customers):
                external = f"{kind}-{c}"
                _ok(admin.post("/v1/customers", {"external_id": external, "email": f"{external}@customers.example"}))
                if kind == "cards":
                    from aggregator.payments.stripe.localstripe import CARD_DECLINED, CARD_OK

                    number = CARD_DECLINED if c == self.customers - 1 else CARD_OK
                    stripe_customer, method = self.localstripe.customer_with_card(number, f"{external}@x.example")
                else:
                    stripe_customer, method = f"cus_P{c}", f"pm_P{c}"
                _ok(admin.patch(f"/v1/customers/{external}", {"stripe_customer_id": stripe_customer,
                                                              "stripe_payment_method": method}))
                customers.append(external)
            subscriptions = self._subscribe(admin, providers[0], customers[:SUBSCRIBED])
            self.tenants.append({"id": tenant_id, "kind": kind, "admin": keys["test"],
                                 "providers": providers, "customers": customers, "subscriptions": subscriptions})
        plan = self.folder / "plan.json"
        plan.write_text(json.dumps({"bills": self.bills, "tenants": self.tenants}))
        return plan

    def _subscribe(self, admin, provider_key: str, customers: list[str]) -> list[str]:
        """A parent plan, the first provider's plan on it (one fee billed in advance, one in
        arrears), and a subscription for each customer given: the close rates them into bills."""
        _ok(admin.post("/v1/plans", {"code": "base", "name": "Base", "currency": "AUD", "granted_to": ["*"],
                                     "fees": [{"name": "Hosting", "price": "40.00", "timing": "in_advance"},
                                              {"name": "Support", "price": "5.00", "timing": "in_arrears"}]}))
        provider = self._api(provider_key)
        _ok(provider.post("/v1/plans", {
            "code": "pro", "name": "Pro", "currency": "AUD", "parent_plan": "base",
            "fees": [{"name": "Hosting", "price": "55.00", "timing": "in_advance", "parent_fee": "Hosting"},
                     {"name": "Support", "price": "9.00", "timing": "in_arrears", "parent_fee": "Support"}]}))
        return [_ok(provider.post("/v1/subscriptions", {"customer": c, "plan": "pro"}))["id"] for c in customers]

    def _hook_path(self, kind: str) -> str:
        return f"/{self.folder.name}/{kind}"  # the receiver serves every cycle of a run

    def advance(self, to: str) -> None:
        for t in self.tenants:
            response = self._api(t["admin"]).post("/v1/test_clock/advance", {"to": to, "wait": False})
            if response.status_code != 202:
                raise RuntimeError(f"advance to {to}: {response.status_code} {response.json}")

    # --- waiting -----------------------------------------------------------------------------

    def _sql(self, statement: str, **params):
        from aggregator.db import db

        with self.app.app_context():
            rows = db.session.execute(sa.text(statement), {"t": [t["id"] for t in self.tenants], **params}).all()
            db.session.commit()
            return rows

    def left_to_do(self) -> dict[str, int]:
        """What remains of the cycle's work so far (all zero: quiet)."""
        t = "tenant_id = ANY(:t)"
        (row,) = self._sql(
            f"SELECT (SELECT count(*) FROM events WHERE {t} AND NOT dispatched), "
            f"(SELECT count(*) FROM webhook_deliveries WHERE {t} AND status = 'pending'), "
            f"(SELECT count(*) FROM email_deliveries WHERE {t} AND status = 'pending'), "
            f"(SELECT count(*) FROM invoices WHERE {t} AND number IS NOT NULL AND pdf_sha256 IS NULL), "
            f"(SELECT count(*) FROM payments WHERE {t} AND status = 'pending'), "
            f"(SELECT count(*) FROM refunds WHERE {t} AND status = 'pending'), "
            f"(SELECT count(*) FROM payouts WHERE {t} AND status = 'approved' AND method = 'stripe'), "
            f"(SELECT count(*) FROM test_clocks WHERE {t} AND status <> 'ready'), "
            f"(SELECT count(*) FROM due_lanes l JOIN test_clocks c ON c.tenant_id = l.tenant_id "
            f" WHERE l.{t} AND NOT l.livemode AND (l.wake_at <= now() OR l.next_due_at <= c.now))")
        names = ("events", "webhooks", "emails", "pdfs", "payments", "refunds", "payouts", "clocks", "lanes")
        return {n: v for n, v in zip(names, row) if v}

    def wait_quiet(self, processes: Processes, what: str) -> None:
        started = time.monotonic()
        try:
            self._wait_quiet(processes, what)
        finally:
            self.timings.append(f"{what} {time.monotonic() - started:.1f} s")

    def _wait_quiet(self, processes: Processes, what: str) -> None:
        """Until nothing is left to do. Time counts against the work only while every worker is
        up: what is left must change within STAGE_SECONDS of the workers running, however long
        restarts take."""
        started = time.monotonic()
        quiet_since = None
        last, standing = None, 0.0  # what was left, and for how long it stood still with the workers up
        before = started
        while True:
            processes.keep_workers()
            left = self.left_to_do()
            now = time.monotonic()
            if not left:
                quiet_since = quiet_since or now
                if now - quiet_since > 1.0:  # twice a drain interval: nothing new came
                    return
            else:
                quiet_since = None
            if left != last:
                last, standing = left, 0.0
            elif processes.workers_up() and processes.started_at < before:
                standing += now - before
            before = now
            if standing > STAGE_SECONDS:
                raise StageTimeout(f"{what}: still to do after {STAGE_SECONDS:.0f} s without progress "
                                   f"with every worker up: {left}")
            if now - started > STAGE_LIMIT_SECONDS:
                raise StageTimeout(f"{what}: still to do after {STAGE_LIMIT_SECONDS:.0f} s: {left}")
            time.sleep(0.2)

    # --- the cycle ---------------------------------------------------------------------------

    def run(self, processes: Processes, plan: Path) -> list[str]:
        """The whole cycle -> problems the actor reported."""
        problems = []
        out = self.folder / "actor.out"
        processes.start_workers()
        advanced = []

        def close_midway():  # the clock passes the period's end while bills are being posted
            if not advanced and out.exists() and out.read_text().count("accepted") >= self.bills:
                self.advance(CLOSE_AT)
                advanced.append(True)

        started = time.monotonic()
        if processes.act("intake", plan, out, wait_while=close_midway):
            problems.append("the intake actor failed")
        self.timings.append(f"intake {time.monotonic() - started:.1f} s")
        if not advanced:
            self.advance(CLOSE_AT)
        self.wait_quiet(processes, "close")
        self.advance(CHARGE_AT)
        self.wait_quiet(processes, "charge day")
        if processes.act("refund", plan, out):
            problems.append("the refund actor failed")
        self.wait_quiet(processes, "refund")
        self.advance(PAYOUT_AT)
        self.wait_quiet(processes, "payout day")
        periods = {r[0].isoformat() for r in self._sql(
            "SELECT DISTINCT r.period_start FROM payout_runs r WHERE r.tenant_id = ANY(:t)")}
        data = json.loads(plan.read_text())
        for period in sorted(periods):
            plan.write_text(json.dumps({**data, "payout_period": period}))
            if processes.act("approve", plan, out):
                problems.append("the approve actor failed")
        self.wait_quiet(processes, "payouts")
        problems += [line for line in out.read_text().splitlines() if line.startswith("error")]
        return problems

    # --- the invariants ----------------------------------------------------------------------

    def check(self, killed: list[str]) -> tuple[list[str], int]:
        """-> the violations, and how many webhooks and emails were resent after the kill."""
        v: list[str] = []
        out = (self.folder / "actor.out").read_text().splitlines()
        for t in self.tenants:
            v += self._check_bills(t, out)
            v += self._check_numbers(t)
        v += self._check_payments()
        v += self._check_payouts()
        v += self._check_books()
        delivery, resent = self._check_deliveries({RESEND_WINDOWS.get(p) for p in killed})
        return v + delivery, resent

    def _check_bills(self, t: dict, out: list[str]) -> list[str]:
        v = []
        accepted = {line.split()[2] for line in out if line.startswith(f"accepted {t['id']} ")}
        stored = dict(self._sql("SELECT id, status FROM bills WHERE tenant_id = :one AND source = 'api'", one=t["id"]))
        # rated by the close: per subscription, Support for the period, Hosting for the period (it started
        # in it) and for the next one in advance; each once, each a bill of the period
        rated = self._sql(
            "SELECT c.subscription_id, count(*), count(DISTINCT (c.fee_id, c.covered_start)), "
            "bool_and(b.period_start = :period AND b.source = 'subscription') FROM subscription_charges c "
            "JOIN bills b ON b.id = c.bill_id WHERE b.tenant_id = :one GROUP BY c.subscription_id",
            one=t["id"], period=datetime.fromisoformat(PERIOD).date())
        if sorted(r[0] for r in rated) != sorted(t["subscriptions"]) or any(r[1:] != (3, 3, True) for r in rated):
            v.append(f"{t['kind']}: rated charges per subscription {sorted(r[1:] for r in rated)}, expected 3 each")
        if set(stored) != accepted:
            v.append(f"{t['kind']}: bills stored {len(stored)} != accepted {len(accepted)} "
                     f"(lost {len(accepted - set(stored))}, unknown {len(set(stored) - accepted)})")
        if len(accepted) != self.bills:
            v.append(f"{t['kind']}: {len(accepted)} bills accepted of {self.bills} posted")
        rows = self._sql(
            "SELECT b.id, b.status, p.status AS period, count(i.id) FILTER (WHERE i.status <> 'void') AS invoices "
            "FROM bills b JOIN periods p ON p.tenant_id = b.tenant_id AND p.livemode = b.livemode "
            "AND p.start = b.period_start LEFT JOIN invoices i ON i.tenant_id = b.tenant_id "
            "AND i.livemode = b.livemode AND i.customer_id = b.customer_id AND i.period_start = b.period_start "
            "WHERE b.tenant_id = :one GROUP BY b.id, b.status, p.status", one=t["id"])
        if len(rows) != len(stored) + sum(r[1] for r in rated):
            v.append(f"{t['kind']}: {len(stored) - len(rows)} bills without a period row")
        closed = 0
        for bill_id, status, period, invoices in rows:
            if status == "cancelled":
                continue
            if period == "closed":
                closed += 1
                if invoices != 1:
                    v.append(f"{t['kind']}: bill {bill_id} is in {invoices} invoices")
            elif period != "open":
                v.append(f"{t['kind']}: bill {bill_id}'s period is {period}")
        if not closed:
            v.append(f"{t['kind']}: no bill was invoiced")
        wrong = self._sql(
            "SELECT i.id FROM invoices i WHERE i.tenant_id = :one AND i.subtotal <> (SELECT coalesce(sum(b.amount), 0) "
            "FROM bills b WHERE b.tenant_id = i.tenant_id AND b.customer_id = i.customer_id "
            "AND b.period_start = i.period_start AND b.status = 'pending')", one=t["id"])
        v += [f"{t['kind']}: invoice {r[0]}'s subtotal is not its bills" for r in wrong]
        return v

    def _check_numbers(self, t: dict) -> list[str]:
        numbers = sorted(int(r[0].rsplit("-", 1)[1]) for r in self._sql(
            "SELECT number FROM invoices WHERE tenant_id = :one AND number IS NOT NULL", one=t["id"]))
        return [] if numbers == list(range(1, len(numbers) + 1)) else [f"{t['kind']}: invoice numbers {numbers}"]

    def _check_payments(self) -> list[str]:
        v = []
        attempts = self._sql("SELECT p.id, p.tenant_id, p.stripe_payment_intent_id, p.status FROM payments p "
                             "WHERE p.tenant_id = ANY(:t) AND p.gateway = 'stripe'")
        kinds = {t["id"]: t["kind"] for t in self.tenants}
        intents = {"cards": [(i.id, i.metadata.to_dict() if i.metadata else {})
                             for i in self.localstripe.payment_intents()],
                   "connect": [(i["id"], i.get("metadata") or {}) for i in self.peer.peer.intents.values()]}
        per_attempt = {kind: Counter(m.get("payment_id") for _, m in found) for kind, found in intents.items()}
        if not attempts:
            v.append("no card payment was attempted")
        for payment_id, tenant_id, intent_id, status in attempts:
            kind = kinds[tenant_id]
            made = per_attempt[kind][payment_id]
            if made > 1:
                v.append(f"{kind}: payment {payment_id} has {made} PaymentIntents")
            if status in ("succeeded", "failed") and made != 1 and not (status == "failed" and made == 0):
                v.append(f"{kind}: payment {payment_id} ({status}) has {made} PaymentIntents")
            if intent_id and intent_id not in {i for i, _ in intents[kind]}:
                v.append(f"{kind}: payment {payment_id} records {intent_id}, unknown at Stripe")
        ours = {r[0] for r in attempts}
        for kind, found in intents.items():
            strays = [i for i, m in found if m.get("tenant") in kinds and m.get("payment_id") not in ours]
            v += [f"{kind}: PaymentIntent {i} belongs to no payment" for i in strays]
        refunds = self._sql("SELECT id, status, stripe_refund_id FROM refunds WHERE tenant_id = ANY(:t)")
        if len(refunds) != len(self.tenants):
            v.append(f"{len(refunds)} refunds, expected one per tenant")
        at_peer = Counter((r.get("metadata") or {}).get("refund_id") for r in self.peer.peer.refunds.values())
        for refund_id, status, _stripe_id in refunds:
            if status != "succeeded":
                v.append(f"refund {refund_id} is {status}")
            if at_peer[refund_id] > 1:
                v.append(f"refund {refund_id} was made {at_peer[refund_id]} times at Stripe")
        return v

    def _check_payouts(self) -> list[str]:
        v = []
        payouts = self._sql("SELECT id, status, method, amount, stripe_transfer_id FROM payouts "
                            "WHERE tenant_id = ANY(:t)")
        if not payouts:
            v.append("no payout was built")
        transfers = Counter((tr.get("metadata") or {}).get("payout") for tr in self.peer.peer.transfers.values())
        amounts = {(tr.get("metadata") or {}).get("payout"): tr["amount"] for tr in self.peer.peer.transfers.values()}
        for payout_id, status, method, amount, _transfer in payouts:
            if status != "paid":
                v.append(f"payout {payout_id} ({method}) is {status}")
            if method == "stripe":
                if transfers[payout_id] != 1 or int(amounts.get(payout_id, -1)) != amount:
                    v.append(f"payout {payout_id}: {transfers[payout_id]} transfers at Stripe")
            elif transfers[payout_id]:
                v.append(f"payout {payout_id} ({method}) was transferred by Stripe")
        twice = self._sql("SELECT run_id, provider_id, currency FROM payouts WHERE tenant_id = ANY(:t) "
                          "GROUP BY run_id, provider_id, currency HAVING count(*) > 1")
        v += [f"two payouts for one provider and currency in run {r[0]}" for r in twice]
        unpaid = self._sql("SELECT p.id FROM payments p LEFT JOIN payout_sources s ON s.source_id = p.id "
                           "WHERE p.tenant_id = ANY(:t) AND p.status = 'succeeded' AND s.source_id IS NULL")
        v += [f"succeeded payment {r[0]} is in no payout run" for r in unpaid]
        return v

    def _check_books(self) -> list[str]:
        unbalanced = self._sql("SELECT journal_id, currency, sum(amount) FROM ledger_entries WHERE tenant_id = ANY(:t) "
                               "GROUP BY journal_id, currency HAVING sum(amount) <> 0")
        trial = self._sql("SELECT tenant_id, currency, sum(amount) FROM ledger_entries WHERE tenant_id = ANY(:t) "
                          "GROUP BY tenant_id, currency HAVING sum(amount) <> 0")
        journals = self._sql("SELECT count(*) FROM ledger_journals WHERE tenant_id = ANY(:t)")[0][0]
        twice = self._sql("SELECT kind, object_id FROM ledger_journals WHERE tenant_id = ANY(:t) "
                          "AND kind <> 'invoices_finalized' GROUP BY kind, object_id HAVING count(*) > 1")
        return ([f"journal {r[0]} is off by {r[2]} {r[1]}" for r in unbalanced]
                + [f"the trial balance of {r[0]} is {r[2]} {r[1]}" for r in trial]
                + [f"journal {r[0]} of {r[1]} posted twice" for r in twice]
                + ([] if journals else ["no journal was posted"]))

    def _check_deliveries(self, windows: set) -> tuple[list[str], int]:
        v, resent = [], 0
        events = {r[0] for r in self._sql("SELECT id FROM events WHERE tenant_id = ANY(:t)")}
        paths = {self._hook_path(t["kind"]) for t in self.tenants}
        hooks = Counter(r.headers["webhook-id"] for r in self.receiver.received if r.path in paths)
        if set(hooks) != events:
            v.append(f"webhooks: {len(events - set(hooks))} events never delivered, "
                     f"{len(set(hooks) - events)} unknown delivered")
        extra = sum(n - 1 for n in hooks.values())
        if extra:
            (v.append(f"{extra} webhooks delivered twice") if "webhook" not in windows else None)
            resent += extra if "webhook" in windows else 0
        # An email the service decided not to send (its invoice paid or voided before it went:
        # failed, "not sent: …") is no lost delivery.
        deliberate = "status = 'failed' AND last_error LIKE 'not sent:%'"
        failed = self._sql("SELECT (SELECT count(*) FROM webhook_deliveries WHERE tenant_id = ANY(:t) AND status <> "
                           "'delivered'), (SELECT count(*) FROM email_deliveries WHERE tenant_id = ANY(:t) AND "
                           f"status <> 'sent' AND NOT ({deliberate}))")[0]
        if any(failed):
            v.append(f"deliveries not done: webhooks {failed[0]}, emails {failed[1]}")
        deliveries = {r[0] for r in self._sql(
            f"SELECT id FROM email_deliveries WHERE tenant_id = ANY(:t) AND NOT ({deliberate})")}
        received = Counter(m.message["Message-ID"] for m in self.smtp.handler.received)
        ids = {mid: d for d in deliveries for mid in received if d in (mid or "")}
        if len(ids) != len(deliveries):
            v.append(f"emails: {len(deliveries) - len(ids)} of {len(deliveries)} never received")
        extra = sum(received[mid] - 1 for mid in ids)
        if extra:
            (v.append(f"{extra} emails received twice") if "email" not in windows else None)
            resent += extra if "email" in windows else 0
        if not deliveries:
            v.append("no email was sent")
        duplicated = self._sql(
            "SELECT type, object_id, count(*) FROM events WHERE tenant_id = ANY(:t) AND object_id IS NOT NULL "
            "AND type NOT IN "
            "('invoice.payment_failed', 'payment.failed', 'invoice.updated') GROUP BY tenant_id, type, object_id "
            "HAVING count(*) > 1")
        v += [f"event {r[0]} of {r[1]} recorded {r[2]} times" for r in duplicated]
        return v, resent


class StageTimeout(RuntimeError):
    pass


def _ok(response) -> dict:
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{response.request.method} {response.request.path}: {response.status_code} "
                           f"{response.json}")
    return response.json


def worker_env(database_url: str, folder: Path, secret_key: str, smtp_url: str) -> dict:
    return {**os.environ, "AGGREGATOR_DATABASE_URL": database_url, "AGGREGATOR_VAR_DIR": str(folder),
            "AGGREGATOR_TEST_SMTP_URL": smtp_url,
            "AGGREGATOR_STORAGE_DIR": str(folder / "storage"), "AGGREGATOR_SECRET_KEYS": secret_key,
            "AGGREGATOR_TICK_SECONDS": "0.5", "AGGREGATOR_DRAIN_SECONDS": "0.2", "AGGREGATOR_LEASE_SECONDS": "10",
            "AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE": "1", "AGGREGATOR_STRIPE_TENANT_API_BASE": "1",
            "PYTHONPATH": str(PROJECT_ROOT),
            "AGGREGATOR_CRASH_AT": "", "AGGREGATOR_CRASH_ONCE": ""}


def run_one(app, database_url: str, folder: Path, servers, seed: int, points: list[tuple[str, int]],
            secret_key: str, *, customers: int = 6, bills: int = 60) -> Outcome:
    """One cycle with a kill at each of `points` (at its hit), then the invariants."""
    localstripe, peer, smtp, receiver = servers
    started = time.monotonic()
    markers = folder / "crashed"
    markers.mkdir(parents=True, exist_ok=True)
    outcome = Outcome(seed, points)
    cycle = Cycle(app, database_url, folder, localstripe, peer, smtp, receiver, customers=customers, bills=bills)
    env = worker_env(database_url, folder, secret_key, smtp.url)
    processes = Processes(folder, env, {"AGGREGATOR_CRASH_AT": ",".join(f"{p}@{n}" for p, n in points),
                                        "AGGREGATOR_CRASH_ONCE": str(markers)})
    try:
        plan = cycle.setup()
        outcome.violations += cycle.run(processes, plan)
    except StageTimeout as exc:
        outcome.violations.append(str(exc))
    finally:
        processes.stop()
    outcome.killed = sorted(m.name for m in markers.iterdir())
    (folder / "timings.txt").write_text("\n".join(cycle.timings) + "\n")
    violations, outcome.resent = cycle.check(outcome.killed)
    outcome.violations += violations
    if outcome.violations:
        (folder / "logs.txt").write_text(processes.log_tail())
    outcome.seconds = time.monotonic() - started
    return outcome
