"""The only place that writes the status of webhook endpoints and deliveries (see states.py).

Endpoint: enabled ⇄ disabled (by its owner; or by the service when a delivery has failed for
the whole retry schedule, which announces `webhook_endpoint.disabled`). Delivery: pending →
delivered (a 2xx answer) | failed (the schedule ran out)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Sequence

from ..db import db
from ..events.service import NewEvent, record_one
from ..states import guarded_update, machine
from .models import WebhookDelivery, WebhookEndpoint

ENDPOINT_STATES = machine("webhook endpoint", {"enabled": {"disabled"}, "disabled": {"enabled"}})
DELIVERY_STATES = machine("webhook delivery", {"pending": {"delivered", "failed"}, "delivered": set(),
                                               "failed": set()})
ENDPOINT_DISABLED = "webhook_endpoint.disabled"


def set_endpoint_status(endpoint: WebhookEndpoint, target: str) -> bool:
    """The owner enables or disables its endpoint (no event: the owner knows). Same status: no-op.
    -> False if the endpoint's status changed meanwhile (the guard matched nothing)."""
    if endpoint.status == target:
        return True
    ENDPOINT_STATES.check(endpoint.status, target)
    changed = db.session.execute(guarded_update(ENDPOINT_STATES, WebhookEndpoint.__table__, target,
                                                WebhookEndpoint.__table__.c.id == endpoint.id,
                                                disabled_reason=None if target == "enabled"
                                                else "Disabled through the API.")
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.refresh(endpoint)
    return bool(changed)


def disable_failing_endpoint(endpoint_id: str, reason: str, created: datetime,
                             snapshot: "Callable[[WebhookEndpoint], dict[str, Any]]", details: dict[str, Any]) -> bool:
    """Disable an endpoint whose delivery failed for the whole retry schedule, and record
    `webhook_endpoint.disabled` (data: the endpoint as the API shows it, with `details`), in the
    caller's transaction. False if it was no longer enabled (nothing is recorded then)."""
    table = WebhookEndpoint.__table__
    changed = db.session.execute(guarded_update(ENDPOINT_STATES, table, "disabled", table.c.id == endpoint_id,
                                                disabled_reason=reason[:1000])).rowcount
    if not changed:
        return False
    endpoint = db.session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
    record_one(endpoint.tenant_id, endpoint.livemode, created,
               NewEvent(ENDPOINT_DISABLED, endpoint.id, {"object": snapshot(endpoint), **details},
                        provider_id=endpoint.provider_id))
    return True


def finish_deliveries(ids: Sequence[str], target: str, **values) -> None:
    """pending → `target` (delivered or failed) for these deliveries, with other columns."""
    if ids:
        table = WebhookDelivery.__table__
        db.session.execute(guarded_update(DELIVERY_STATES, table, target, table.c.id.in_(list(ids)), **values)
                           .execution_options(synchronize_session=False))


