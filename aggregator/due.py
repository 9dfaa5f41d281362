"""Due work: what becomes due at an instant derived from the data, run as of that instant, in
order; and the queues of work that simply waits to be done (PDFs, deliveries).

Two kinds of work, each area's, registered here by the composition root (aggregator.wiring: this
module imports no area), and driven by the scheduler, the CLI and the test clock alike (nothing
else decides what runs):

* **Due kinds** (business time). Each finds, in one *lane* (a tenant in one mode), its earliest
  unit of work and the instant it is due (a period's end, a draft's review deadline; later a
  charge day, a retry time, a payout day), and runs one unit *as of* that instant: its results
  (issue dates, number years, due dates) are those of that instant, whenever it actually runs.
  `catch_up` runs a lane's units in order of their instants, so a clock that jumps months, or a
  scheduler that was down for days, gives what running on time would have given.

* **Queues** (real time). Each claims a batch of ready items in the database (FOR UPDATE SKIP
  LOCKED, or a lease that a killed worker's claim outlives only briefly) and works them: any
  number of worker processes on any number of machines share the work, and an item is done once.

A lane is claimed by one worker at a time (a lease on its row in `due_lanes`). The row stores
when a worker must next look at the lane (`wake_at`, real time), so a tick finds due lanes with
one indexed query whatever the number of tenants. Anything that may bring due work forward (a
new period, an FX rate that unblocks a close, a test clock advance, a changed setting) nudges
its lane: the next tick looks at it at once and computes its next instant afresh.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .db import UTCDateTime, db, dialect_insert, skip_locked
from .faults import crash_point

log = logging.getLogger(__name__)

#: `wake_at` for "look at this lane at once" (any real time is later).
AT_ONCE = datetime(2000, 1, 1, tzinfo=timezone.utc)

#: How long a claim on a lane or a queue item lasts unless renewed or released.
DEFAULT_LEASE = timedelta(seconds=120)

#: A process-wide lease that replaces every claim's own (set by a worker process from
#: AGGREGATOR_LEASE_SECONDS: short leases let tests see a killed worker's claims expire).
_lease_override: timedelta | None = None

#: Backoff of a lane whose due work failed: 1 min, 2, 4, ... at most an hour.
_MAX_BACKOFF = timedelta(hours=1)


class DueLane(db.Model):
    """The scheduling state of one lane (a tenant in one mode)."""

    __tablename__ = "due_lanes"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    # The due instant (the lane's own time) of its earliest unit, as last computed.
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When (real time) a worker must next look at the lane; NULL: not until nudged.
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped by every nudge: a worker that computed wake_at before a nudge landed keeps it due.
    nudges: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    locked_by: Mapped[str | None] = mapped_column(sa.String(64))
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))

    __table_args__ = (sa.Index("ix_due_lanes_wake_at", "wake_at"),)


@dataclass(frozen=True, order=True)
class Lane:
    """A tenant in one mode: due work runs in order within a lane, on the lane's clock."""

    tenant_id: str
    livemode: bool

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"


@dataclass(frozen=True)
class Unit:
    """One piece of due work of a kind, in a lane, due at `due_at` (the lane's time)."""

    kind: str
    due_at: datetime
    key: tuple = ()


@dataclass(frozen=True)
class Kind:
    """A kind of due work. `next_unit(lane)` is its earliest unit in the lane, due or not (None:
    nothing); `run(lane, unit, adapters)` does that unit as of `unit.due_at` and returns a report.
    Running a unit must make progress: the kind's next unit afterwards is another one."""

    name: str
    next_unit: Callable[[Lane], Unit | None]
    run: Callable[[Lane, Unit, Any], Any]


