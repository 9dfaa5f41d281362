"""The worker's tick and drain, in this process (SQLite and PostgreSQL): what is due runs, a
failing lane does not stop the others, a lease lost stops a lane, a stop lets claimed lanes go,
and SIGTERM stops a worker process cleanly."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aggregator import due
from aggregator.config import PROJECT_ROOT
from aggregator.db import db
from aggregator.worker import Worker
from tests.support.clock import START
from tests.support.invoicing import send

_PARKED = "2100-01-01 00:00:00+00"


@pytest.fixture(autouse=True)
def _only_this_tests_work(app):
    """A worker's tick and drain take every tenant's work: park what earlier tests of the session
    left (on PostgreSQL, thousands of invoices of the close tests waiting for their PDFs), so each
    test here sees its own work only, and quickly."""
    with app.app_context():
        for statement in (
                "UPDATE due_lanes SET wake_at = NULL",
                "UPDATE events SET dispatched = true WHERE NOT dispatched",
                f"UPDATE invoices SET pdf_retry_at = '{_PARKED}' WHERE pdf_sha256 IS NULL",
                f"UPDATE webhook_deliveries SET next_attempt_at = '{_PARKED}' WHERE status = 'pending'",
                f"UPDATE email_deliveries SET next_attempt_at = '{_PARKED}' WHERE status = 'pending'"):
            db.session.execute(sa.text(statement))
        db.session.commit()


def _invoices(tenant) -> list[dict]:
    return tenant.admin["test"].get("/v1/invoices?limit=100").json["data"]


def _lane_row(app, tenant_id: str):
    with app.app_context():
        return db.session.get(due.DueLane, (tenant_id, False))


def _move_clock(tenant, to: str) -> None:
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": to, "wait": False})
    assert response.status_code == 202, response.json


def test_a_tick_closes_what_is_due_and_a_drain_renders_and_dispatches_it(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")
    _move_clock(tenant, "2026-11-26T00:00:00+00:00")
    worker = Worker(app)
    ticked = worker.tick()
    assert ticked.units["period.close"] >= 1 and not ticked.failed
    [invoice] = _invoices(tenant)
    assert invoice["number"] == "INV-2026-000001"
    assert tenant.admin["test"].get("/v1/test_clock").json["status"] == "ready"
    drained = worker.drain()
    assert drained.worked["pdf.render"].done >= 1 and drained.worked["events.dispatch"].done >= 1
    assert tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}/pdf").status_code == 200
    with app.app_context():
        from aggregator.events.models import Event

        assert db.session.scalar(sa.select(sa.func.count()).where(
            Event.tenant_id == tenant.id, Event.dispatched.is_(False))) == 0
    assert not worker.tick().units  # nothing more is due
    assert worker.drain().taken == 0


def _kind(name: str, lanes: dict, run):
    """A due kind with one unit per lane in `lanes` (tenant id -> units left), due before START."""

    def next_unit(lane):
        left = lanes.get(lane.tenant_id, 0) if not lane.livemode else 0
        return due.Unit(name, START - timedelta(days=1), (left,)) if left else None

    def run_unit(lane, unit, adapters):
        lanes[lane.tenant_id] -= 1
        return run(lane)

    return due.Kind(name, next_unit, run_unit)


def _with_kinds(monkeypatch, *extra):
    registered = due.kinds
    monkeypatch.setattr(due, "kinds", lambda: [*registered(), *extra])


def _nudge(app, *tenant_ids):
    with app.app_context():
        for tenant_id in tenant_ids:
            due.nudge(tenant_id, False)
        db.session.commit()


def test_a_failing_lane_is_recorded_and_does_not_stop_the_others(app, make_tenant, monkeypatch):
    failing, fine = make_tenant(), make_tenant()
    ran = []

    def run(lane):
        if lane.tenant_id == failing.id:
            raise RuntimeError("the printer is on fire")
        ran.append(lane.tenant_id)

    _with_kinds(monkeypatch, _kind("test.work", {failing.id: 1, fine.id: 1}, run))
    _nudge(app, failing.id, fine.id)
    report = Worker(app).tick()
    assert ran == [fine.id] and report.failed["test.work"] == 1
    failed_lane = _lane_row(app, failing.id)
    assert "the printer is on fire" in failed_lane.last_error and failed_lane.failures == 1
    assert failed_lane.locked_by is None and failed_lane.wake_at > START  # retried after a backoff
    assert _lane_row(app, fine.id).locked_by is None


def test_work_that_cannot_finish_now_backs_off_without_holding_up_the_lanes_other_kinds(app, tenant, monkeypatch):
    """A unit raising NotDoneYet (an outside service did not answer) sets its kind aside: the
    lane's other kinds still run, the lane is retried after a backoff (not at once), its test
    clock is ready, and `pending_work` says what waits and why; once it can finish, it does."""
    stalled, ran = {"up": False}, []

    class Unanswered(due.NotDoneYet):
        reason = "test_unanswered"

    def stalled_unit(lane):  # stays due until it has run
        return None if lane.livemode or lane.tenant_id != tenant.id or "stalled" in ran else \
            due.Unit("test.stalled", START - timedelta(days=2))

    def stall(lane, unit, adapters):
        if not stalled["up"]:
            raise Unanswered("nobody answered")
        ran.append("stalled")

    # the stalled kind is due first: before, its failure stopped the lane and held the other up
    _with_kinds(monkeypatch, due.Kind("test.stalled", stalled_unit, stall),
                _kind("test.other", {tenant.id: 1}, lambda lane: ran.append("other")))
    _move_clock(tenant, START.isoformat())
    report = Worker(app).tick()
    assert ran == ["other"] and report.failed["test.stalled"] == 1 and report.units["test.other"] == 1
    lane = _lane_row(app, tenant.id)
    assert lane.failures == 1 and lane.locked_by is None and lane.wake_at > START  # retried after a backoff
    clock = tenant.admin["test"].get("/v1/test_clock").json
    assert clock["status"] == "ready"
    assert [(p["kind"], p["reason"]) for p in clock["pending"]] == [("test.stalled", "test_unanswered")]
    assert "nobody answered" not in str(clock)  # the detail is for operators (last_error, logs)
    assert not Worker(app).tick().units  # backing off: not taken again at once
    stalled["up"] = True
    _move_clock(tenant, (START + timedelta(minutes=1)).isoformat())  # an advance retries at once
    assert Worker(app).tick().units["test.stalled"] == 1
    assert ran == ["other", "stalled"] and _lane_row(app, tenant.id).failures == 0
    assert tenant.admin["test"].get("/v1/test_clock").json["pending"] == []


def test_a_lane_whose_lease_was_taken_stops_before_its_next_unit(app, tenant, monkeypatch):
    ran = []

    def run(lane):
        ran.append(lane)
        with app.app_context():  # another worker took the lane (this one's lease had run out)
            db.session.execute(sa.update(due.DueLane).where(due.DueLane.tenant_id == lane.tenant_id)
                               .values(locked_by="another"))
            db.session.commit()
        time.sleep(0.5)  # the heartbeat (every lease / 3) notices

    _with_kinds(monkeypatch, _kind("test.work", {tenant.id: 3}, run))
    _nudge(app, tenant.id)
    due.set_lease(0.3)
    try:
        report = Worker(app).tick()
    finally:
        due.set_lease(None)
    assert len(ran) == 1 and report.failed["lane"] == 1
    assert _lane_row(app, tenant.id).locked_by == "another"  # left to its new owner


def test_a_stopping_worker_finishes_the_unit_in_hand_and_lets_the_other_lanes_go(app, make_tenant, monkeypatch):
    first, second = make_tenant(), make_tenant()
    worker, ran = Worker(app), []

    def run(lane):
        ran.append(lane.tenant_id)
        worker.stop()  # SIGTERM arrives while this unit runs

    _with_kinds(monkeypatch, _kind("test.work", {first.id: 1, second.id: 1}, run))
    _nudge(app, first.id, second.id)
    report = worker.tick()
    assert len(ran) == 1 and report.let_go >= 1
    [left] = {first.id, second.id} - set(ran)
    lane = _lane_row(app, left)
    assert lane.locked_by is None and lane.wake_at <= START  # still due: another worker takes it
    assert Worker(app).drain().taken >= 0 and worker.drain().taken == 0  # a stopped worker drains nothing


def test_sigterm_stops_a_worker_process_cleanly(app, database_url, tmp_path):
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": database_url, "AGGREGATOR_STORAGE_DIR": str(tmp_path),
           "AGGREGATOR_TICK_SECONDS": "0.5", "AGGREGATOR_DRAIN_SECONDS": "0.2"}
    process = subprocess.Popen([sys.executable, "-m", "aggregator.worker"], cwd=PROJECT_ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "tick:" in line:
                break
        process.send_signal(signal.SIGTERM)
        # read the rest while it stops: a worker with much due work in the suite's database logs more
        # than a pipe holds, and would block on a full pipe that nothing drains
        rest = process.communicate(timeout=30)[1]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, "".join(lines) + rest
    assert "worker stopping" in rest and "worker stopped" in rest


def test_the_supervisor_starts_again_a_worker_that_died_and_stops_all_with_sigterm(tmp_path):
    from aggregator.worker import Supervisor

    child = ("import pathlib, signal, sys, threading, time\n"
             f"marks = pathlib.Path({str(tmp_path)!r})\n"
             "first = not any(marks.glob('*.started'))\n"
             "(marks / f'{time.monotonic_ns()}.started').touch()\n"
             "if first: sys.exit(3)  # the first one dies\n"
             "stop = threading.Event(); signal.signal(signal.SIGTERM, lambda *_: stop.set())\n"
             "(marks / 'ready').touch(); stop.wait(60); sys.exit(0)\n")
    exited = []
    supervisor = Supervisor(1, command=[sys.executable, "-c", child], on_exit=exited.append)
    supervisor.RESTART_PAUSE = 0.1
    supervisor.start()
    watching = threading.Thread(target=lambda: exited.append(("status", supervisor.watch())))
    watching.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    supervisor.stop()
    watching.join(30)
    assert len(list(tmp_path.glob("*.started"))) == 2  # the one that died was started again
    assert exited[-1] == ("status", 0) and len(exited) == 3, exited  # both exits seen (metrics retired)
