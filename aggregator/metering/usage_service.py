"""A subscription's usage as its plan prices it: the quantity of each usage component over a
period (or so far in it), read from the store's rollups — shared by rating at the close, current
usage, the upcoming invoice and thresholds, so that all of them agree (docs/metering.md)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import lazyload

from .. import money
from ..accounts.keys import Principal
from ..accounts.service import tenant_settings
from ..catalog.models import Meter, Plan, PlanFee, UsageComponent
from ..catalog.pricing import Priced, price
from ..catalog.subscriptions_service import get_subscription
from ..catalog.usage_prices import price_model
from ..db import db, run
from ..errors import Conflict
from ..ingest.models import Bill
from ..periods import calendar as C
from ..periods.models import PeriodRecord
from . import aggregation as A
from .models import UsageCharge
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
        Plan.id.in_(ids)).order_by(Plan.id, PlanFee.position, UsageComponent.position).options(
        # what pricing needs is on these rows: the plan's fees, prices and parent load if asked
        # for (intake calls this per request: eager loads were most of its time)
        lazyload(Plan.fees), lazyload(Plan.parent), lazyload(PlanFee.prices),
        lazyload(PlanFee.components))).all()
    parent_ids = sorted({row[0].parent_component_id for row in rows if row[0].parent_component_id})
    parents = {c.id: c for c in db.session.scalars(sa.select(UsageComponent).where(
        UsageComponent.id.in_(parent_ids)))} if parent_ids else {}
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
    never = [m.id for m in meters.values() if m.reset == A.NEVER]
    timed = [m.id for m in meters.values() if m.aggregation == A.TIME_WEIGHTED]
    uniq = [m.id for m in meters.values() if m.aggregation == A.UNIQUE_COUNT]
    # time-weighted usage chains hours; the others need one row per dims, collapsed where the rows are
    hours = store.hours(subscription_ids, timed, period.start, until, [m for m in never if m in timed]) \
        if timed else {}
    rest = {m.id: m.aggregation for m in meters.values() if m.aggregation != A.TIME_WEIGHTED}
    totals = getattr(store, "totals", None)
    if rest and totals is not None:
        hours.update(totals(subscription_ids, rest, period.start, until, [m for m in never if m in rest]))
    elif rest:
        hours.update(store.hours(subscription_ids, sorted(rest), period.start, until, [m for m in never if m in rest]))
    return Usage(hours,
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


def priced(pc: PricedComponent, quantity: Fraction, models: dict | None = None) -> tuple[Priced, Priced | None]:
    """The component's price of `quantity`, and its parent's (the platform's share) if any.
    `models`: a cache of the components' parsed price models (component id -> model) kept by a
    caller that prices many subscriptions (rating). A negative quantity (more removed than
    added, e.g. seats) prices as none."""
    quantity = max(quantity, Fraction(0))
    own = price(_model(pc.component, pc.plan.currency, models), quantity)
    parent = price(_model(pc.parent, pc.plan.currency, models), quantity) if pc.parent else None
    return own, parent


def _model(component: UsageComponent, currency: str, models: dict | None):
    if models is None:
        return price_model(component.pricing, currency)
    key = (component.id, currency)
    if key not in models:
        models[key] = price_model(component.pricing, currency)
    return models[key]


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
            "period_end": period.end_at, "as_of": now, "closed": False, "currency": currency, "data": data}


# --- GET /v1/subscriptions/{id}/usage?period=… -------------------------------------------------

class PeriodNotRated(Conflict):
    code = "period_not_closed"


def rated_usage_of(principal: Principal, ref: str, start: date) -> dict[str, Any]:
    """What the close of the period starting on `start` rated of the subscription's usage: per
    usage charge (subscription, component) its quantity, tier breakdown, amount, platform fee and
    bill, read from the usage charges (never re-rated: the bill is what it is). The period must
    be closing or closed (its usage is rated in the close's first transaction)."""
    sub = get_subscription(principal, ref)
    record = db.session.get(PeriodRecord, (sub.tenant_id, sub.livemode, start))
    if record is None or record.status == "open":
        raise PeriodNotRated.on("period", f"The period {start.isoformat()} is not closed: its usage is rated at its "
                                          "close (without `period`: the usage so far).")
    c, b = UsageCharge.__table__.c, Bill.__table__.c
    rows = run(sa.select(c.bill_id, c.component_id, c.quantity, c.breakdown, c.amount, c.platform_fee, b.currency,
                         b.description)
               .join(Bill.__table__, b.id == c.bill_id)
               .where(c.subscription_id == sub.id, c.period_start == start).order_by(c.component_id)).all()
    components = {u.id: u for u in db.session.scalars(sa.select(UsageComponent).where(
        UsageComponent.id.in_(sorted({r.component_id for r in rows}))))} if rows else {}
    data = []
    for row in rows:
        component = components[row.component_id]
        meter = component.meter
        included = Fraction(component.pricing.get("included_units") or "0")
        quantity = Fraction(row.quantity)
        pct = A.percent_used(quantity, included)
        data.append({
            "component": component.id, "name": component.name, "meter": meter.code,
            "unit": component.pricing.get("unit") or meter.unit,
            "dimension": dict(component.dimension or {}), "aggregation": meter.aggregation,
            "quantity": A.format_quantity(quantity), "included_units": A.format_quantity(included),
            "percent_used": None if pct is None else A.format_quantity(pct, 2),
            "amount": money.format_amount(row.amount, row.currency),
            "thresholds": list(component.thresholds or []), "breakdown": list(row.breakdown or []),
            "platform_fee": None if row.platform_fee is None else money.format_amount(row.platform_fee, row.currency),
            "bill": row.bill_id, "description": row.description})
    return {"object": "subscription_usage", "subscription": sub.id, "period": start.isoformat(),
            "period_end": record.end_at, "as_of": record.end_at, "closed": True,
            "currency": rows[0].currency if rows else sub.plan.currency, "data": data}


def meters_by_id(ids: Iterable[str]) -> dict[str, Meter]:
    return {m.id: m for m in db.session.scalars(sa.select(Meter).where(Meter.id.in_(sorted(set(ids)))))}