@dataclass(frozen=True)
class Queue:
    """Work that waits to be done in real time. `run_batch(adapters, now, limit, lane)` claims up
    to `limit` ready items (of one lane only, when `lane` is given; the claim is committed before
    the work starts, so other workers take other items) and does them: -> how many succeeded and
    failed (nothing of either: nothing was ready)."""

    name: str
    run_batch: Callable[[Any, datetime, int, "Lane | None"], "Worked"]
    batch: int = 50
    # What waits, read at scrape time by /metrics: -> (how many items, when the oldest was
    # created, or None). One cheap query; None: the queue reports no backlog.
    backlog: Callable[[], "tuple[int, datetime | None]"] | None = None


@dataclass
class Worked:
    done: int = 0
    failed: int = 0

    @property
    def taken(self) -> int:
        return self.done + self.failed

    def __iadd__(self, other: "Worked") -> "Worked":
        self.done += other.done
        self.failed += other.failed
        return self


class NotDoneYet(Exception):
    """Raised by a kind's `run` when its unit cannot finish now because an outside service did not
    answer (Stripe unreachable: a charge's outcome is unknown). What could be done was done and
    committed; the unit stays due. The lane goes on with its other kinds (a close never waits for a
    charge), this kind waits for the next catch-up, and the lane is looked at again after a backoff.
    `reason` is a short classified word shown to tenants; the message is for operators' logs."""

    reason = "not_done_yet"


class DueWorkFailed(Exception):
    """A unit of due work raised: the lane stops there (later units must wait for it)."""

    reason = "failed"

    def __init__(self, lane: Lane, unit: Unit, cause: BaseException, caught_up: "CatchUp | None" = None):
        super().__init__(f"{unit.kind} due {unit.due_at.isoformat()} in {lane}: {type(cause).__name__}: {cause}")
        self.lane, self.unit, self.cause = lane, unit, cause
        self.caught_up = caught_up  # what ran before it


@dataclass(frozen=True)
class PendingUnit:
    """A unit of due work that is due and not done: `reason` is classified (`NotDoneYet.reason`
    of what stopped it, or `failed`); `retry_at` (real time) is when a worker tries it again."""

    kind: str
    due_at: datetime
    reason: str
    retry_at: datetime | None = None


class NoProgress(RuntimeError):
    """A kind returned the same unit again after running it: a defect, stopped rather than looped."""


# --- the registry ---------------------------------------------------------------------------
# Filled once by the composition root (aggregator.wiring), which knows every area: due.py imports
# none of them.

_kinds: list[Kind] = []
_queues: list[Queue] = []
_after_catch_up: list[Callable[[Lane, datetime], None]] = []


def register_kinds(*added: Kind) -> None:
    """Add kinds of due work; they run in registration order when due at the same instant.
    Registering a kind twice (by name) keeps the first."""
    names = {kind.name for kind in _kinds}
    _kinds.extend(kind for kind in added if kind.name not in names)


def register_queues(*added: Queue) -> None:
    """Add queues; a worker drains them in registration order. Registering a queue twice (by
    name) keeps the first."""
    names = {queue.name for queue in _queues}
    _queues.extend(queue for queue in added if queue.name not in names)


def after_catch_up(hook: Callable[[Lane, datetime], None]) -> None:
    """Call `hook(lane, lane_now)` after each catch-up of a claimed lane (`run_lane`), whether its
    due work succeeded or failed (the test clock marks itself ready)."""
    if hook not in _after_catch_up:
        _after_catch_up.append(hook)


def kinds() -> list[Kind]:
    """Every kind of due work, in the order they run when due at the same instant (a period is
    closed before its drafts' review deadline; charges, retries and payouts come after)."""
    return list(_kinds)


def queues() -> list[Queue]:
    """Every queue a worker drains (the outbox first: it feeds the delivery queues)."""
    return list(_queues)


# --- one lane -------------------------------------------------------------------------------

def next_unit(lane: Lane, among: Sequence[Kind] | None = None) -> Unit | None:
    """The lane's earliest unit of due work, of any kind (ties: in the order of `kinds()`)."""
    found = [(unit.due_at, rank, unit) for rank, kind in enumerate(among or kinds())
             if (unit := kind.next_unit(lane)) is not None]
    return min(found, key=lambda f: (f[0], f[1]))[2] if found else None


