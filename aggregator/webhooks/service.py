"""Webhook endpoints (one use case a function): registered, listed, changed, deleted, their
secret rotated; their deliveries listed; an event sent again.

An admin key manages every endpoint of its tenant in its mode; a provider key only its own
(which receive only events about that provider). Test and live mode never see each other's."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Mapping

import sqlalchemy as sa

from ..auth import Principal
from ..db import db, locking, new_id, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from ..events.service import get_event
from ..outbound.addresses import UnacceptableUrl, check_url
from ..pagination import Page, paginate
from ..states import InvalidTransition
from . import signing, transitions
from .delivery import queue_deliveries, subscribed
from .models import WebhookDelivery, WebhookEndpoint

#: How long the previous secret keeps signing after a rotation (receivers switch meanwhile).
PREVIOUS_SECRET_GRACE = timedelta(hours=24)


@dataclass(frozen=True)
class WithSecret:
    endpoint: WebhookEndpoint
    secret: str


def _visible(principal: Principal) -> sa.Select:
    query = sa.select(WebhookEndpoint).where(
        WebhookEndpoint.tenant_id == principal.tenant_id, WebhookEndpoint.livemode == principal.livemode,
        WebhookEndpoint.deleted_at.is_(None))
    if principal.role == "provider":
        query = query.where(WebhookEndpoint.provider_id == principal.provider_id)
    return query


def _checked_url(url: str, allow_private: bool) -> str:
    try:
        check_url(url, allow_private=allow_private)
    except UnacceptableUrl as exc:
        raise InvalidInput.on("url", str(exc), code="url_not_allowed") from None
    return url


def create_endpoint(principal: Principal, fields: Mapping[str, Any], adapters, now: datetime) -> WithSecret:
    secret = signing.new_secret()
    endpoint = WebhookEndpoint(
        id=new_id("we"), tenant_id=principal.tenant_id, livemode=principal.livemode,
        provider_id=principal.provider_id if principal.role == "provider" else None,
        url=_checked_url(fields["url"], adapters.webhooks.allow_private),
        enabled_events=sorted(set(fields["enabled_events"])), description=fields.get("description"),
        metadata_=fields.get("metadata_") or {}, secret_sealed=adapters.vault.seal(secret), created_at=now)
    db.session.add(endpoint)
    db.session.flush()
    if fields.get("status") == "disabled":
        transitions.set_endpoint_status(endpoint, "disabled")
    db.session.commit()
    return WithSecret(endpoint, secret)


def list_endpoints(principal: Principal, limit: int, starting_after: str | None = None) -> Page:
    return paginate(_visible(principal), WebhookEndpoint.id, limit, starting_after)


def get_endpoint(principal: Principal, endpoint_id: str) -> WebhookEndpoint:
    endpoint = db.session.scalars(_visible(principal).where(WebhookEndpoint.id == endpoint_id)).first()
    if endpoint is None:
        raise NotFound(f"No such webhook endpoint: {endpoint_id!r}.")
    return endpoint


def update_endpoint(principal: Principal, endpoint_id: str, changes: Mapping[str, Any], adapters) -> WebhookEndpoint:
    """Change an endpoint, read under the lock its change needs (SQLite: the write lock, taken
    before the read; PostgreSQL: its row), so a concurrent change is seen, never overwritten."""
    write_lock()
    endpoint = db.session.scalars(locking(_visible(principal).where(WebhookEndpoint.id == endpoint_id),
                                          of=WebhookEndpoint).execution_options(populate_existing=True)).first()
    if endpoint is None:
        raise NotFound(f"No such webhook endpoint: {endpoint_id!r}.")
    if "url" in changes:
        endpoint.url = _checked_url(changes["url"], adapters.webhooks.allow_private)
    if "enabled_events" in changes:
        endpoint.enabled_events = sorted(set(changes["enabled_events"]))
    if "description" in changes:
        endpoint.description = changes["description"]
    if "metadata_" in changes:
        endpoint.metadata_ = changes["metadata_"] or {}
    db.session.flush()
    if "status" in changes and not transitions.set_endpoint_status(endpoint, changes["status"]):
        db.session.rollback()  # cannot happen under the lock; never answered as done
        raise InvalidTransition(f"Webhook endpoint {endpoint_id} changed meanwhile; read it and try again.")
    db.session.commit()
    return endpoint


def delete_endpoint(principal: Principal, endpoint_id: str, now: datetime) -> WebhookEndpoint:
    """Nothing more is sent to it; it disappears from the API (kept for its deliveries' history)."""
    endpoint = get_endpoint(principal, endpoint_id)
    endpoint.deleted_at = now
    db.session.commit()
    return endpoint


def rotate_secret(principal: Principal, endpoint_id: str, adapters) -> WithSecret:
    """A new secret, shown once; the previous one keeps signing too (deliveries carry both
    signatures) for PREVIOUS_SECRET_GRACE of real time, so receivers can switch without losing
    a delivery. A second rotation within that time retires the oldest secret at once."""
    endpoint = get_endpoint(principal, endpoint_id)
    secret = signing.new_secret()
    endpoint.previous_secret_sealed = endpoint.secret_sealed
    endpoint.previous_secret_expires_at = adapters.clocks.base.now() + PREVIOUS_SECRET_GRACE
    endpoint.secret_sealed = adapters.vault.seal(secret)
    db.session.commit()
    return WithSecret(endpoint, secret)


def list_deliveries(principal: Principal, endpoint_id: str, limit: int, starting_after: str | None = None,
                    status: str | None = None) -> Page:
    """Newest first, each with its attempts."""
    endpoint = get_endpoint(principal, endpoint_id)
    query = sa.select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return paginate(query, WebhookDelivery.id, limit, starting_after)


def resend_event(principal: Principal, event_id: str, endpoint_id: str | None, now: datetime) -> list[WebhookDelivery]:
    """Deliver an event again (a new delivery each, marked resend) to every enabled endpoint of
    the caller's that takes it, or to the one named."""
    event = get_event(principal, event_id)
    endpoints = db.session.scalars(_visible(principal).order_by(WebhookEndpoint.id)).all()
    if endpoint_id is not None:
        endpoints = [e for e in endpoints if e.id == endpoint_id]
        if not endpoints:
            raise NotFound(f"No such webhook endpoint: {endpoint_id!r}.")
        [endpoint] = endpoints
        if endpoint.status != "enabled":
            raise Conflict("This webhook endpoint is disabled: enable it first.", code="endpoint_disabled")
        if not subscribed(endpoint, event):
            raise Conflict(f"This webhook endpoint does not take {event.type} events.", code="endpoint_not_subscribed")
    targets = [e for e in endpoints if e.status == "enabled" and subscribed(e, event)]
    ids = queue_deliveries([(endpoint.id, event) for endpoint in targets], now, resend=True)
    db.session.commit()
    return db.session.scalars(sa.select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                              .order_by(WebhookDelivery.id)).all()
