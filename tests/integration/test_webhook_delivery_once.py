"""Workers draining the webhook queue at once, on PostgreSQL: each delivery is sent once."""
from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import sqlalchemy as sa

from aggregator import due
from aggregator.db import db
from aggregator.events.dispatch import DISPATCH_QUEUE
from aggregator.events.service import NewEvent, record
from aggregator.webhooks.delivery import deliver_batch
from aggregator.webhooks.models import WebhookDelivery
from tests.webhook_receiver import Receiver

EVENTS = 300


def test_two_workers_draining_at_once_deliver_each_delivery_once(postgres_only, app, tenant, clock):
    receiver = Receiver()
    try:
        for path in ("/a", "/b"):
            assert tenant.admin["live"].post("/v1/webhook_endpoints", {
                "url": receiver.url(path), "enabled_events": ["*"]}).status_code == 201
        lane = due.Lane(tenant.id, True)
        with app.app_context():
            adapters = app.extensions["aggregator.adapters"]
            ids = record(tenant.id, True, clock.now(),
                         [NewEvent("period.closed", f"per_{n}", {"object": {"n": n}}) for n in range(EVENTS)])
            db.session.commit()
            due.drain(DISPATCH_QUEUE, adapters, lane=lane)
        small_batches = due.Queue("webhooks.deliver", deliver_batch, batch=7)
        start = threading.Barrier(2)

        def worker():
            with app.app_context():
                start.wait()
                due.drain(small_batches, app.extensions["aggregator.adapters"], lane=lane)

        workers = [threading.Thread(target=worker) for _ in range(2)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=120)
        sent = Counter((r.path, r.headers["webhook-id"]) for r in receiver.received)
        assert sorted(sent) == sorted((path, event_id) for path in ("/a", "/b") for event_id in ids)
        assert set(sent.values()) == {1}
        with app.app_context():
            statuses = db.session.execute(sa.select(WebhookDelivery.status, sa.func.count()).where(
                WebhookDelivery.tenant_id == tenant.id).group_by(WebhookDelivery.status)).all()
            assert dict(statuses) == {"delivered": 2 * EVENTS}
            # a second fan-out of the same events (a dispatcher that died before committing) queues nothing
            from aggregator.events.models import Event
            from aggregator.webhooks.delivery import fan_out

            fan_out(db.session.scalars(sa.select(Event).where(Event.id.in_(ids))).all(), clock.now() + timedelta(1))
            db.session.commit()
            assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookDelivery).where(
                WebhookDelivery.tenant_id == tenant.id)) == 2 * EVENTS
    finally:
        receiver.close()