@dataclass
class CatchUp:
    """What catching a lane up did: each unit run, in order, with its report."""

    lane: Lane
    until: datetime
    ran: list[tuple[Unit, Any]] = field(default_factory=list)
    # units that could not finish now (NotDoneYet): retried after a backoff
    pending: list[tuple[Unit, NotDoneYet]] = field(default_factory=list)
    # The lane's next unit after the catch-up (due after `until`; None: nothing), as its last look
    # at every kind found it; `looked_ahead` is False when that look left a kind out (a unit not
    # done yet) or never came (a unit failed). `release` and `pending_work` take it instead of
    # asking every kind again.
    upcoming: Unit | None = None
    looked_ahead: bool = False

    def reports(self, kind: str) -> list[Any]:
        return [report for unit, report in self.ran if unit.kind == kind]


def catch_up(lane: Lane, now: datetime, adapters, *, on_unit: Callable[[Unit], None] | None = None) -> CatchUp:
    """Run every unit of the lane due at or before `now`, earliest first, each as of its own
    instant. A unit that cannot finish now (NotDoneYet) sets its kind aside for this catch-up (its
    later units wait for it) and the other kinds go on; it is listed in `pending`. A unit that
    raises anything else stops the lane (DueWorkFailed): what is due later waits for it."""
    active = kinds()
    by_name = {kind.name: kind for kind in active}
    result, last = CatchUp(lane, now), None
    while (unit := next_unit(lane, active)) is not None and unit.due_at <= now:
        if unit == last:
            raise NoProgress(f"{unit.kind} due {unit.due_at.isoformat()} in {lane} ran without progress")
        if on_unit:
            on_unit(unit)
        try:
            report = by_name[unit.kind].run(lane, unit, adapters)
        except NotDoneYet as exc:
            db.session.rollback()
            log.warning("due work not done yet in %s: %s due %s: %s", lane, unit.kind, unit.due_at.isoformat(), exc)
            result.pending.append((unit, exc))
            active = [kind for kind in active if kind.name != unit.kind]
            if not active:
                break
            continue
        except Exception as exc:
            db.session.rollback()
            raise DueWorkFailed(lane, unit, exc, result) from exc
        crash_point("due.unit.after_run")
        result.ran.append((unit, report))
        last = unit
    if not result.pending:  # every kind was looked at, and nothing of any is due by `now`
        result.upcoming, result.looked_ahead = unit, True
    return result


# --- scheduling lanes -------------------------------------------------------------------------

def nudge(tenant_id: str, livemode: bool) -> None:
    """Something in the lane may now be due earlier than its stored instant (a new period, an
    unblocked close, a moved test clock, a changed setting): have a worker look at it at once.
    In the caller's transaction."""
    lanes = DueLane.__table__
    db.session.execute(
        dialect_insert(lanes).values(tenant_id=tenant_id, livemode=livemode, wake_at=AT_ONCE, nudges=1)
        .on_conflict_do_update(index_elements=["tenant_id", "livemode"],
                               set_={"wake_at": AT_ONCE, "nudges": lanes.c.nudges + 1}))


@dataclass(frozen=True)
class Claim:
    lane: Lane
    token: str
    nudges: int


def lease(own: timedelta = DEFAULT_LEASE) -> timedelta:
    """How long a claim lasts: its own lease, unless this process was given one (set_lease)."""
    return _lease_override or own


def set_lease(seconds: float | None) -> None:
    """Every claim this process makes lasts `seconds` (None: each claim's own lease)."""
    global _lease_override
    _lease_override = timedelta(seconds=seconds) if seconds else None


def _lease_until(now: datetime, own: timedelta) -> datetime:
    return now + lease(own)


