"""The worker: runs due work and drains the queues, beside the API, on as many processes and
machines as there are (all against one database).

Every piece of work is claimed in the database (lanes in `due_lanes`, queue items by their own
leases or FOR UPDATE SKIP LOCKED; see aggregator.due), so workers need not know of each other:
adding a process or a machine is starting one more worker pointed at the same database. A
worker killed with kill -9 leaves claims that expire (the lease) and are taken by another.

A worker process runs two jobs on APScheduler 3 (a BackgroundScheduler: the main thread only
waits for a signal):

* the **tick**, every AGGREGATOR_TICK_SECONDS (30): claim the lanes that are due (one
  statement, whatever the number of tenants) and catch each up (due.run_lane), renewing its
  lease while it runs; a lane that fails is recorded (due.fail) and the others go on;
* the **drain**, every AGGREGATOR_DRAIN_SECONDS (1): one batch of each queue of due.queues()
  in turn (the outbox first: it feeds the deliveries), round after round until none has
  anything ready, so a close's PDFs and deliveries start at once, not at the next tick.

Each job runs at most once at a time (max_instances=1; a run still going when the next is due
is skipped, and late runs coalesce into one). SIGTERM or SIGINT: the jobs finish the unit or
batch in hand, lanes claimed but not started are let go, and the process exits 0.

`aggregator worker run --processes N` starts N such processes (each its own engine and pool)
and stops them together; `--once` runs one tick and drains until idle, then exits.
"""
from __future__ import annotations

import logging
import signal
import subprocess  # nosec B404  # the supervisor starts worker processes of this same Python, no shell
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from flask import Flask
from flask.cli import AppGroup

from . import due, metrics
from .plurals import counted

log = logging.getLogger(__name__)

#: Lanes claimed per statement; a tick claims again while it gets a full batch.
LANES_PER_CLAIM = 50


class LeaseLost(RuntimeError):
    """Another worker took the lane (this one's lease ran out): stop before the next unit."""


@dataclass
class TickReport:
    lanes: int = 0
    units: Counter = field(default_factory=Counter)  # kind -> units done
    failed: Counter = field(default_factory=Counter)  # kind -> units failed
    let_go: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        units = ", ".join(f"{kind} {n}" for kind, n in sorted(self.units.items())) or "no units"
        failed = ", ".join(f"{kind} {n}" for kind, n in sorted(self.failed.items()))
        return (f"tick: {counted(self.lanes, 'lane', 'lanes')}, {units}" + (f"; failed: {failed}" if failed else "")
                + (f"; {self.let_go} let go (stopping)" if self.let_go else "") + f" in {self.seconds * 1000:.0f} ms")


@dataclass
class DrainReport:
    worked: dict[str, due.Worked] = field(default_factory=dict)  # queue -> done/failed

    @property
    def taken(self) -> int:
        return sum(w.taken for w in self.worked.values())

    def line(self) -> str:
        return "drain: " + ", ".join(f"{name} {w.done} done" + (f" {w.failed} failed" if w.failed else "")
                                     for name, w in self.worked.items() if w.taken)


