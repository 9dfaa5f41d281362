"""What the payouts area registers with aggregator.due: a payout day's build (due at the payout
day's local midnight, as of which its payouts are dated) and the queue sending approved payouts
by Stripe Connect."""
from __future__ import annotations

from ..due import Kind, Lane, Queue, Unit
from . import build_service, send_service

BUILD = "payout.build"


def _next_build(lane: Lane) -> Unit | None:
    found = build_service.next_payout_due(lane.tenant_id, lane.livemode)
    return Unit(BUILD, found[1], (found[0],)) if found else None


def _run_build(lane: Lane, unit: Unit, adapters) -> build_service.BuildReport:
    return build_service.build_payouts(lane.tenant_id, lane.livemode, unit.key[0])


KINDS = [Kind(BUILD, _next_build, _run_build)]

SEND_QUEUE = Queue("payout.send", send_service.send_batch, batch=send_service.SEND_BATCH,
                   backlog=send_service.backlog)
QUEUES = [SEND_QUEUE]
