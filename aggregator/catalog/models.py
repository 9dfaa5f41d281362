"""The catalog's tables: environments, plans (with their fees, versioned prices and grants),
subscriptions (with their append-only history) and the charges rated from them (docs/plans.md)."""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, id_column

PLATFORM = "platform"  # the owner of a tenant's parent plans (else the provider's id)
ALL_PROVIDERS = "*"  # a grant to every provider
DEFAULT_ENVIRONMENTS = ("production", "staging")


class Environment(db.Model):
    """An environment a tenant names (production, staging, …). A tenant that named none has the
    defaults."""

    __tablename__ = "environments"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Plan(db.Model):
    __tablename__ = "plans"

    id: Mapped[str] = id_column("plan")
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    owner: Mapped[str] = mapped_column(sa.String(40))  # PLATFORM or the provider's id
    provider_id: Mapped[str | None] = mapped_column(sa.String(40))
    code: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.String(1000), default="")
    currency: Mapped[str] = mapped_column(sa.String(3))
    parent_plan_id: Mapped[str | None] = mapped_column(sa.ForeignKey("plans.id"))
    environments: Mapped[list] = mapped_column(sa.JSON)
    unbilled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    max_subscriptions_per_customer: Mapped[int | None] = mapped_column(sa.Integer)
    requires_payment_method: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    fees: Mapped[list[PlanFee]] = relationship(order_by="PlanFee.position", lazy="selectin",
                                               foreign_keys="PlanFee.plan_id")
    parent: Mapped[Plan | None] = relationship(remote_side="Plan.id", lazy="joined")

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "owner", "code"),
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.CheckConstraint("(owner = 'platform') = (provider_id IS NULL)", name="owner"),
        sa.CheckConstraint("max_subscriptions_per_customer IS NULL OR max_subscriptions_per_customer > 0",
                           name="max_subscriptions"),
    )


class PlanFee(db.Model):
    """A named recurring fee of a plan (platformOS: "Usage Fee name: Hosting")."""

    __tablename__ = "plan_fees"

    id: Mapped[str] = id_column("fee")
    plan_id: Mapped[str] = mapped_column(sa.ForeignKey("plans.id"))
    position: Mapped[int] = mapped_column(sa.Integer)
    name: Mapped[str] = mapped_column(sa.String(200))
    timing: Mapped[str] = mapped_column(sa.String(16))
    revenue_share: Mapped[bool] = mapped_column(sa.Boolean, default=True)
    parent_fee_id: Mapped[str | None] = mapped_column(sa.ForeignKey("plan_fees.id"))

    prices: Mapped[list[FeePrice]] = relationship(order_by="(FeePrice.effective_from, FeePrice.recorded_at)",
                                                  lazy="selectin")
    components: Mapped[list[UsageComponent]] = relationship(order_by="UsageComponent.position", lazy="selectin",
                                                            foreign_keys="UsageComponent.fee_id")

    __table_args__ = (
        sa.UniqueConstraint("plan_id", "name"),
        sa.UniqueConstraint("plan_id", "position"),
        sa.CheckConstraint("timing IN ('in_advance', 'in_arrears')", name="timing"),
    )


class FeePrice(db.Model):
    """A fee's price from a period on (rating.ALWAYS: its first), as recorded at an instant: a
    price change never rewrites a period already closing or closed, and rating as of an instant
    sees only the prices recorded by then."""

    __tablename__ = "fee_prices"

    fee_id: Mapped[str] = mapped_column(sa.ForeignKey("plan_fees.id"), primary_key=True)
    effective_from: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    amount: Mapped[int] = mapped_column(sa.BigInteger)

    __table_args__ = (sa.CheckConstraint("amount >= 0", name="amount"),)


