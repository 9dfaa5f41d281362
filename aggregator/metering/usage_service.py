"""A subscription's usage as its plan prices it: the quantity of each usage component over a
period (or so far in it), read from the store's rollups — shared by rating at the close, current
usage, the upcoming invoice and thresholds, so that all of them agree (docs/metering.md)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from .. import money
from ..accounts.keys import Principal
from ..accounts.service import tenant_settings
from ..catalog.models import Meter, Plan, PlanFee, UsageComponent
from ..catalog.pricing import Priced, price
from ..catalog.subscriptions_service import get_subscription
from ..catalog.usage_prices import price_model
from ..db import db
from ..periods import calendar as C
from . import aggregation as A
from .store import SqlUsageStore, UsageStore


@dataclass(frozen=True)
class PricedComponent:
    """A component and its parent's (the platform's price of the same quantity), as rating
    needs them."""

    component: UsageComponent
    fee: PlanFee
    plan: Plan
    meter: Meter
    parent: UsageComponent | None

    @property
    def unit(self) -> str:
        """The unit its invoice line names: the component's own (a dimension's, e.g. core-hours
        beside GB-hours of one meter), else the meter's."""
        return self.component.pricing.get("unit") or self.meter.unit


def components_of_plans(plan_ids: Iterable[str]) -> dict[str, list[PricedComponent]]:
    """plan id -> its usage components (with their fees, meters and parent components)."""
    ids = sorted(set(plan_ids))
    if not ids:
        return {}
    out: dict[str, list[PricedComponent]] = {plan_id: [] for plan_id in ids}
    rows = db.session.execute(sa.select(UsageComponent, PlanFee, Plan).join(
        PlanFee, PlanFee.id == UsageComponent.fee_id).join(Plan, Plan.id == PlanFee.plan_id).where(
        Plan.id.in_(ids)).order_by(Plan.id, PlanFee.position, UsageComponent.position)).all()
    parents = {c.id: c for c in db.session.scalars(sa.select(UsageComponent).where(UsageComponent.id.in_(
        sorted({row[0].parent_component_id for row in rows if row[0].parent_component_id}))))}
    for component, fee, plan in rows:
        out[plan.id].append(PricedComponent(component, fee, plan, component.meter,
                                            parents.get(component.parent_component_id or "")))
    return out


@dataclass(frozen=True)
class Usage:
    """What the store holds of some subscriptions' usage of some meters in a period."""

    hours: Mapping[tuple[str, str], list[A.Hour]]
    carried: Mapping[tuple[str, str], dict[str, int]]
    uniques: Mapping[tuple[str, str], list[tuple[str, str]]]


def load_usage(store: UsageStore, subscription_ids: Sequence[str], meters: Iterable[Meter], period: C.Period,
               until: datetime | None = None) -> Usage:
    meters = {m.id: m for m in meters}
    if not subscription_ids or not meters:
        return Usage({}, {}, {})
    ids = sorted(meters)
    never = [m.id for m in meters.values() if m.reset == A.NEVER]
    timed = [m.id for m in meters.values() if m.aggregation == A.TIME_WEIGHTED]
    uniq = [m.id for m in meters.values() if m.aggregation == A.UNIQUE_COUNT]
    return Usage(store.hours(subscription_ids, ids, period.start, until, never),
                 store.carried(subscription_ids, timed, period.start) if timed else {},
                 store.uniques(subscription_ids, uniq, period.start, [m for m in never if m in uniq]) if uniq else {})


def quantity_of(usage: Usage, subscription_id: str, component: UsageComponent, meter: Meter, period: C.Period,
                until: datetime | None = None) -> Fraction:
    """The component's quantity over the period, or up to `until` if earlier (now; the
    subscription's end: a level over time is held no longer than the subscription)."""
    key = (subscription_id, meter.id)
    end = period.end_at if until is None else min(until, period.end_at)
    return A.component_quantity(meter.aggregation, meter.decimals, component.dimension or {},
                                usage.hours.get(key, []), start_at=period.start_at, end_at=end,
                                carried=usage.carried.get(key), uniques=usage.uniques.get(key, ()))


def priced(pc: PricedComponent, quantity: Fraction) -> tuple[Priced, Priced | None]:
    """The component's price of `quantity`, and its parent's (the platform's share) if any. A
    negative quantity (more removed than added, e.g. seats) prices as none."""
    quantity = max(quantity, Fraction(0))
    own = price(price_model(pc.component.pricing, pc.plan.currency), quantity)
    parent = price(price_model(pc.parent.pricing, pc.plan.currency), quantity) if pc.parent else None
    return own, parent


# --- GET /v1/subscriptions/{id}/usage ----------------------------------------------------------

def current_usage(principal: Principal, ref: str, now: datetime, store: UsageStore | None = None) -> dict[str, Any]:
    """Per usage component of the subscription's plan: the quantity so far in the period of
    `now`, the included units, % used and the amount so far."""
    store = store or SqlUsageStore()
    sub = get_subscription(principal, ref)
    settings = tenant_settings(sub.tenant_id, sub.livemode)
    period = C.period_containing(now, settings.period_anchor_day, settings.timezone)
    components = components_of_plans([sub.plan_id]).get(sub.plan_id, [])
    usage = load_usage(store, [sub.id], [pc.meter for pc in components], period, now)
    data = []
    currency = sub.plan.currency
    for pc in components:
        q = quantity_of(usage, sub.id, pc.component, pc.meter, period, min(now, sub.ends_at or now))
        own, _ = priced(pc, q)
        included = Fraction(pc.component.pricing.get("included_units") or "0")
        pct = A.percent_used(q, included)
        data.append({
            "component": pc.component.id, "name": pc.component.name, "meter": pc.meter.code, "unit": pc.unit,
            "dimension": dict(pc.component.dimension or {}), "aggregation": pc.meter.aggregation,
            "quantity": A.format_quantity(q), "included_units": A.format_quantity(included),
            "percent_used": None if pct is None else A.format_quantity(pct, 2),
            "amount": money.format_amount(own.amount, currency),
            "thresholds": list(pc.component.thresholds or []),
        })
    return {"object": "subscription_usage", "subscription": sub.id, "period": period.start.isoformat(),
            "period_end": period.end_at, "as_of": now, "currency": currency, "data": data}


def meters_by_id(ids: Iterable[str]) -> dict[str, Meter]:
    return {m.id: m for m in db.session.scalars(sa.select(Meter).where(Meter.id.in_(sorted(set(ids)))))}


