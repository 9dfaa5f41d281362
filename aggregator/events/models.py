from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db


class Event(db.Model):
    """One announced change, written in the same transaction as the change (the outbox).

    `seq` orders events as they were written and is what the dispatcher works through;
    `id` (evt_…) is the public, stable identifier. `created` is the instant the change happened
    in the tenant's time (its test clock in test mode; the due instant of due work). `data` is
    the event's payload as the API and webhooks show it ({"object": snapshot, …}).
    `provider_id` names the provider an event is about (a provider key sees only those)."""

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    id: Mapped[str] = mapped_column(sa.String(40), unique=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    type: Mapped[str] = mapped_column(sa.String(64))
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    object_id: Mapped[str | None] = mapped_column(sa.String(40))
    provider_id: Mapped[str | None] = mapped_column(sa.String(40))
    data: Mapped[dict] = mapped_column(sa.JSON)
    # Fanned out to its deliveries (webhooks, emails) yet? The dispatcher claims those that are not.
    dispatched: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())

    __table_args__ = (
        sa.Index("ix_events_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_events_provider", "tenant_id", "livemode", "provider_id", "id"),
        sa.Index("ix_events_object", "object_id"),
        sa.Index("ix_events_undispatched", "seq", postgresql_where=sa.text("NOT dispatched"),
                 sqlite_where=sa.text("NOT dispatched")),
    )
