"""Named crash points: where a process may die (kill -9) and the work must still end exactly once.

`crash_point("close.chunk.after_commit")` marks such a place. It does nothing unless the
process was started with AGGREGATOR_CRASH_AT naming that point ("name", or "name@N": the N-th
time this process reaches it; several, comma-separated); then the process sends itself SIGKILL
there, as a power cut or the out-of-memory killer would: no handler, no finally, no flush. With
AGGREGATOR_CRASH_ONCE naming a folder, only the first process to reach a point dies there (it
creates the file named after the point, exclusively, and writes its pid into it), so a crash run
(tests/crash) kills once per point whatever the number of processes started with the setting,
and a process restarted with the same setting dies only at points not reached before.

The setting is read once, at import: unset (production), a crash point costs one global lookup.
POINTS lists every point placed in the code (tests/unit/test_crash_points.py keeps it honest).
"""
from __future__ import annotations

import os
import signal


def _targets(setting: str) -> dict[str, int]:
    """"a@2,b" -> {"a": 2, "b": 1}"""
    targets = {}
    for item in filter(None, (part.strip() for part in setting.split(","))):
        name, _, nth = item.partition("@")
        targets[name] = int(nth) if nth else 1
    return targets


_TARGETS = _targets(os.environ.get("AGGREGATOR_CRASH_AT", "")) or None
_hits: dict[str, int] = {}

#: Every crash point in the code, by area (the harness draws from these).
POINTS = (
    # intake
    "ingest.record.before_commit", "ingest.record.after_commit",
    "ingest.cancel.before_commit", "ingest.cancel.after_commit",
    "metering.record.before_commit",
    # the due lanes (close, finalization, charge and payout days run as their units)
    "due.lane.after_claim", "due.unit.after_run",
    # close
    "close.rate.before_commit", "close.start.after_commit", "close.chunk.before_commit", "close.chunk.after_commit",
    "close.finish.before_commit", "close.finish.after_commit",
    # render
    "pdf.claim.after_commit", "pdf.store.after_file", "pdf.store.after_commit",
    "usage_export.after_files",
    # the outbox
    "events.dispatch.before_commit", "events.dispatch.after_commit",
    # webhook delivery
    "webhooks.claim.after_commit", "webhooks.send.after_post", "webhooks.record.after_commit",
    # email delivery
    "email.claim.after_commit", "email.send.after_smtp", "email.record.after_commit",
    # charge
    "charge.begin.after_commit", "charge.call.before_stripe", "charge.call.after_stripe",
    "charge.finish.before_commit", "charge.finish.after_commit",
    # refunds
    "refund.create.after_commit", "refund.call.before_stripe", "refund.call.after_stripe",
    "refund.settle.after_commit", "refund.resume.after_claim",
    # payouts
    "payout.build.before_commit", "payout.build.after_commit", "payout.approve.after_commit",
    "payout.send.after_claim", "payout.send.after_stripe", "payout.send.after_commit",
    # the ledger (inside the transactions that move money)
    "ledger.close_chunk.posted", "ledger.payments.posted", "ledger.refund.posted",
)


def crash_point(name: str) -> None:
    """Die here (SIGKILL) if this process was told to (AGGREGATOR_CRASH_AT); else nothing."""
    if _TARGETS is None or name not in _TARGETS:
        return
    _hits[name] = hits = _hits.get(name, 0) + 1
    if hits != _TARGETS[name]:
        return
    once = os.environ.get("AGGREGATOR_CRASH_ONCE")
    if once:
        try:
            fd = os.open(os.path.join(once, name), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return  # a process of this run died here already
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
