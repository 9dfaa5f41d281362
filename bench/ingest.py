#!/usr/bin/env python
"""Bill intake benchmark: POST /v1/bills and POST /v1/bills/batch under gunicorn + PostgreSQL.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/ingest.py            # full run, a few minutes
    .venv/bin/python bench/ingest.py --quick    # tiny sizes, < 30 s (keeps the script working)
    .venv/bin/python bench/ingest.py --json /tmp/ingest.json
    .venv/bin/python bench/ingest.py --ref HEAD  # a committed revision, when the tree is mid-edit

What it does:
  1. drops and creates a dedicated database (default postgresql://postgres@127.0.0.1:5432/
     aggregator_bench; aggregator_bench_quick with --quick), runs `flask --app wsgi db upgrade`;
  2. creates a tenant (`flask --app wsgi tenants create --json`), then over HTTP one provider and
     --customers customers;
  3. serves the app with gunicorn (-w --workers, --worker-class gthread --threads by default, as
     bin/start does; --worker-class sync to compare);
  4. drives it from separate client processes (one persistent keep-alive connection per
     concurrent client) for --seconds per scenario after a --warmup:
       single   POST /v1/bills at concurrency 1 and --concurrency (default 16)
       batch    POST /v1/bills/batch with --batch-size bills at concurrency 1 and 2;
  5. measures a raw psycopg baseline on the same `bills` table: executemany in batches of
     --batch-size with a commit per batch (and one row per commit, for the single case), of
     copies of the rows the service stored (new id, key, fingerprint);
  6. prints a table (bills/s, p50/p99 ms, errors, CPU split, target, ratio to the baseline)
     and, with --json PATH, writes the figures to PATH.

Exit status: 0 when every request succeeded and the stored bill count matches, 1 otherwise
(targets are reported, not enforced, unless --check-targets).
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the virtualenv's bin/ (sys.executable is not resolved)
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench"
TARGETS = {"single": 1500.0, "batch": 20000.0}  # bills/s
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- small helpers --------------------------------------------------------------------------

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def urls(database_url: str) -> tuple[str, str, str, str]:
    """(SQLAlchemy URL for the app, psycopg conninfo, admin conninfo, database name)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if not url.drivername.startswith("postgresql"):
        raise SystemExit(f"--database-url must be a PostgreSQL URL, not {database_url!r}")
    if not url.database:
        raise SystemExit("--database-url must name a database")
    app_url = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    plain = url.set(drivername="postgresql")
    return (app_url, plain.render_as_string(hide_password=False),
            plain.set(database="postgres").render_as_string(hide_password=False), url.database)


# --- CPU accounting from /proc --------------------------------------------------------------

def _proc_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _proc_info(pid: int) -> tuple[str, int] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    ppid = int(data[data.rindex(")") + 2:].split()[1])
    return comm, ppid


def _machine_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    return sum(parts[:8]), idle