class Worker:
    """One worker process's work, driven by the scheduler (run_forever) or once (run_once)."""

    def __init__(self, app: Flask, stopping: threading.Event | None = None):
        self.app = app
        self.adapters = app.extensions["aggregator.adapters"]
        self.settings = app.config["AGGREGATOR_SETTINGS"]
        self.stopping = stopping or threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    # --- the tick ---------------------------------------------------------------------------

    def tick(self) -> TickReport:
        """Claim the due lanes and catch each up, until none is due (or the worker stops)."""
        report, started = TickReport(), time.perf_counter()
        with self.app.app_context():
            while not self.stopping.is_set():
                claims = due.claim_lanes(self.adapters.clocks.base.now(), LANES_PER_CLAIM, due.lease())
                report.lanes += len(claims)
                for claim in claims:
                    if self.stopping.is_set():
                        due.let_go(claim)
                        report.let_go += 1
                    else:
                        self._run_lane(claim, report)
                if len(claims) < LANES_PER_CLAIM:
                    break
        report.seconds = time.perf_counter() - started
        metrics.TICK_DURATION.observe(report.seconds)
        log.info("%s", report.line())
        return report

    def _run_lane(self, claim: due.Claim, report: TickReport) -> None:
        with self._keeping(claim) as lost:
            def before_unit(unit: due.Unit) -> None:
                if lost.is_set():
                    raise LeaseLost(f"the lease on {claim.lane} ran out and another worker took it")

            try:
                caught_up = due.run_lane(claim, self.adapters, self.adapters.clocks.base.now(), on_unit=before_unit)
            except due.DueWorkFailed as exc:  # recorded by run_lane (due.fail); the other lanes go on
                report.failed[exc.unit.kind] += 1
                metrics.DUE_FAILED.labels(exc.unit.kind).inc()
                return
            except Exception as exc:  # noqa: BLE001 - the same: one lane's failure stops only that lane
                log.error("lane %s stopped: %s: %s", claim.lane, type(exc).__name__, exc)
                report.failed["lane"] += 1
                metrics.DUE_FAILED.labels("lane").inc()
                return
        for unit, _ in caught_up.ran:
            report.units[unit.kind] += 1
            metrics.DUE_DONE.labels(unit.kind).inc()
        for unit, _ in caught_up.pending:  # not done yet: retried after the lane's backoff
            report.failed[unit.kind] += 1
            metrics.DUE_FAILED.labels(unit.kind).inc()

    @contextmanager
    def _keeping(self, claim: due.Claim):
        """Renew the claim's lease every third of it while the lane runs (a long catch-up, a
        large close); the event yielded is set if the lease was lost."""
        done, lost = threading.Event(), threading.Event()
        every = due.lease().total_seconds() / 3

        def heartbeat():
            with self.app.app_context():
                while not done.wait(every):
                    if not due.renew(claim, self.adapters.clocks.base.now(), due.lease()):
                        lost.set()
                        return

        thread = threading.Thread(target=heartbeat, name=f"lease {claim.lane}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    # --- the drain --------------------------------------------------------------------------

    def drain(self) -> DrainReport:
        """One batch of each queue in turn, round after round, until none has anything ready
        (or the worker stops). A queue whose batch raised is left until the next drain."""
        report = DrainReport()
        with self.app.app_context():
            queues = due.queues()
            report.worked = {queue.name: due.Worked() for queue in queues}
            while queues and not self.stopping.is_set():
                busy = []
                for queue in queues:
                    if self.stopping.is_set():
                        break
                    batch = self._one_batch(queue)
                    if batch is not None and batch.taken:
                        report.worked[queue.name] += batch
                        busy.append(queue)
                queues = busy
        if report.taken:
            log.info("%s", report.line())
        return report

    def _one_batch(self, queue: due.Queue) -> due.Worked | None:
        from .db import db

        try:
            batch = queue.run_batch(self.adapters, self.adapters.clocks.base.now(), queue.batch, None)
        except Exception as exc:  # noqa: BLE001 - a broken queue must not stop the others
            db.session.rollback()
            log.error("queue %s: %s: %s", queue.name, type(exc).__name__, exc, exc_info=exc)
            return None
        metrics.QUEUE_DONE.labels(queue.name).inc(batch.done)
        metrics.QUEUE_FAILED.labels(queue.name).inc(batch.failed)
        return batch

    # --- running ----------------------------------------------------------------------------

    def run_once(self) -> None:
        """One tick, then drain until nothing is ready: for cron and tests."""
        self.tick()
        self.drain()

    def run_forever(self) -> None:
        """Tick and drain on their schedules until stop() (a signal)."""
        from apscheduler.schedulers.background import BackgroundScheduler

        scheduler = BackgroundScheduler(
            executors={"default": {"type": "threadpool", "max_workers": 2}},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone="UTC")
        scheduler.add_job(self.tick, "interval", seconds=self.settings.tick_seconds, id="tick",
                          next_run_time=_utcnow())
        scheduler.add_job(self.drain, "interval", seconds=self.settings.drain_seconds, id="drain",
                          next_run_time=_utcnow())
        scheduler.start()
        log.info("worker started: tick every %gs, drain every %gs", self.settings.tick_seconds,
                 self.settings.drain_seconds)
        self.stopping.wait()
        log.info("worker stopping: finishing the work in hand")
        scheduler.shutdown(wait=True)
        log.info("worker stopped")


def _utcnow():
    """The scheduler's first run time (real time: APScheduler schedules in real time)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def stop_on_signals(stop=None) -> threading.Event:
    """SIGTERM and SIGINT set the event returned (and call `stop`, if given)."""
    stopping = threading.Event()

    def handle(*_):
        stopping.set()
        if stop:
            stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handle)
    return stopping


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def run_process(app: Flask, *, once: bool = False, stopping: threading.Event | None = None) -> int:
    """This process is one worker until a signal (or, `once`, until idle). -> exit status"""
    _configure_logging()
    due.set_lease(app.config["AGGREGATOR_SETTINGS"].lease_seconds)
    stopping = stopping or stop_on_signals()
    if not _database_ready(app, stopping, wait=not once):
        return 1 if once else 0
    worker = Worker(app, stopping)
    if once:
        worker.run_once()
    else:
        worker.run_forever()
    return 0


def _database_ready(app: Flask, stopping: threading.Event, *, wait: bool) -> bool:
    """Whether the database exists and is migrated; if not, says so (naming it and the fix) and,
    `wait`ing, looks again every tick until it is or the process is stopped. A worker never opens
    a database that is not there (SQLite would create an empty file)."""
    from . import readiness

    problem = readiness.ready(app)
    if problem is not None:
        log.error("%s%s", problem.message, " The worker waits for it." if wait else "")
    while problem is not None and wait and not stopping.wait(app.config["AGGREGATOR_SETTINGS"].tick_seconds):
        problem = readiness.ready(app)
    return problem is None


# --- several processes --------------------------------------------------------------------

def worker_command(once: bool = False) -> list[str]:
    """The command line of one worker process (it builds its app from the environment)."""
    return [sys.executable, "-m", "aggregator.worker", *(["--once"] if once else [])]


class Supervisor:
    """Starts `processes` worker processes and keeps them running: one that dies is started
    again (after a pause); on stop() each is sent SIGTERM and waited for."""

    RESTART_PAUSE = 1.0

    def __init__(self, processes: int, *, once: bool = False, command: list[str] | None = None,
                 on_exit=None):
        self.processes, self.once = processes, once
        self.command = command or worker_command(once)
        self.on_exit = on_exit or mark_process_dead
        self.children: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        self._signalled: set[int] = set()

    def start(self) -> None:
        self.children = [self._spawn() for _ in range(self.processes)]

    def _spawn(self) -> subprocess.Popen:
        return subprocess.Popen(self.command)  # nosec B603  # worker_command() or a test's argv, no shell

    def watch(self) -> int:
        """Until stopped (or, `once`, until every child is done). -> 0 if all ended cleanly."""
        failed = False
        while self.children:
            for child in list(self.children):
                status = child.poll()
                if status is None:
                    continue
                self.on_exit(child.pid)
                self.children.remove(child)
                if self.stopping.is_set() or self.once:
                    # Ended by our SIGTERM before it could handle it (still starting): it had
                    # claimed nothing (its handler is set before its app is built).
                    failed |= status not in (0, -signal.SIGTERM if self.stopping.is_set() else 0)
                else:
                    log.error("worker process %d exited with status %s; starting another", child.pid, status)
                    self.stopping.wait(self.RESTART_PAUSE)
                    if not self.stopping.is_set():
                        self.children.append(self._spawn())
            if self.stopping.is_set():
                self._signal_children()
            self.stopping.wait(0.2)
        return 1 if failed else 0

    def stop(self) -> None:
        """Have watch() send each child SIGTERM, once: only watch() signals (from a signal
        handler or another thread, a second SIGTERM could reach a child during its shutdown,
        when Python has restored the default action, and kill it)."""
        self.stopping.set()

    def _signal_children(self) -> None:
        for child in self.children:
            if child.pid not in self._signalled and child.poll() is None:
                child.send_signal(signal.SIGTERM)
                self._signalled.add(child.pid)


def mark_process_dead(pid: int) -> None:
    """Retire an exited process's live metrics (multiprocess mode only)."""
    from .config import Settings

    if Settings.from_env().metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


# --- the command line ---------------------------------------------------------------------

class _WorkerGroup(AppGroup):
    def invoke(self, ctx: click.Context):
        from .commands import require_usable_database

        require_usable_database(ctx)
        return super().invoke(ctx)


worker = _WorkerGroup("worker", help="The worker: due work (closes, finalizations) and queues (outbox, PDFs, "
                                  "deliveries).")


@worker.command("run", help="Run worker processes until SIGTERM/SIGINT (or, with --once, until idle). "
                            "Start more, here or on other machines, against the same database to share the work.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes to start (each its own database pool).")
@click.option("--once", is_flag=True, help="One tick, then drain the queues until nothing is ready, and exit.")
def run_command(processes: int, once: bool):
    from flask import current_app

    if processes == 1:
        sys.exit(run_process(current_app._get_current_object(), once=once))
    _configure_logging()
    supervisor = Supervisor(processes, once=once)
    stop_on_signals(supervisor.stop)
    supervisor.start()
    log.info("started %d worker processes: %s", processes, ", ".join(str(c.pid) for c in supervisor.children))
    sys.exit(supervisor.watch())


def main(argv: list[str] | None = None) -> int:
    """`python -m aggregator.worker [--once]`: one worker process, its app built from the
    environment (what `--processes N` starts N of)."""
    stopping = stop_on_signals()  # before the app is built (seconds): a stop then is honoured too
    from . import create_app, wiring

    wiring.wire()  # create_app wires too: the worker's due kinds and queues never depend on it
    args = sys.argv[1:] if argv is None else argv
    return run_process(create_app(), once="--once" in args, stopping=stopping)


if __name__ == "__main__":  # run as aggregator.worker, not as a second copy named __main__
    from aggregator.worker import main as _main

    sys.exit(_main())