def claim_lanes(now: datetime, limit: int, lease: timedelta = DEFAULT_LEASE) -> list[Claim]:
    """Claim up to `limit` lanes a worker must look at now (earliest first), and commit: one
    statement, whatever the number of lanes, using the index on wake_at."""
    lanes = DueLane.__table__
    token = secrets.token_hex(8)
    due = (sa.select(lanes.c.tenant_id, lanes.c.livemode)
           .where(lanes.c.wake_at <= now, sa.or_(lanes.c.locked_until.is_(None), lanes.c.locked_until < now))
           .order_by(lanes.c.wake_at).limit(limit))
    due = skip_locked(due)
    rows = db.session.execute(
        sa.update(lanes).where(sa.tuple_(lanes.c.tenant_id, lanes.c.livemode).in_(due))
        .values(locked_by=token, locked_until=_lease_until(now, lease))
        .returning(lanes.c.tenant_id, lanes.c.livemode, lanes.c.nudges)).all()
    db.session.commit()
    return [Claim(Lane(r.tenant_id, r.livemode), token, r.nudges) for r in rows]


def claim_lane(lane: Lane, now: datetime, lease: timedelta = DEFAULT_LEASE) -> Claim | None:
    """Claim this lane if no other worker holds it (its row is created if need be), and commit."""
    lanes = DueLane.__table__
    db.session.execute(dialect_insert(lanes).values(tenant_id=lane.tenant_id, livemode=lane.livemode)
                       .on_conflict_do_nothing(index_elements=["tenant_id", "livemode"]))
    token = secrets.token_hex(8)
    row = db.session.execute(
        sa.update(lanes).where(lanes.c.tenant_id == lane.tenant_id, lanes.c.livemode == lane.livemode,
                               sa.or_(lanes.c.locked_until.is_(None), lanes.c.locked_until < now))
        .values(locked_by=token, locked_until=_lease_until(now, lease))
        .returning(lanes.c.nudges)).first()
    db.session.commit()
    return Claim(lane, token, row.nudges) if row else None


def renew(claim: Claim, now: datetime, lease: timedelta = DEFAULT_LEASE) -> bool:
    """Extend a claim (a long catch-up); False if it was lost (expired and taken by another)."""
    lanes = DueLane.__table__
    renewed = db.session.execute(
        sa.update(lanes).where(lanes.c.tenant_id == claim.lane.tenant_id, lanes.c.livemode == claim.lane.livemode,
                               lanes.c.locked_by == claim.token)
        .values(locked_until=_lease_until(now, lease))).rowcount
    db.session.commit()
    return bool(renewed)


def backoff(failures: int) -> timedelta:
    """How long a lane waits after its `failures`-th failure in a row: 1 min, 2, 4, ... an hour."""
    return min(timedelta(minutes=2 ** min(failures - 1, 10)), _MAX_BACKOFF)


def release(claim: Claim, lane_now: datetime, *, pending: Sequence[tuple[Unit, NotDoneYet]] = (),
            real_now: datetime | None = None, caught_up: CatchUp | None = None) -> datetime | None:
    """Let go of a lane whose due work is done up to `lane_now` (its clock's time): store its
    next due instant and when a worker must look at it again (live mode: at that instant; test
    mode: when its clock is moved, which nudges it). With `pending` units (not done yet), after
    a backoff from `real_now` instead, counted as a failure. A nudge that landed while the lane
    was claimed keeps it due at once. The next unit is the one `caught_up` (the catch-up just
    run) found last, if it looked at every kind; else every kind is asked. -> the next due
    instant."""
    upcoming = caught_up.upcoming if _looked_ahead(caught_up, claim.lane, lane_now) else next_unit(claim.lane)
    next_due = upcoming.due_at if upcoming else None
    lanes = DueLane.__table__
    failures, last_error = 0, None
    if pending:
        row = db.session.get(DueLane, (claim.lane.tenant_id, claim.lane.livemode))
        failures = (row.failures if row else 0) + 1
        wake = real_now + backoff(failures)
        if claim.lane.livemode:  # another kind's unit due before the retry is not held up by it
            waiting = {unit.kind for unit, _ in pending}
            other = next_unit(claim.lane, [kind for kind in kinds() if kind.name not in waiting])
            if other is not None:
                wake = min(wake, other.due_at)
        last_error = "\n".join(_error_line(exc.reason, unit.kind, exc) for unit, exc in pending)[:1000]
    elif next_due is None:
        wake = None
    elif claim.lane.livemode:
        wake = next_due
    else:
        wake = AT_ONCE if next_due <= lane_now else None
    db.session.execute(
        sa.update(lanes).where(lanes.c.tenant_id == claim.lane.tenant_id, lanes.c.livemode == claim.lane.livemode,
                               lanes.c.locked_by == claim.token)
        .values(next_due_at=next_due, locked_by=None, locked_until=None, failures=failures, last_error=last_error,
                wake_at=sa.case((lanes.c.nudges == claim.nudges, wake), else_=AT_ONCE)))
    db.session.commit()
    return next_due


