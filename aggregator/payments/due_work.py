"""What the payments area registers with aggregator.due: the charge of invoices at their charge
instant (the due date at the tenant's charge hour, then each retry time), and invoices becoming
overdue at the end of their due date (after any charge due at the same instant)."""
from __future__ import annotations

from ..accounts.service import tenant_settings
from ..due import Kind, Lane, Queue, Unit
from . import charge_service, overdue_service, refund_service, stripe_events

CHARGE = "invoice.charge"
OVERDUE = "invoice.overdue"
STRIPE_EVENT = "stripe_event.handle"


def _next_charge(lane: Lane) -> Unit | None:
    at = charge_service.next_charge_due(lane.tenant_id, lane.livemode)
    return Unit(CHARGE, at) if at else None


def _run_charge(lane: Lane, unit: Unit, adapters) -> charge_service.ChargeReport:
    return charge_service.charge_due(lane.tenant_id, lane.livemode, unit.due_at, adapters)


def _next_overdue(lane: Lane) -> Unit | None:
    found = overdue_service.next_overdue(lane.tenant_id, lane.livemode,
                                         tenant_settings(lane.tenant_id, lane.livemode).timezone)
    return Unit(OVERDUE, found[1], (found[0],)) if found else None


def _run_overdue(lane: Lane, unit: Unit, adapters) -> list[str]:
    return overdue_service.mark_overdue_due(lane.tenant_id, lane.livemode, unit.key[0], unit.due_at)


KINDS = [Kind(CHARGE, _next_charge, _run_charge), Kind(OVERDUE, _next_overdue, _run_overdue)]

#: Pending Stripe refunds whose sender's claim ran out (a crash between commit and call, an
#: unknown outcome after its backoff, Stripe still processing): looked up, sent again only if
#: Stripe has no record of them, and settled.
REFUND_QUEUE = Queue("refund.send", refund_service.resume_batch, batch=refund_service.SEND_BATCH,
                     backlog=refund_service.pending_backlog)

#: Stripe events whose payment or refund was not found when they arrived, retried with backoff.
STRIPE_EVENT_QUEUE = Queue(STRIPE_EVENT, stripe_events.handle_batch, backlog=stripe_events.backlog)

#: Real-time queues of the payments area (refunds to send, Stripe events to handle).
QUEUES: list[Queue] = [REFUND_QUEUE, STRIPE_EVENT_QUEUE]
