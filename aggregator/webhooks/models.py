from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db


class WebhookEndpoint(db.Model):
    """A URL to which a tenant's events (in one mode) are delivered; a provider's endpoint
    (provider_id set) receives only the events about that provider. Its signing secret is
    stored sealed (aggregator.vault); after a rotation the previous one signs too, until
    `previous_secret_expires_at` (real time)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    provider_id: Mapped[str | None] = mapped_column(sa.String(40))
    url: Mapped[str] = mapped_column(sa.String(2048))
    description: Mapped[str | None] = mapped_column(sa.String(500))
    enabled_events: Mapped[list] = mapped_column(sa.JSON)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="enabled", server_default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(1000))
    secret_sealed: Mapped[str] = mapped_column(sa.Text)
    previous_secret_sealed: Mapped[str | None] = mapped_column(sa.Text)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Deleted endpoints are kept (their deliveries and attempts refer to them) but never shown or used.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # a provider's endpoint belongs to a provider of the same tenant and mode
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
        sa.CheckConstraint("status IN ('enabled', 'disabled')", name="status"),
        sa.Index("ix_webhook_endpoints_scope", "tenant_id", "livemode", "id"),
    )


class WebhookDelivery(db.Model):
    """One event to deliver to one endpoint: pending until a 2xx answer (delivered) or until
    the retry schedule runs out (failed). The fan-out makes at most one per (endpoint, event);
    a resend makes another (`resend`). Claimed by a worker with a lease (`locked_until`)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)  # ordered: creation order
    endpoint_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[str] = mapped_column(sa.ForeignKey("events.id"))
    event_type: Mapped[str] = mapped_column(sa.String(64))
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    resend: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    status: Mapped[str] = mapped_column(sa.String(16), default="pending", server_default="pending")
    attempt_count: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    attempts: Mapped[list["WebhookAttempt"]] = relationship(order_by="WebhookAttempt.attempted_at",
                                                            lazy="selectin", viewonly=True)

    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        # the fan-out queues an event for an endpoint once (a resend adds its own row)
        sa.Index("uq_webhook_deliveries_fan_out", "endpoint_id", "event_id", unique=True,
                 postgresql_where=sa.text("NOT resend"), sqlite_where=sa.text("NOT resend")),
        sa.Index("ix_webhook_deliveries_ready", "next_attempt_at", "id",
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
        sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )


class WebhookAttempt(db.Model):
    """One POST of a delivery: when, the answer's status code (None: no answer), how long, and
    what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(sa.ForeignKey("webhook_deliveries.id"))
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    duration_ms: Mapped[int] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.String(500))

    __table_args__ = (sa.Index("ix_webhook_attempts_delivery", "delivery_id", "attempted_at"),)