def let_go(claim: Claim) -> None:
    """Let go of a claimed lane without running it (a worker stopping): it stays due, and
    another worker (or this one, later) takes it."""
    db.session.rollback()
    lanes = DueLane.__table__
    db.session.execute(
        sa.update(lanes).where(lanes.c.tenant_id == claim.lane.tenant_id, lanes.c.livemode == claim.lane.livemode,
                               lanes.c.locked_by == claim.token)
        .values(locked_by=None, locked_until=None))
    db.session.commit()


def fail(claim: Claim, error: BaseException, now: datetime) -> None:
    """Let go of a lane whose due work failed: look at it again after a backoff."""
    db.session.rollback()
    lanes = DueLane.__table__
    lane = db.session.get(DueLane, (claim.lane.tenant_id, claim.lane.livemode))
    failures = (lane.failures if lane else 0) + 1
    kind = error.unit.kind if isinstance(error, DueWorkFailed) else "-"
    db.session.execute(
        sa.update(lanes).where(lanes.c.tenant_id == claim.lane.tenant_id, lanes.c.livemode == claim.lane.livemode,
                               lanes.c.locked_by == claim.token)
        .values(locked_by=None, locked_until=None, failures=failures, wake_at=now + backoff(failures),
                last_error=_error_line(DueWorkFailed.reason, kind, error)[:1000]))
    db.session.commit()


def _error_line(reason: str, kind: str, error: BaseException) -> str:
    """One line of a lane's `last_error`: its classified reason and kind first (read back by
    pending_work), then the detail, for operators only."""
    detail = f"{type(error).__name__}: {error}".replace("\n", " ")
    return f"{reason} {kind} {detail}"


def lane_clock(lane: Lane, adapters):
    return adapters.clocks.for_tenant(lane.tenant_id, lane.livemode)


def run_lane(claim: Claim, adapters, real_now: datetime, *,
             on_unit: Callable[[Unit], None] | None = None) -> CatchUp:
    """Catch a claimed lane up to its clock's time and release it (or record its failure; what
    is not done yet is retried after a backoff). Either way the `after_catch_up` hooks hear of it
    (a test clock is then ready: its due work is as done as it can be now, and what is not is in
    `pending_work`)."""
    crash_point("due.lane.after_claim")
    lane = claim.lane
    lane_now = lane_clock(lane, adapters).now()
    try:
        caught_up = catch_up(lane, lane_now, adapters, on_unit=on_unit)
    except Exception as exc:
        log.error("due work failed in %s: %s", lane, exc, exc_info=exc)
        fail(claim, exc, real_now)
        for hook in _after_catch_up:
            hook(lane, lane_now)
        raise
    for hook in _after_catch_up:
        hook(lane, lane_now)
    release(claim, lane_now, pending=caught_up.pending, real_now=real_now, caught_up=caught_up)
    return caught_up