class CpuSampler:
    """CPU seconds used by the gunicorn workers, PostgreSQL and the client processes."""

    def __init__(self, gunicorn_pid: int, client_pids: list[int], dbname: str):
        self.gunicorn_pid = gunicorn_pid
        self.client_pids = client_pids
        self.dbname = dbname

    def _ours(self, pid: int) -> bool:
        """A PostgreSQL process of ours: a backend connected to the bench database, or a shared
        auxiliary process (WAL writer, checkpointer, ...). Other databases' backends are not."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            return False
        if "(" in title or "[local]" in title:  # "postgres: 15/main: user db host(port) STATE"
            return f" {self.dbname} " in title
        return True

    def _groups(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {"server": [], "postgres": [], "client": list(self.client_pids)}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            info = _proc_info(int(entry))
            if info is None:
                continue
            comm, ppid = info
            if int(entry) == self.gunicorn_pid or ppid == self.gunicorn_pid:
                groups["server"].append(int(entry))
            elif (comm == "postgres" or comm.startswith("postgres:")) and self._ours(int(entry)):
                groups["postgres"].append(int(entry))
        return groups

    def sample(self) -> dict:
        snap = {"t": time.monotonic(), "machine": _machine_ticks(), "procs": {}}
        for group, pids in self._groups().items():
            for pid in pids:
                ticks = _proc_ticks(pid)
                if ticks is not None:
                    snap["procs"][pid] = (group, ticks)
        return snap

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        seconds = b["t"] - a["t"]
        used = {"server": 0, "postgres": 0, "client": 0}
        for pid, (group, ticks) in b["procs"].items():
            before = a["procs"].get(pid, (group, ticks))[1]  # started mid-window: not counted
            used[group] += ticks - before
        total = b["machine"][0] - a["machine"][0]
        idle = b["machine"][1] - a["machine"][1]
        out = {k: round(v / CLK_TCK / seconds, 2) for k, v in used.items()}  # in cores
        out["machine_busy_pct"] = round(100 * (total - idle) / total, 1) if total else None
        busy_cores = (total - idle) / total * (os.cpu_count() or 1) if total else 0.0
        # anything else running on the machine (other people's jobs) competes with the bench
        out["other"] = round(max(0.0, busy_cores - out["server"] - out["postgres"] - out["client"]), 2)
        return out


# --- the load-generating client (runs in separate processes) --------------------------------

def _bill(customer: str, key: str | None = None) -> dict:
    bill = {"customer": customer, "amount": "19.99", "currency": "USD", "revenue_share": True,
            "description": "Pro plan"}
    if key is not None:
        bill["idempotency_key"] = key
    return bill


class LeanHTTP:
    """A minimal HTTP/1.1 keep-alive client for the load: requests are sent as prepared bytes and
    responses read by Content-Length. The load generator shares the 2 cores with the server, and
    http.client (headers built and parsed through the email package) cost it about 0.3 ms of
    CPU per request."""

    def __init__(self, host: str, port: int, timeout: float):
        self.address, self.timeout = (host, port), timeout
        self.sock: socket.socket | None = None
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, b""

    def request(self, data: bytes) -> tuple[int, bytes]:
        """Send one request (head and body); -> (status, body). Retries once on a kept-alive
        connection that the server had closed before answering."""
        fresh = self.sock is None
        if fresh:
            self.sock = socket.create_connection(self.address, timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.sendall(data)
            return self._response()
        except (ConnectionError, EOFError):
            self.close()
            if fresh:
                raise
            return self.request(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(262144)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk

    def _response(self) -> tuple[int, bytes]:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        status, length, close = int(lines[0].split(" ", 2)[1]), None, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = value.strip().lower() == "close"
        if length is None:
            raise ValueError(f"response without Content-Length: {lines!r}")
        self.buffer = self.buffer[end + 4:]
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if close:
            self.close()
        return status, body


def _request_bytes(path: str, headers: dict[str, str], body: bytes) -> bytes:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\n{head}Content-Length: {len(body)}\r\n\r\n"
            .encode("latin-1") + body)


def _client_process(spec: dict, index: int, start_event, start_at, queue) -> None:
    """`spec["threads"]` client threads, each with its own persistent HTTP connection, send
    requests until start_at + warmup + seconds. Reports per-process figures to `queue`."""
    warmup, seconds, kind = spec["warmup"], spec["seconds"], spec["kind"]
    n_customers, batch_size = spec["customers"], spec["batch_size"]
    auth = f"Bearer {spec['api_key']}"
    prefix = f"{spec['run']}-{spec['name']}-{index}"
    lock = threading.Lock()
    stats = {"latencies": [], "ok_bills": 0, "requests": 0, "measured_requests": 0,
             "request_errors": 0, "item_errors": 0, "created_total": 0, "connects": 0,
             "error_samples": []}
    window = [0.0, 0.0]
    # a single bill's body depends only on its customer: encoded once per customer
    single_bodies = [json.dumps(_bill(f"c{i + 1:04d}")).encode() for i in range(n_customers)]

    def note_error(sample: str) -> None:
        with lock:
            if len(stats["error_samples"]) < 5:
                stats["error_samples"].append(sample[:2000])

    def worker(thread_no: int) -> None:
        conn = LeanHTTP(spec["host"], spec["port"], timeout=120)
        latencies, n, ok_bills, measured, req_err, item_err, created, connects = [], 0, 0, 0, 0, 0, 0, 0
        deadline = window[1]
        while True:
            if time.monotonic() >= deadline:
                break
            n += 1
            if kind == "single":
                data = _request_bytes("/v1/bills", {
                    "Authorization": auth, "Content-Type": "application/json",
                    "Idempotency-Key": f"{prefix}-{thread_no}-{n}"},
                    single_bodies[(n * 7 + thread_no * 131 + index * 17) % n_customers])
            else:
                data = _request_bytes("/v1/bills/batch", {
                    "Authorization": auth, "Content-Type": "application/json"}, json.dumps({"bills": [
                        _bill(f"c{(n * 7 + i) % n_customers + 1:04d}", f"{prefix}-{thread_no}-{n}-{i}")
                        for i in range(batch_size)]}).encode())
            if conn.sock is None:
                connects += 1
            t0 = time.monotonic()
            try:
                status, data = conn.request(data)
            except Exception as exc:  # connection reset, timeout, ...
                conn.close()
                req_err += 1
                note_error(f"{type(exc).__name__}: {exc}")
                continue
            t1 = time.monotonic()
            good = 0
            if kind == "single":
                if status == 201:
                    good = 1
                else:
                    req_err += 1
                    note_error(f"HTTP {status}: {data[:1500]!r}")
            elif status != 200:
                req_err += 1
                note_error(f"HTTP {status}: {data[:1500]!r}")
            else:
                try:
                    items = json.loads(data)["data"]
                except Exception as exc:
                    req_err += 1
                    note_error(f"bad JSON ({exc}): {data[:500]!r}")
                    items = []
                for item in items:
                    if item.get("status") == 201:
                        good += 1
                    else:
                        item_err += 1
                        note_error(f"batch item: {json.dumps(item)[:1000]}")
                if items and len(items) != batch_size:
                    item_err += abs(batch_size - len(items))
                    note_error(f"batch answered {len(items)} items for {batch_size}")
            created += good
            if window[0] <= t1 <= window[1]:
                latencies.append((t1 - t0) * 1000.0)
                ok_bills += good
                measured += 1
        conn.close()
        with lock:
            stats["latencies"].extend(latencies)
            stats["ok_bills"] += ok_bills
            stats["requests"] += n
            stats["measured_requests"] += measured
            stats["request_errors"] += req_err
            stats["item_errors"] += item_err
            stats["created_total"] += created
            stats["connects"] += connects

    queue.put(("ready", index, os.getpid()))
    start_event.wait()
    window[0] = start_at.value + warmup
    window[1] = window[0] + seconds
    time.sleep(max(0.0, start_at.value - time.monotonic()))
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(spec["threads"])]
    for t in threads:
        t.start()
    time.sleep(max(0.0, window[0] - time.monotonic()))
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    w0 = time.monotonic()
    time.sleep(max(0.0, window[1] - time.monotonic()))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    w1 = time.monotonic()
    for t in threads:
        t.join()
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    stats["cpu_fraction"] = cpu / max(w1 - w0, 1e-9)
    queue.put(("result", index, stats))


def run_scenario(name: str, kind: str, concurrency: int, procs: int, *, server: "Server",
                 api_key: str, args, run_id: str, dbname: str) -> dict:
    procs = max(1, min(procs, concurrency))
    per_proc = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    ctx = mp.get_context("spawn")
    start_event, start_at, queue = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    base = {"name": name, "kind": kind, "host": "127.0.0.1", "port": server.port,
            "api_key": api_key, "customers": args.customers, "batch_size": args.batch_size,
            "warmup": args.warmup, "seconds": args.seconds, "run": run_id}
    workers = [ctx.Process(target=_client_process, args=(dict(base, threads=n), i, start_event,
                                                          start_at, queue), daemon=True)
               for i, n in enumerate(per_proc)]
    for w in workers:
        w.start()
    pids = []
    try:
        for _ in workers:
            kind_, _index, pid = queue.get(timeout=60)
            assert kind_ == "ready"
            pids.append(pid)
        sampler = CpuSampler(server.proc.pid, pids, dbname)
        start_at.value = time.monotonic() + 0.3
        start_event.set()
        time.sleep(max(0.0, start_at.value + args.warmup - time.monotonic()))
        s0 = sampler.sample()
        time.sleep(max(0.0, start_at.value + args.warmup + args.seconds - time.monotonic()))
        s1 = sampler.sample()
        results = []
        for _ in workers:
            kind_, _index, stats = queue.get(timeout=args.seconds + args.warmup + 300)
            results.append(stats)
    finally:
        for w in workers:
            w.join(timeout=5)
            if w.is_alive():
                w.kill()
    latencies = sorted(x for r in results for x in r["latencies"])
    bills = sum(r["ok_bills"] for r in results)
    measured = sum(r["measured_requests"] for r in results)
    cpu = CpuSampler.delta(s0, s1)
    client_fracs = [round(r["cpu_fraction"], 2) for r in results]
    return {
        "scenario": name, "endpoint": "/v1/bills" if kind == "single" else "/v1/bills/batch",
        "kind": kind, "concurrency": concurrency, "client_processes": procs,
        "bills_per_request": 1 if kind == "single" else args.batch_size,
        "seconds": args.seconds, "warmup_seconds": args.warmup,
        "bills_per_s": round(bills / args.seconds, 1),
        "requests_per_s": round(measured / args.seconds, 2),
        "p50_ms": _r(percentile(latencies, 0.50)), "p99_ms": _r(percentile(latencies, 0.99)),
        "max_ms": _r(latencies[-1] if latencies else None),
        "measured_requests": measured,
        "requests_sent": sum(r["requests"] for r in results),
        "connections_opened": sum(r["connects"] for r in results),
        "errors": sum(r["request_errors"] + r["item_errors"] for r in results),
        "request_errors": sum(r["request_errors"] for r in results),
        "item_errors": sum(r["item_errors"] for r in results),
        "created_total": sum(r["created_total"] for r in results),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "cpu_cores": cpu,
        "server_cpu_ms_per_request": _r(1000 * cpu["server"] / (measured / args.seconds)) if measured else None,
        "postgres_cpu_ms_per_request": _r(1000 * cpu["postgres"] / (measured / args.seconds)) if measured else None,
        # what this much CPU per bill would allow if the bench had the machine to itself
        "cpu_bound_ceiling_bills_per_s": (
            round((os.cpu_count() or 1) * bills / args.seconds / used, 0)
            if (used := cpu["server"] + cpu["postgres"] + cpu["client"]) > 0 and bills else None),
        "client_cpu_fraction_per_process": client_fracs,
        "client_saturated": any(f > 0.85 for f in client_fracs),
    }


def framework_floor(args, workdir: Path, run_id: str, dbname: str) -> dict:
    """The single-bill load at --concurrency against bench/floor_app.py (Flask, no database)
    under the same gunicorn configuration: the framework's own cost per request."""
    log(f"baseline: framework floor (bench/floor_app.py) at c={args.concurrency}")
    server = Server(ROOT / "bench", dict(os.environ), args.workers, args.worker_class, args.threads,
                    workdir / "gunicorn-floor.log", app="floor_app:app")
    try:
        server.wait_ready(args.workers)
        return run_scenario(f"floor c={args.concurrency}", "single", args.concurrency, args.client_procs,
                            server=server, api_key="none", args=args, run_id=f"{run_id}-floor", dbname=dbname)
    finally:
        server.stop()


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


