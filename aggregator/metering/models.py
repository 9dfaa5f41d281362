"""Metering's tables (docs/metering.md): raw usage events (partitioned by period on PostgreSQL),
their hourly rollups, the distinct values a unique_count meter saw, the thresholds crossed and
the usage charges rated at a close."""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db, id_column


class UsageEvent(db.Model):
    """One usage event as its provider sent it. `value` is scaled by 10^meter.decimals (exact
    integers); `dims` is the key of its dimension values ("" when the meter has none). The
    primary key leads with the period: on PostgreSQL the table is partitioned by period_start
    (one partition a month), and (provider, event id) is unique within a period."""

    __tablename__ = "usage_events"

    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    subscription_id: Mapped[str] = mapped_column(sa.String(40))
    meter_id: Mapped[str] = mapped_column(sa.String(40))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    value: Mapped[int] = mapped_column(sa.BigInteger)
    dims: Mapped[str] = mapped_column(sa.String(500))
    properties: Mapped[dict] = mapped_column(sa.JSON)
    fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.Index("ix_usage_events_subscription", "subscription_id", "meter_id", "timestamp"),
        sa.Index("ix_usage_events_provider_event", "provider_id", "event_id"),
    )


class UsageRollup(db.Model):
    """The events of one (subscription, meter, dimension values, period, UTC hour), aggregated
    as they arrive: what rating, current usage and the export read instead of raw events.
    `tw_inner` is the time-weighted integral (value × milliseconds) between the hour's own events,
    `first_*`/`last_*` its first and last sample: hours chain into a period's integral."""

    __tablename__ = "usage_rollups"

    subscription_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    meter_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    dims: Mapped[str] = mapped_column(sa.String(500), primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    events: Mapped[int] = mapped_column(sa.BigInteger)
    total: Mapped[int] = mapped_column(sa.BigInteger)
    maximum: Mapped[int] = mapped_column(sa.BigInteger)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_value: Mapped[int] = mapped_column(sa.BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_value: Mapped[int] = mapped_column(sa.BigInteger)
    tw_inner: Mapped[int] = mapped_column(sa.BigInteger, default=0)

    __table_args__ = (sa.Index("ix_usage_rollups_period", "tenant_id", "livemode", "period_start"),)


class UsageUnique(db.Model):
    """A distinct value a unique_count meter saw for a subscription in a period."""

    __tablename__ = "usage_uniques"

    subscription_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    meter_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    dims: Mapped[str] = mapped_column(sa.String(500), primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(255), primary_key=True)


class ThresholdCrossing(db.Model):
    """A usage threshold reached: once per (subscription, component, threshold, period)."""

    __tablename__ = "usage_thresholds_reached"

    subscription_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    component_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    threshold: Mapped[int] = mapped_column(sa.SmallInteger, primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    reached_at: Mapped[datetime] = mapped_column(UTCDateTime)
    quantity: Mapped[str] = mapped_column(sa.String(60))


class UsageCharge(db.Model):
    """A bill rated from a subscription's usage of one component in one period: once per
    (subscription, component, period)."""

    __tablename__ = "usage_charges"

    bill_id: Mapped[str] = mapped_column(sa.ForeignKey("bills.id"), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(sa.String(40))
    component_id: Mapped[str] = mapped_column(sa.ForeignKey("usage_components.id"))
    period_start: Mapped[date] = mapped_column(sa.Date)
    quantity: Mapped[str] = mapped_column(sa.String(60))  # exact, as a decimal or fraction string
    breakdown: Mapped[list] = mapped_column(sa.JSON)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    platform_fee: Mapped[int | None] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.UniqueConstraint("subscription_id", "component_id", "period_start",
                                          name="uq_usage_charges_key"),)


class UsageExport(db.Model):
    """A closed period's usage export to write to the storage directory: queued once by the
    close's finishing transaction (unique per tenant, mode and period), claimed by a worker
    with a lease, written atomically, then marked written (docs/metering.md, Usage export)."""

    __tablename__ = "usage_exports"

    id: Mapped[str] = id_column("uexp")
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    period_start: Mapped[date] = mapped_column(sa.Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(1000))
    written_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rows: Mapped[int | None] = mapped_column(sa.BigInteger)
    csv_path: Mapped[str | None] = mapped_column(sa.String(300))
    parquet_path: Mapped[str | None] = mapped_column(sa.String(300))

    __table_args__ = (sa.UniqueConstraint("tenant_id", "livemode", "period_start", name="uq_usage_exports_period"),
                      sa.Index("ix_usage_exports_written", "written_at"))
