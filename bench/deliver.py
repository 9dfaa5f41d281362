#!/usr/bin/env python
"""Webhook delivery benchmark: N events fanned out to one endpoint and delivered by the
`webhooks.deliver` queue to a local receiver, on PostgreSQL.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/deliver.py             # 10,000 events
    .venv/bin/python bench/deliver.py --quick     # 150 events, a few seconds: checks the script works

What it does:
  1. drops and creates the database (default postgresql://postgres@127.0.0.1:5432/
     aggregator_bench_deliver, ..._quick with --quick), runs `flask --app wsgi db upgrade`;
  2. starts the receiver in a separate process: a minimal asyncio HTTP/1.1 server (keep-alive,
     answers 200 at once, counts requests and distinct webhook-ids), on 127.0.0.1;
  3. the receiver's ceiling: a plain client loop (urllib3, keep-alive, the same number of
     threads as the sender, the same body size) posting --ceiling-requests requests to it;
  4. creates a tenant and a live-mode endpoint (AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1), records
     --events `period.closed` events with events.service.record and fans them out (the outbox
     dispatcher: timed apart);
  5. times draining the `webhooks.deliver` queue as a worker does (claim a batch with a lease,
     sign, POST concurrently, record the attempts), until every delivery is delivered;
  6. verifies: each event received exactly once, every delivery `delivered` with one attempt.

Target: >= 1,000 deliveries/s (with the receiver's ceiling next to it). Exit status 1 when
verification fails (and, with --check-targets, when the target is missed).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_deliver"
TARGET_PER_S = 1_000


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the receiver (its own process) ----------------------------------------------------------

def serve(port_file: str) -> None:
    """A keep-alive HTTP/1.1 server answering 200 to every POST; GET /stats -> counts (JSON)."""
    received, ids = 0, set()

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buffer = transport, b""

        def data_received(self, data):
            nonlocal received
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                head = self.buffer[:head_end].decode("latin-1")
                length = 0
                webhook_id = None
                for line in head.split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "webhook-id":
                        webhook_id = value.strip()
                end = head_end + 4 + length
                if len(self.buffer) < end:
                    return
                self.buffer = self.buffer[end:]
                if head.startswith("GET /stats"):
                    body = json.dumps({"received": received, "distinct": len(ids)}).encode()
                else:
                    received += 1
                    if webhook_id:
                        ids.add(webhook_id)
                    body = b"ok"
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    async def main():
        server = await asyncio.get_running_loop().create_server(Receiver, "127.0.0.1", 0, backlog=1024)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


def start_receiver(tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / "receiver.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    for _ in range(200):
        if port_file.exists() and port_file.read_text():
            return process, int(port_file.read_text())
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("the receiver did not start")


def receiver_stats(port: int) -> dict:
    import urllib3

    return json.loads(urllib3.request("GET", f"http://127.0.0.1:{port}/stats").data)


def ceiling(port: int, requests: int, threads: int, body: bytes) -> float:
    """(requests sent, requests/s) of a plain keep-alive client loop (no database, no signing) to the receiver."""
    import urllib3

    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=threads, retries=False)
    per_thread = requests // threads

    def loop(_):
        for _ in range(per_thread):
            pool.request("POST", "/plain", body=body, headers={"Content-Type": "application/json"})

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(loop, range(threads)))
    return per_thread * threads, per_thread * threads / (time.perf_counter() - started)


# --- the run ---------------------------------------------------------------------------------

def urls(database_url: str) -> tuple[str, str, str]:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    app_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    return app_url, admin, url.database


def recreate_database(database_url: str) -> str:
    import psycopg
    from psycopg import sql

    app_url, admin, name = urls(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, FLASK_DEBUG="0")
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask db upgrade failed:\n{done.stdout}\n{done.stderr}")
    return app_url


def run(args) -> dict:
    import sqlalchemy as sa

    app_url = recreate_database(args.database_url)
    os.environ.update(AGGREGATOR_DATABASE_URL=app_url, AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE="1",
                      AGGREGATOR_VAR_DIR=str(args.tmp))
    from aggregator import create_app, due
    from aggregator.accounts import service as accounts
    from aggregator.auth import Principal
    from aggregator.db import db
    from aggregator.events.dispatch import DISPATCH_QUEUE
    from aggregator.events.service import NewEvent, record
    from aggregator.webhooks import service as webhooks
    from aggregator.webhooks.delivery import DELIVERY_QUEUE
    from aggregator.webhooks.models import WebhookAttempt, WebhookDelivery

    receiver, port = start_receiver(args.tmp)
    try:
        app = create_app()
        with app.app_context():
            adapters = app.extensions["aggregator.adapters"]
            if args.workers:
                from aggregator.webhooks.sender import WebhookSender

                adapters = adapters.replacing(webhooks=WebhookSender(True, workers=args.workers))
            now = adapters.clocks.base.now()
            tenant = accounts.create_tenant({"name": "Bench", "timezone": "UTC", "default_currency": "USD"}, now)
            principal = Principal(tenant.tenant.id, True, "admin", None, "key_bench")
            webhooks.create_endpoint(principal, {"url": f"http://127.0.0.1:{port}/hooks", "enabled_events": ["*"]},
                                     adapters, now)
            payload = {"object": {"id": "per_bench", "object": "period", "start": "2026-10-25",
                                  "totals": [{"currency": "USD", "invoices": 1234, "total": "98765.43"}]}}
            ids = record(tenant.tenant.id, True, now, [NewEvent("period.closed", f"per_{n}", payload)
                                                      for n in range(args.events)])
            db.session.commit()
            body_size = len(json.dumps(payload)) + 250
            log(f"receiver's ceiling: {args.ceiling_requests} plain requests on {adapters.webhooks.workers} threads")
            plain_sent, plain = ceiling(port, args.ceiling_requests, adapters.webhooks.workers, b"x" * body_size)
            lane = due.Lane(tenant.tenant.id, True)
            started = time.perf_counter()
            due.drain(DISPATCH_QUEUE, adapters, lane=lane)
            fan_out_s = time.perf_counter() - started
            log(f"fanned out {args.events} events in {fan_out_s:.2f} s; delivering")
            queue = due.Queue(DELIVERY_QUEUE.name, DELIVERY_QUEUE.run_batch, batch=args.batch)
            started = time.perf_counter()
            worked = due.drain(queue, adapters, lane=lane)
            deliver_s = time.perf_counter() - started
            statuses = dict(db.session.execute(sa.select(WebhookDelivery.status, sa.func.count())
                                               .group_by(WebhookDelivery.status)).all())
            attempts = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookAttempt))
        stats = receiver_stats(port)
    finally:
        receiver.kill()
    problems = []
    if stats["received"] - plain_sent != len(ids) or stats["distinct"] != len(ids):
        problems.append(f"receiver got {stats['received'] - plain_sent} deliveries of "
                        f"{stats['distinct']} events, expected {len(ids)} once each")
    if statuses != {"delivered": len(ids)} or attempts != len(ids) or worked.done != len(ids):
        problems.append(f"deliveries {statuses}, attempts {attempts}, worked {worked}")
    return {"events": args.events, "fan_out_s": round(fan_out_s, 3), "deliver_s": round(deliver_s, 3),
            "deliveries_per_s": round(len(ids) / deliver_s), "receiver_ceiling_per_s": round(plain),
            "sender_threads": adapters.webhooks.workers, "batch": args.batch, "cores": os.cpu_count(),
            "problems": problems}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--ceiling-requests", type=int, default=10_000, help="plain requests measuring the receiver")
    p.add_argument("--batch", type=int, default=512, help="deliveries claimed per batch")
    p.add_argument("--workers", type=int, default=0, help="sender threads (0: the sender's default)")
    p.add_argument("--database-url", default=DEFAULT_URL)
    p.add_argument("--quick", action="store_true", help="150 events: checks the script still works")
    p.add_argument("--check-targets", action="store_true")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return 0
    if args.quick:
        args.events, args.ceiling_requests = min(args.events, 150), min(args.ceiling_requests, 320)
        if args.database_url == DEFAULT_URL:
            args.database_url += "_quick"
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        args.tmp = Path(tmp)
        result = run(args)
    print(f"\nWebhook deliveries on {result['cores']} cores ({result['sender_threads']} sender threads, "
          f"batches of {result['batch']}):")
    print(f"  {'events':<28}{result['events']:>10,}")
    print(f"  {'fan-out (outbox dispatch)':<28}{result['fan_out_s']:>10.2f} s")
    print(f"  {'delivery':<28}{result['deliver_s']:>10.2f} s")
    print(f"  {'deliveries/s':<28}{result['deliveries_per_s']:>10,}   target >= {TARGET_PER_S:,}")
    print(f"  {'receiver ceiling (plain)':<28}{result['receiver_ceiling_per_s']:>10,}   requests/s, same receiver")
    for problem in result["problems"]:
        print(f"FAILED: {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    missed = result["deliveries_per_s"] < TARGET_PER_S
    return 1 if result["problems"] or (args.check_targets and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