# --- database, CLI, server ------------------------------------------------------------------

def recreate_database(admin_conninfo: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def flask_cli(src: Path, env: dict, *cli_args: str) -> str:
    cmd = [str(BIN / "flask"), "--app", "wsgi", *cli_args]
    done = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Server:
    """gunicorn serving wsgi:app; stopped by stop() (SIGTERM, then SIGKILL)."""

    def __init__(self, src: Path, env: dict, workers: int, worker_class: str, threads: int,
                 log_path: Path, app: str = "wsgi:app", access_log: bool = False):
        self.port = free_port()
        self.log_path = log_path
        cmd = [str(BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
               "--worker-class", worker_class, "--timeout", "120"]
        if worker_class == "gthread":
            cmd += ["--threads", str(threads)]
        if access_log:  # as bin/start serves: one line per request, here into the server's log
            cmd += ["--access-logfile", "-", "--logger-class", "aggregator.serving.AccessLogger"]
        cmd.append(app)
        self.cmd = cmd
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=src, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, workers: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/v1/openapi.json")
                status = conn.getresponse().status
                conn.close()
                booted = self.log_path.read_text(errors="replace").count("Booting worker")
                if status == 200 and booted >= workers:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def problems(self) -> dict:
        """Tracebacks, worker timeouts and crashes found in the gunicorn log."""
        text = self.log_path.read_text(errors="replace")
        tracebacks = text.count("Traceback (most recent call last)")
        first = None
        if tracebacks:
            start = text.index("Traceback (most recent call last)")
            first = text[max(0, text.rfind("\n", 0, max(0, start - 300))):start + 4000]
        return {"tracebacks": tracebacks, "worker_timeouts": text.count("WORKER TIMEOUT"),
                "worker_exits": len(re.findall(r"Worker \(pid:\d+\) (was sent|exited)", text)),
                "first_traceback": first, "log": str(self.log_path)}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: master + workers
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()


class Api:
    """Tiny JSON client for the setup calls (one connection per thread)."""

    def __init__(self, port: int, key: str):
        self.port, self.key = port, key
        self.local = threading.local()

    def post(self, path: str, payload: dict) -> tuple[int, dict]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, json.dumps(payload),
                     {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")


def setup_accounts(port: int, admin_key: str, customers: int) -> str:
    api = Api(port, admin_key)
    status, provider = api.post("/v1/providers", {"name": "Bench Apps", "revenue_share_rate": "0.30"})
    if status != 201:
        raise RuntimeError(f"POST /v1/providers -> {status}: {provider}")

    def create(i: int) -> None:
        status, body = api.post("/v1/customers", {"external_id": f"c{i:04d}", "name": f"Customer {i}",
                                                  "email": f"c{i:04d}@example.com"})
        if status != 201:
            raise RuntimeError(f"POST /v1/customers c{i:04d} -> {status}: {body}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(1, customers + 1)))
    return provider["api_key"]


# --- the raw psycopg baseline ----------------------------------------------------------------

def _new_bill_id():
    """Identifiers as the service makes them (aggregator.db.new_id), without importing the app
    when the working tree is mid-edit."""
    try:
        from aggregator.db import new_id

        return lambda: new_id("bill")
    except Exception:  # pragma: no cover - fallback
        from ulid import ULID

        return lambda: f"bill_{str(ULID()).lower()}"


def baseline(conninfo: str, rows: int, batch_size: int, single_seconds: float, run_id: str) -> dict:
    """Raw psycopg inserts of the same rows into the same `bills` table. The rows are copies of
    bills the service stored during this run (so every column the current schema has is filled
    as the service fills it) with a new id, idempotency key, fingerprint and received_at."""
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Json, Jsonb

    new_id = _new_bill_id()
    with psycopg.connect(conninfo) as conn:
        types = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'bills' AND table_schema = current_schema() "
            "ORDER BY ordinal_position").fetchall())
        columns = list(types)
        templates = conn.execute(
            sql.SQL("SELECT {} FROM bills WHERE idempotency_key LIKE %s ORDER BY id DESC LIMIT 1000")
            .format(sql.SQL(", ").join(map(sql.Identifier, columns))), (f"{run_id}-%",)).fetchall()
        if not templates:
            raise RuntimeError("baseline: the service stored no bills to copy")
        conn.commit()
        insert = sql.SQL("INSERT INTO bills ({}) VALUES ({})").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns))).as_string(conn)
        wrap = {c: (Jsonb if t == "jsonb" else Json) for c, t in types.items() if t in ("json", "jsonb")}
        fresh = {"id": lambda key: new_id(), "idempotency_key": lambda key: key,
                 "fingerprint": lambda key: os.urandom(32),
                 "received_at": lambda key: datetime.now(timezone.utc)}

        def row(key: str, i: int) -> tuple:
            template = templates[i % len(templates)]
            out = []
            for column, value in zip(columns, template):
                if column in fresh:
                    value = fresh[column](key)
                elif column in wrap and value is not None:
                    value = wrap[column](value)
                out.append(value)
            return tuple(out)

        # executemany, one commit per batch; rows generated beforehand (DB cost only)
        batches = [[row(f"{run_id}-base-{b}-{i}", b * batch_size + i) for i in range(batch_size)]
                   for b in range(max(1, rows // batch_size))]
        latencies = []
        with conn.cursor() as cur:
            t0 = time.perf_counter()
            for batch in batches:
                b0 = time.perf_counter()
                cur.executemany(insert, batch)
                conn.commit()
                latencies.append((time.perf_counter() - b0) * 1000)
            elapsed = time.perf_counter() - t0
        inserted = sum(len(b) for b in batches)
        latencies.sort()
        result = {"executemany": {
            "rows": inserted, "batch_size": batch_size, "seconds": round(elapsed, 3),
            "rows_per_s": round(inserted / elapsed, 1),
            "p50_ms": _r(percentile(latencies, 0.5)), "p99_ms": _r(percentile(latencies, 0.99))}}

        # one row per transaction, one connection: the floor under a single-bill request
        single_lat, n = [], 0
        with conn.cursor() as cur:
            end = time.perf_counter() + single_seconds
            t0 = time.perf_counter()
            while time.perf_counter() < end:
                r = row(f"{run_id}-base1-{n}", n)
                b0 = time.perf_counter()
                cur.execute(insert, r)
                conn.commit()
                single_lat.append((time.perf_counter() - b0) * 1000)
                n += 1
            elapsed = time.perf_counter() - t0
        single_lat.sort()
        result["one_row_per_commit"] = {
            "rows": n, "seconds": round(elapsed, 3), "rows_per_s": round(n / elapsed, 1),
            "p50_ms": _r(percentile(single_lat, 0.5)), "p99_ms": _r(percentile(single_lat, 0.99))}
    return result


def postgres_facts(conninfo: str) -> dict:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        facts = {"version": conn.execute("SHOW server_version").fetchone()[0]}
        for name in ("synchronous_commit", "fsync", "shared_buffers", "max_connections"):
            facts[name] = conn.execute(f"SHOW {name}").fetchone()[0]
    return facts


def count_bills(conninfo: str, provider_like: str) -> int:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM bills WHERE idempotency_key LIKE %s",
                            (provider_like,)).fetchone()[0]


# --- report ----------------------------------------------------------------------------------

def _fmt(value, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _per_request(cpu: dict, requests_per_s: float) -> str:
    if not requests_per_s:
        return "-"
    return f"{1000 * cpu['server'] / requests_per_s:.1f}+{1000 * cpu['postgres'] / requests_per_s:.1f}"


def report(result: dict) -> str:
    base = result["baseline"]["executemany"]["rows_per_s"]
    one = result["baseline"]["one_row_per_commit"]
    lines = []
    header = (f"{'scenario':<24}{'bills/s':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
              f"{'target':>9}{'':>6}{'x base':>8}{'cpu ms/req':>13}{'ceiling':>9}"
              f"   cpu cores: srv/pg/client/other (busy%)")
    lines += [header, "-" * len(header)]
    for s in result["scenarios"]:
        target = TARGETS[s["kind"]] if s["kind"] == "batch" or s["concurrency"] > 1 else None
        verdict = ("" if target is None or result["config"]["quick"]
                   else "PASS" if s["bills_per_s"] >= target else "FAIL")
        cpu = s["cpu_cores"]
        sat = "  CLIENT SATURATED" if s["client_saturated"] else ""
        lines.append(
            f"{s['scenario']:<24}{_fmt(s['bills_per_s']):>10}{_fmt(s['requests_per_s'], ',.1f'):>9}"
            f"{_fmt(s['p50_ms'], '.1f'):>9}{_fmt(s['p99_ms'], '.1f'):>9}{s['errors']:>8}"
            f"{_fmt(target):>9}{verdict:>6}{s['bills_per_s'] / base:>8.3f}"
            f"{_per_request(cpu, s['requests_per_s']):>13}{_fmt(s['cpu_bound_ceiling_bills_per_s']):>9}"
            f"   {cpu['server']:.2f}/{cpu['postgres']:.2f}/{cpu['client']:.2f}/{cpu['other']:.2f}"
            f" ({_fmt(cpu['machine_busy_pct'], '.0f')}%){sat}")
    b = result["baseline"]["executemany"]
    lines.append(f"{'baseline executemany':<24}{_fmt(b['rows_per_s']):>10}{'':>9}"
                 f"{_fmt(b['p50_ms'], '.1f'):>9}{_fmt(b['p99_ms'], '.1f'):>9}{0:>8}{'':>9}{'':>6}"
                 f"{1:>8.3f}{'':>22}   ({b['rows']:,} rows, {b['batch_size']}/batch, commit per batch)")
    lines.append(f"{'baseline 1 row/commit':<24}{_fmt(one['rows_per_s']):>10}{'':>9}"
                 f"{_fmt(one['p50_ms'], '.2f'):>9}{_fmt(one['p99_ms'], '.2f'):>9}{0:>8}{'':>9}{'':>6}"
                 f"{one['rows_per_s'] / base:>8.3f}{'':>22}   (1 connection)")
    floor = result["baseline"].get("framework_floor")
    if floor is not None:
        cpu = floor["cpu_cores"]
        lines.append(f"{'baseline framework floor':<24}{_fmt(floor['requests_per_s']):>10}{'':>9}"
                     f"{_fmt(floor['p50_ms'], '.1f'):>9}{_fmt(floor['p99_ms'], '.1f'):>9}{floor['errors']:>8}"
                     f"{'':>9}{'':>6}{'':>8}{_per_request(cpu, floor['requests_per_s']):>13}{'':>9}"
                     f"   {cpu['server']:.2f}/{cpu['postgres']:.2f}/{cpu['client']:.2f}/{cpu['other']:.2f}"
                     f"   (bench/floor_app.py: Flask, no database, c={floor['concurrency']})")
    lines.append("")
    lines.append("targets: single POST /v1/bills at concurrency 16 >= 1,500 bills/s; "
                 "batch >= 20,000 bills/s. 'x base' = bills/s / baseline executemany rows/s.")
    if result["config"]["quick"]:
        lines.append("--quick: tiny sizes and short runs, figures not comparable with the targets.")
    lines.append("cpu ms/req = CPU time per HTTP request in the gunicorn workers + in PostgreSQL; "
                 "ceiling = bills/s that this CPU per bill (srv+pg+client) allows on all cores of an "
                 "otherwise idle machine (an estimate).")
    lines.append("latencies are per HTTP request, measured by the client. cpu cores are averaged "
                 "over the measured window: srv = gunicorn master+workers, pg = PostgreSQL backends")
    lines.append("of the bench database + auxiliary processes, client = the load generator, other = "
                 "the rest of the machine's busy time (e.g. other people's jobs).")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cores = os.cpu_count() or 1
    p.add_argument("--database-url", default=None,
                   help=f"PostgreSQL database to DROP and recreate (default {DEFAULT_URL}, "
                        "or .../aggregator_bench_quick with --quick)")
    p.add_argument("--workers", type=int, default=cores, help="gunicorn workers")
    p.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"],
                   help="gthread keeps connections alive (as bin/start serves); sync closes each")
    p.add_argument("--threads", type=int, default=4, help="threads per worker (gthread only)")
    p.add_argument("--access-log", action="store_true",
                   help="log every request as bin/start does (off by default: the figures are the service's)")
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds per scenario")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each")
    p.add_argument("--concurrency", type=int, default=16, help="clients for the concurrent single case")
    p.add_argument("--client-procs", type=int, default=4,
                   help="client processes for the concurrent single case (threads split among them)")
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--batch-concurrency", type=int, default=2)
    p.add_argument("--baseline-rows", type=int, default=50_000)
    p.add_argument("--baseline-single-seconds", type=float, default=5.0)
    p.add_argument("--ref", default=None, metavar="GIT_REF",
                   help="benchmark this git revision (exported with `git archive` to a temporary "
                        "directory) instead of the working tree, e.g. HEAD while others edit")
    p.add_argument("--only", choices=["single", "batch"], default=None, help="run one family only")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (< 30 s) to check that the benchmark still works")
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON to PATH")
    p.add_argument("--keep-server", type=float, default=0.0, metavar="SECONDS",
                   help=argparse.SUPPRESS)  # profiling aid: idle this long before stopping
    p.add_argument("--check-targets", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    if args.quick:
        args.workers = min(args.workers, 2)
        args.customers, args.seconds, args.warmup = 20, 0.5, 0.2
        args.batch_size, args.baseline_rows, args.baseline_single_seconds = 100, 1000, 0.2
        args.concurrency, args.client_procs = min(args.concurrency, 4), 2
    if args.database_url is None:
        args.database_url = DEFAULT_URL + ("_quick" if args.quick else "")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the finally blocks stop gunicorn and the clients
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    app_url, conninfo, admin_conninfo, dbname = urls(args.database_url)
    run_id = uuid.uuid4().hex[:8]
    env = dict(os.environ, AGGREGATOR_DATABASE_URL=app_url, FLASK_DEBUG="0")
    env.pop("FLASK_APP", None)
    workdir = Path(tempfile.mkdtemp(prefix="aggregator-bench-"))
    src, source = code_under_test(args.ref, workdir)
    log(f"code under test: {source}")

    log(f"recreating database {dbname!r}")
    recreate_database(admin_conninfo, dbname)
    log("flask db upgrade")
    flask_cli(src, env, "db", "upgrade")
    try:
        out = flask_cli(src, env, "tenants", "create", "--name", "Bench", "--json")
    except RuntimeError as exc:  # a tree from before `--json` (it printed JSON by default)
        if "--json" not in str(exc):
            raise
        out = flask_cli(src, env, "tenants", "create", "--name", "Bench")
    tenant = json.loads(next(line for line in reversed(out.splitlines()) if line.startswith("{")))
    admin_key = tenant["admin_keys"]["live"]

    log(f"starting gunicorn: {args.workers} {args.worker_class} workers "
        f"(log {workdir / 'gunicorn.log'})")
    server = Server(src, env, args.workers, args.worker_class, args.threads, workdir / "gunicorn.log",
                    access_log=args.access_log)
    scenarios = []
    try:
        server.wait_ready(args.workers)
        log(f"gunicorn answering on port {server.port}; creating provider and "
            f"{args.customers} customers")
        provider_key = setup_accounts(server.port, admin_key, args.customers)

        plan = []
        if args.only in (None, "single"):
            plan += [("single c=1", "single", 1, 1),
                     (f"single c={args.concurrency}", "single", args.concurrency, args.client_procs)]
        if args.only in (None, "batch"):
            plan += [(f"batch{args.batch_size} c=1", "batch", 1, 1)]
            if args.batch_concurrency > 1:
                plan += [(f"batch{args.batch_size} c={args.batch_concurrency}", "batch",
                          args.batch_concurrency, args.batch_concurrency)]
        for name, kind, conc, procs in plan:
            log(f"scenario {name}: {args.warmup}s warmup + {args.seconds}s")
            s = run_scenario(name, kind, conc, procs, server=server, api_key=provider_key,
                             args=args, run_id=run_id, dbname=dbname)
            log(f"  {s['bills_per_s']:,.0f} bills/s, p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, "
                f"errors {s['errors']}, cpu {s['cpu_cores']}")
            scenarios.append(s)
        if args.keep_server:
            log(f"keeping the server up for {args.keep_server}s (pid {server.proc.pid})")
            time.sleep(args.keep_server)
    finally:
        server.stop()
    problems = server.problems()
    floor = None
    if args.only in (None, "single"):
        floor = framework_floor(args, workdir, run_id, dbname)
    if args.ref is not None:
        shutil.rmtree(src, ignore_errors=True)  # the exported snapshot; the log stays

    stored = count_bills(conninfo, f"{run_id}-%")
    created = sum(s["created_total"] for s in scenarios)
    log(f"baseline: executemany {args.baseline_rows} rows in batches of {args.batch_size}")
    base = baseline(conninfo, args.baseline_rows, args.batch_size, args.baseline_single_seconds, run_id)
    if floor is not None:
        base["framework_floor"] = floor

    result = {
        "benchmark": "ingest",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([sys.executable, *sys.argv]),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "cpu": _cpu_model()},
        "postgres": postgres_facts(conninfo),
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "keep_server")},
        "source": source,
        "server": {"cmd": " ".join(server.cmd), **problems},
        "scenarios": scenarios,
        "baseline": base,
        "targets_bills_per_s": {"single_concurrent": TARGETS["single"], "batch": TARGETS["batch"]},
        "stored_bills": stored, "created_bills_reported": created,
        "elapsed_seconds": round(time.monotonic() - started, 1),
    }
    print()
    print(f"aggregator ingest benchmark — {result['date']} — {os.cpu_count()} cores, "
          f"gunicorn {args.workers} {args.worker_class} workers"
          f"{f' x {args.threads} threads' if args.worker_class == 'gthread' else ''}, "
          f"PostgreSQL {result['postgres']['version']} "
          f"(synchronous_commit={result['postgres']['synchronous_commit']})")
    print(report(result))
    failures = []
    if any(s["errors"] for s in scenarios):
        failures.append(f"{sum(s['errors'] for s in scenarios)} failed requests/items")
    if stored != created:
        failures.append(f"bills stored {stored} != bills acknowledged {created}")
    if problems["tracebacks"] or problems["worker_timeouts"]:
        failures.append(f"server log: {problems['tracebacks']} tracebacks, "
                        f"{problems['worker_timeouts']} worker timeouts ({problems['log']})")
    for s in scenarios:
        for sample in s["error_samples"][:2]:
            print(f"  error sample [{s['scenario']}]: {sample[:600]}")
    if problems["first_traceback"]:
        print("first server traceback:\n" + problems["first_traceback"])
    if any(s["cpu_cores"]["other"] > 0.25 for s in scenarios):
        print("note: other processes used > 0.25 cores during a scenario: the machine was shared "
              "and the figures are understated; rerun on a quiet machine.")
    if any(s["client_saturated"] for s in scenarios):
        print("note: a client process used > 85% of a core: the figure may be client-bound.")
    if args.check_targets:
        for s in scenarios:
            if (s["kind"] == "batch" or s["concurrency"] > 1) and s["bills_per_s"] < TARGETS[s["kind"]]:
                failures.append(f"{s['scenario']} below target")
    print(f"stored bills check: {stored} stored, {created} acknowledged; "
          f"elapsed {result['elapsed_seconds']} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures written to {args.json}")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    return 0


def _git(*git_args: str) -> str:
    return subprocess.run(["git", *git_args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def code_under_test(ref: str | None, workdir: Path) -> tuple[Path, dict]:
    """The directory gunicorn and flask run from (its `aggregator` package and migrations are
    the ones imported, ahead of the editable install) and a description of it."""
    try:
        head = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--", "aggregator", "migrations", "wsgi.py"))
    except (OSError, subprocess.CalledProcessError):
        head, dirty = None, None
    if ref is None:
        return ROOT, {"tree": str(ROOT), "head": head, "uncommitted_changes": dirty}
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    src = workdir / "src"
    src.mkdir()
    archive = subprocess.run(["git", "archive", commit], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
    return src, {"tree": str(src), "ref": ref, "commit": commit, "uncommitted_changes": False}


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


if __name__ == "__main__":
    sys.exit(main())
