"""Webhook deliveries in the tests: a worker's drain of the outbox and the deliveries of a lane."""
from __future__ import annotations

from aggregator import due
from aggregator.events.dispatch import DISPATCH_QUEUE
from aggregator.webhooks.delivery import DELIVERY_QUEUE


def run_workers(app, tenant, livemode: bool = False) -> None:
    """A worker's drain of the outbox and the webhook deliveries of the tenant's lane."""
    lane = due.Lane(tenant.id, livemode)
    with app.app_context():
        adapters = app.extensions["aggregator.adapters"]
        while any([due.drain(q, adapters, lane=lane).taken for q in (DISPATCH_QUEUE, DELIVERY_QUEUE)]):
            pass