def _looked_ahead(caught_up: CatchUp | None, lane: Lane, lane_now: datetime) -> bool:
    """Whether `caught_up` is the lane's catch-up up to `lane_now` whose last look at every kind
    found its next unit (and so nothing due by then)."""
    return caught_up is not None and caught_up.looked_ahead and caught_up.lane == lane and caught_up.until == lane_now


def pending_work(lane: Lane, lane_now: datetime, caught_up: CatchUp | None = None) -> list[PendingUnit]:
    """The lane's due work not done by `lane_now` (its clock's time), one unit per kind, with why
    (the classified reason its last catch-up recorded) and when a worker tries it again. None
    after `caught_up`, the lane's catch-up just run up to `lane_now`, if it looked at every kind
    last (found nothing due by then: nothing failed, nothing is not done yet)."""
    if _looked_ahead(caught_up, lane, lane_now):
        return []
    row = db.session.get(DueLane, (lane.tenant_id, lane.livemode))
    failing = row is not None and row.failures > 0
    reasons = {}
    if failing and row.last_error:
        for line in row.last_error.splitlines():
            reason, kind, *_ = line.split(" ", 2) + ["", ""]
            reasons[kind] = reason
    found = []
    for kind in kinds():
        unit = kind.next_unit(lane)
        if unit is not None and unit.due_at <= lane_now:
            reason = reasons.get(kind.name, "waiting")
            found.append(PendingUnit(kind.name, unit.due_at, reason, row.wake_at if failing else None))
    return found


# --- queues ---------------------------------------------------------------------------------

def waiting(table: sa.Table, *where) -> tuple[int, datetime | None]:
    """A delivery queue's backlog (for `Queue.backlog`): rows of `table` matching `where`, and the
    oldest one's `created_at` (a delivery is created at real time, in either mode)."""
    row = db.session.execute(sa.select(sa.func.count(), sa.func.min(table.c.created_at)).where(*where)).one()
    return row[0], row[1]


def claim_ready(table: sa.Table, ready: sa.Select, lane: Lane | None, **values) -> list[str]:
    """Claim the rows of `table` that `ready` selects (their ids, ordered and limited), setting
    `values` (a lease, an attempt counted), and commit: -> their ids, sorted. Scoped to one lane
    when given; workers claiming at once get different rows (FOR UPDATE SKIP LOCKED on
    PostgreSQL; SQLite serializes writers)."""
    if lane is not None:
        ready = ready.where(table.c.tenant_id == lane.tenant_id, table.c.livemode == lane.livemode)
    ready = skip_locked(ready)
    ids = db.session.execute(sa.update(table).where(table.c.id.in_(ready)).values(**values)
                             .returning(table.c.id)).scalars().all()
    db.session.commit()
    return sorted(ids)


def settle_each(items: Sequence, outcomes: Sequence, adapters, settle: Callable[[Any, Any, datetime], str]) -> Worked:
    """Store what a batch's gateway calls answered, in one transaction: `settle(item, outcome,
    as_of)` for each (as of its tenant's clock) -> its status; an "unknown" one counts as failed
    (it is looked at again later), any other as done."""
    worked = Worked()
    try:
        for item, outcome in zip(items, outcomes, strict=True):
            as_of = adapters.clocks.for_tenant(item.tenant_id, item.livemode).now()
            if settle(item, outcome, as_of) == "unknown":
                worked.failed += 1
            else:
                worked.done += 1
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return worked


def drain(queue: Queue, adapters, *, lane: Lane | None = None, limit: int | None = None) -> Worked:
    """Claim and work batches of `queue` until nothing is ready (or `limit` items were taken),
    on real time (the adapters' base clock), read afresh for each batch."""
    total = Worked()
    while limit is None or total.taken < limit:
        size = queue.batch if limit is None else min(queue.batch, limit - total.taken)
        batch = queue.run_batch(adapters, adapters.clocks.base.now(), size, lane)
        if not batch.taken:
            break
        total += batch
    return total
