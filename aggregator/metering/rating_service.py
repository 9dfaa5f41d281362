"""Usage rated at the close: each (subscription, usage component) of a period becomes one bill
of that period — its quantity, tier breakdown and covered period on the invoice line — in the
close's first transaction, beside the plans' fees (catalog.rating_service), before any customer
is invoiced. Everything after the close takes it as any bill.

As of the period's end: usage is what the store holds for the period once it is closing (no
event enters a closing period: intake share-locks the period row), and the plan whose components
price it is the one the subscription was on last in the period, as known at its end (a plan
change recorded later does not reprice it). Idempotent: a bill's idempotency key and the usage
charge's unique key are (subscription, component, period)."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from .. import money
from ..accounts.models import TenantSettings
from ..catalog import rating
from ..catalog.models import Subscription, SubscriptionChange
from ..catalog.pricing import Priced, describe
from ..db import in_ids, insert_rows, new_id, run
from ..ingest.transitions import create_bills
from ..periods import calendar as C
from . import aggregation as A
from .models import UsageCharge
from .store import SqlUsageStore, UsageStore
from .usage_service import PricedComponent, components_of_plans, load_usage, priced, quantity_of

CHUNK = 2000


@dataclass
class UsageRatingReport:
    subscriptions: int = 0
    charges: int = 0
    bills_created: int = 0
    amounts: dict[str, int] = field(default_factory=dict)


def rate_usage(settings: TenantSettings, period: C.Period, store: UsageStore | None = None,
               chunk: int = CHUNK) -> UsageRatingReport:
    """Rate the period's usage of every subscription into bills of the period, in the caller's
    transaction (the close's, which marked the period closing)."""
    store = store or SqlUsageStore()
    report = UsageRatingReport()
    components: dict[str, list[PricedComponent]] = {}
    models: dict = {}  # the components' price models, parsed once
    for subs in _chunks(settings.tenant_id, settings.livemode, period, chunk):
        rated = rated_usage(settings, period, subs, store, components, models)
        report.subscriptions += len({r.subscription.id for r in rated})
        bills, charges = [], []
        for r in rated:
            bill, charge = _bill(settings, period, r)
            bills.append(bill)
            charges.append(charge)
            currency = r.priced.plan.currency
            report.amounts[currency] = report.amounts.get(currency, 0) + r.own.amount
        created = create_bills(bills)
        fresh = [c for c in charges if c["bill_id"] in created]
        if fresh:
            insert_rows(UsageCharge.__table__, fresh)
        report.charges += len(charges)
        report.bills_created += len(created)
    return report


@dataclass(frozen=True)
class RatedUsage:
    """One (subscription, usage component)'s usage in a period, priced: what its bill says."""

    subscription: Any  # a row: id, provider_id, customer_id
    priced: PricedComponent
    quantity: Fraction
    own: Priced
    parent: Priced | None  # the parent plan's price of the same quantity (the platform's share)
    description: str  # the invoice line


def rated_usage(settings: TenantSettings, period: C.Period, subs: Sequence, store: UsageStore,
                components: dict[str, list[PricedComponent]] | None = None,
                models: dict | None = None) -> list[RatedUsage]:
    """The usage of these subscriptions in `period`, as the store holds it now, priced by the
    plan each was on last in the period (as known at its end): one per (subscription, component)
    with a quantity or an amount. Shared by the close (rate_usage) and the upcoming invoice, so
    that both say the same. `components` caches plan id -> components across calls, `models`
    the components' parsed price models."""
    components = {} if components is None else components
    plans = _plans_at_end(subs, period)
    missing = {p for p in plans.values() if p not in components}
    if missing:
        components.update(components_of_plans(missing))
    rated = [s for s in subs if components.get(plans.get(s.id, ""))]
    if not rated:
        return []
    meters = {pc.meter.id: pc.meter for s in rated for pc in components[plans[s.id]]}
    usage = load_usage(store, [s.id for s in rated], meters.values(), period)
    out = []
    for sub in rated:
        for pc in components[plans[sub.id]]:
            # a level over time is held no longer than the subscription
            quantity = quantity_of(usage, sub.id, pc.component, pc.meter, period, sub.ends_at)
            own, parent = priced(pc, quantity, models)
            if not own.quantity and not own.amount and not (parent and parent.amount):
                continue  # (a negative net, e.g. seats, prices as none)
            out.append(RatedUsage(sub, pc, own.quantity, own, parent, line_description(pc, own, settings.locale)))
    return out


def upcoming_usage(settings: TenantSettings, period: C.Period, subscription_ids: Sequence[str],
                   store: UsageStore | None = None) -> list[RatedUsage]:
    """The usage the close of `period` would rate for these subscriptions if no more usage came:
    the events stored so far (a time-weighted meter's last value held to the period's end), of
    the subscriptions the close rates (active at some moment of the period)."""
    if not subscription_ids:
        return []
    s = Subscription.__table__.c
    subs = run(sa.select(s.id, s.provider_id, s.customer_id, s.plan_id, s.ends_at).where(
        in_ids(s.id, sorted(subscription_ids)), *_rated_in(period)).order_by(s.id)).all()
    return rated_usage(settings, period, subs, store or SqlUsageStore())


def line_description(pc: PricedComponent, own: Priced, locale: str | None) -> str:
    """The invoice line of a usage charge ("Bandwidth — 1,340 GB: 100 GB included, …")."""
    return describe(own, pc.component.name, pc.unit, pc.plan.currency, locale or "en",
                    max(pc.meter.decimals, 3 if pc.meter.aggregation == A.TIME_WEIGHTED else 0))


def _bill(settings: TenantSettings, period: C.Period, rated: RatedUsage):
    sub, pc, quantity, own, parent = rated.subscription, rated.priced, rated.quantity, rated.own, rated.parent
    currency = pc.plan.currency
    key = f"use:{sub.id}:{pc.component.id}:{period.start}"
    bill_id = new_id("bill")
    bill = {
        "id": bill_id, "tenant_id": settings.tenant_id, "livemode": settings.livemode,
        "provider_id": sub.provider_id, "customer_id": sub.customer_id, "idempotency_key": key,
        "fingerprint": hashlib.sha256(key.encode()).digest(),
        "amount": money.check_storable(own.amount, currency), "currency": currency,
        "revenue_share": pc.fee.revenue_share or parent is not None, "description": rated.description[:1000],
        "service_period_start": period.start, "service_period_end": period.end, "metadata": {},
        "period_start": period.start, "received_at": period.end_at, "source": "usage",
        "platform_fee": None if parent is None else parent.amount,
    }
    charge = {
        "bill_id": bill_id, "subscription_id": sub.id, "component_id": pc.component.id,
        "period_start": period.start, "quantity": A.format_quantity(quantity, 9),
        "breakdown": [{"units": A.format_quantity(s.units, 9), "unit_amount": money.format_unit_amount(
            s.unit_amount, currency), "flat_amount": money.format_unit_amount(s.flat_amount, currency),
            "amount": money.format_unit_amount(s.amount, currency)} for s in own.steps],
        "amount": own.amount, "platform_fee": None if parent is None else parent.amount,
    }
    return bill, charge


def _plans_at_end(subs: Sequence, period: C.Period) -> dict[str, str]:
    """subscription id -> the plan it was on last in the period, as known at the period's end."""
    ch = SubscriptionChange.__table__.c
    changes: dict[str, list[rating.Change]] = {}
    for row in run(sa.select(ch.subscription_id, ch.kind, ch.at, ch.recorded_at, ch.plan_id, ch.quantity)
                   .where(in_ids(ch.subscription_id, [s.id for s in subs])).order_by(ch.subscription_id, ch.seq)):
        changes.setdefault(row.subscription_id, []).append(
            rating.Change(row.kind, row.at, row.recorded_at, row.plan_id, row.quantity))
    out = {}
    for sub in subs:
        last = None
        for phase in rating.phases(changes.get(sub.id, ()), period.end_at):
            if phase.starts_at < period.end_at and (phase.ends_at is None or phase.ends_at > period.start_at):
                last = phase
        if last is not None:
            out[sub.id] = last.plan_id
    return out


def _chunks(tenant_id: str, livemode: bool, period: C.Period, chunk: int) -> Iterator[list]:
    """The subscriptions active at some moment of the period (as now known), `chunk` at a time."""
    s = Subscription.__table__.c
    after = ""
    while True:
        rows = run(sa.select(s.id, s.provider_id, s.customer_id, s.plan_id, s.ends_at).where(
            s.tenant_id == tenant_id, s.livemode == livemode, s.id > after, *_rated_in(period))
            .order_by(s.id).limit(chunk)).all()
        if not rows:
            return
        yield rows
        after = rows[-1].id


def _rated_in(period: C.Period) -> tuple[sa.ColumnElement[bool], ...]:
    """The subscriptions whose usage a period's close rates: active at some moment of it (as now
    known)."""
    s = Subscription.__table__.c
    return (s.created_at <= period.end_at, s.starts_at < period.end_at,
            sa.or_(s.ends_at.is_(None), s.ends_at > period.start_at))


def usage_charges_of(bill_ids: Sequence[str]) -> dict[str, sa.Row]:
    c = UsageCharge.__table__.c
    return {row.bill_id: row for row in run(sa.select(UsageCharge.__table__).where(in_ids(c.bill_id, bill_ids)))}


