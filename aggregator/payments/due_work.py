"""What the payments area registers with aggregator.due: the charge of invoices at their charge
instant (the due date at the tenant's charge hour, then each retry time)."""
from __future__ import annotations

from ..due import Kind, Lane, Queue, Unit
from . import charge_service, stripe_events

CHARGE = "invoice.charge"
STRIPE_EVENT = "stripe_event.handle"


def _next_charge(lane: Lane) -> Unit | None:
    at = charge_service.next_charge_due(lane.tenant_id, lane.livemode)
    return Unit(CHARGE, at) if at else None


def _run_charge(lane: Lane, unit: Unit, adapters) -> charge_service.ChargeReport:
    return charge_service.charge_due(lane.tenant_id, lane.livemode, unit.due_at, adapters)


KINDS = [Kind(CHARGE, _next_charge, _run_charge)]

#: Real-time queues of the payments area (refunds to send, Stripe events to handle).
QUEUES: list[Queue] = []

#: Stripe events whose payment or refund was not found when they arrived, retried with backoff.
STRIPE_EVENT_QUEUE = Queue(STRIPE_EVENT, stripe_events.handle_batch, backlog=stripe_events.backlog)
QUEUES.append(STRIPE_EVENT_QUEUE)