class PlanGrant(db.Model):
    """A parent plan granted to a provider (or to all: ALL_PROVIDERS)."""

    __tablename__ = "plan_grants"

    plan_id: Mapped[str] = mapped_column(sa.ForeignKey("plans.id"), primary_key=True)
    grantee: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Subscription(db.Model):
    """A customer's instance of a provider's plan. Its columns plan, quantity, starts_at and
    ends_at are its history's current state (subscription_changes holds the history)."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = id_column("sub")
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    provider_id: Mapped[str] = mapped_column(sa.String(40))
    customer_id: Mapped[str] = mapped_column(sa.String(40))
    plan_id: Mapped[str] = mapped_column(sa.ForeignKey("plans.id"))
    environment: Mapped[str] = mapped_column(sa.String(64))
    external_billing_id: Mapped[str | None] = mapped_column(sa.String(255))
    quantity: Mapped[int] = mapped_column(sa.Integer)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(sa.Integer)  # the last change's seq

    plan: Mapped[Plan] = relationship(lazy="joined", innerjoin=True)
    changes: Mapped[list[SubscriptionChange]] = relationship(order_by="SubscriptionChange.seq", lazy="selectin")

    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "customer_id"],
                                ["customers.tenant_id", "customers.livemode", "customers.id"]),
        sa.UniqueConstraint("provider_id", "external_billing_id"),
        sa.CheckConstraint("quantity > 0", name="quantity"),
        sa.Index("ix_subscriptions_scope", "tenant_id", "livemode", "id"),
        sa.Index("ix_subscriptions_customer", "customer_id", "plan_id"),
    )

    def status(self, now: datetime) -> str:
        """scheduled (starts later), active, or canceled (ended): derived from its instants and the
        clock, so it needs no due work to change."""
        if self.ends_at is not None and self.ends_at <= now:
            return "canceled"
        return "scheduled" if now < self.starts_at else "active"


class SubscriptionChange(db.Model):
    """One entry of a subscription's append-only history (rating.Change)."""

    __tablename__ = "subscription_changes"

    subscription_id: Mapped[str] = mapped_column(sa.ForeignKey("subscriptions.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    plan_id: Mapped[str | None] = mapped_column(sa.ForeignKey("plans.id"))
    quantity: Mapped[int | None] = mapped_column(sa.Integer)

    __table_args__ = (sa.CheckConstraint("kind IN ('start', 'change', 'end')", name="kind"),)


class SubscriptionCharge(db.Model):
    """A bill rated from a subscription: what it covers and how it was rated. Unique per
    (subscription, fee, covered period, billing period): a close rates each once."""

    __tablename__ = "subscription_charges"

    bill_id: Mapped[str] = mapped_column(sa.ForeignKey("bills.id"), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(sa.ForeignKey("subscriptions.id"))
    fee_id: Mapped[str] = mapped_column(sa.ForeignKey("plan_fees.id"))
    plan_id: Mapped[str] = mapped_column(sa.ForeignKey("plans.id"))
    period_start: Mapped[date] = mapped_column(sa.Date)  # the period whose close billed it
    covered_start: Mapped[date] = mapped_column(sa.Date)
    covered_end: Mapped[date] = mapped_column(sa.Date)
    kind: Mapped[str] = mapped_column(sa.String(16))
    units: Mapped[int] = mapped_column(sa.Integer)
    days: Mapped[int] = mapped_column(sa.Integer)
    period_days: Mapped[int] = mapped_column(sa.Integer)
    quantity: Mapped[int] = mapped_column(sa.Integer)
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    platform_fee: Mapped[int | None] = mapped_column(sa.BigInteger)

    __table_args__ = (
        # named: the convention's name would pass PostgreSQL's 63 characters
        sa.UniqueConstraint("subscription_id", "fee_id", "covered_start", "period_start",
                            name="uq_subscription_charges_key"),
        sa.CheckConstraint("kind IN ('in_advance', 'in_arrears', 'adjustment')", name="kind"),
    )


class Meter(db.Model):
    """What a tenant measures (docs/metering.md): how usage events of one kind aggregate into a
    quantity per period. A tenant's (admin's); providers read them and send events to them."""

    __tablename__ = "meters"

    id: Mapped[str] = id_column("mtr")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    code: Mapped[str] = mapped_column(sa.String(100))
    name: Mapped[str] = mapped_column(sa.String(200))
    unit: Mapped[str] = mapped_column(sa.String(40))
    field: Mapped[str | None] = mapped_column(sa.String(100))  # the property holding the value (None: `value`)
    aggregation: Mapped[str] = mapped_column(sa.String(16))
    reset: Mapped[str] = mapped_column(sa.String(8))  # period | never
    decimals: Mapped[int] = mapped_column(sa.SmallInteger)  # places a value may have (stored scaled)
    dimensions: Mapped[list] = mapped_column(sa.JSON)  # property names that group usage
    first_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # set by the first event it receives
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "code"),
        sa.CheckConstraint("aggregation IN ('count', 'sum', 'max', 'latest', 'unique_count', 'time_weighted', "
                           "'hourly_max')", name="aggregation"),
        sa.CheckConstraint("reset IN ('period', 'never')", name="reset"),
        sa.CheckConstraint("decimals BETWEEN 0 AND 9", name="decimals"),
    )


class UsageComponent(db.Model):
    """A price on usage within a plan's fee: a meter (optionally one dimension value), a pricing
    model (catalog.pricing) and its thresholds. Rated at each close into one bill per
    subscription. `pricing` holds the model as the API takes it (decimal strings)."""

    __tablename__ = "usage_components"

    id: Mapped[str] = id_column("uc")
    fee_id: Mapped[str] = mapped_column(sa.ForeignKey("plan_fees.id"))
    position: Mapped[int] = mapped_column(sa.Integer)
    meter_id: Mapped[str] = mapped_column(sa.ForeignKey("meters.id"))
    name: Mapped[str] = mapped_column(sa.String(200))
    dimension: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # {property: value}: the usage it prices
    pricing: Mapped[dict] = mapped_column(sa.JSON)
    thresholds: Mapped[list] = mapped_column(sa.JSON, default=list)  # % of included units
    parent_component_id: Mapped[str | None] = mapped_column(sa.ForeignKey("usage_components.id"))

    meter: Mapped[Meter] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (sa.UniqueConstraint("fee_id", "position"),)
