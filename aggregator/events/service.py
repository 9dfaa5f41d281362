"""Writing events (in the caller's transaction: the outbox) and reading them back."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

import sqlalchemy as sa

from ..auth import Principal
from ..db import bulk_insert, db, json_for_bulk_insert, new_ordered_id
from ..errors import NotFound
from ..pagination import Page, paginate
from .models import Event


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to record: its type, the object it is about and the payload shown for it
    ({"object": snapshot, ...}), and the provider it concerns, if it concerns one only."""

    type: str
    object_id: str | None
    data: Mapping[str, Any]
    provider_id: str | None = None


def record(tenant_id: str, livemode: bool, created: datetime, events: Sequence[NewEvent]) -> list[str]:
    """Write `events` in the caller's transaction, so they exist exactly when the change they
    announce does (COPY on PostgreSQL: the close writes two per invoice). -> their ids."""
    if not events:
        return []
    as_json = json_for_bulk_insert()
    rows = [{"id": new_ordered_id("evt"), "tenant_id": tenant_id, "livemode": livemode, "type": e.type,
             "created": created, "object_id": e.object_id, "provider_id": e.provider_id,
             "data": as_json(e.data), "dispatched": False}
            for e in events]
    bulk_insert(Event.__table__, rows)
    return [row["id"] for row in rows]


def record_one(tenant_id: str, livemode: bool, created: datetime, event: NewEvent) -> str:
    return record(tenant_id, livemode, created, [event])[0]


def _visible(principal: Principal) -> sa.Select:
    """The caller's events: its tenant's in its mode; a provider key sees those about it only."""
    query = sa.select(Event).where(Event.tenant_id == principal.tenant_id, Event.livemode == principal.livemode)
    if principal.role == "provider":
        query = query.where(Event.provider_id == principal.provider_id)
    return query


def list_events(principal: Principal, limit: int, starting_after: str | None = None,
                type: str | None = None) -> Page:
    """Newest first. `type` is an event type, or a prefix ending in `.*` ("invoice.*")."""
    query = _visible(principal)
    if type and type.endswith(".*"):
        query = query.where(Event.type.startswith(type[:-1], autoescape=True))
    elif type:
        query = query.where(Event.type == type)
    return paginate(query, Event.id, limit, starting_after)


def get_event(principal: Principal, event_id: str) -> Event:
    event = db.session.scalars(_visible(principal).where(Event.id == event_id)).first()
    if event is None:
        raise NotFound(f"No such event: {event_id!r}.")
    return event
