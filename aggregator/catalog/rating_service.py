"""Rating at the close: every subscription that a period's close bills becomes bills (one per
subscription, fee, covered period and billing period), in the close's first transaction, before
any customer is invoiced: the close then invoices them with the providers' other bills, and
everything after it (charging, payouts, the books) takes them as it takes any bill.

The rules are pure (`rating.py`); this reads the rows they need, a chunk of subscriptions at a
time (flat memory), and writes the bills and their charges. Idempotent: each bill's idempotency
key and each charge's unique key is (subscription, fee, covered period, billing period), and the
close rates a period only in the transaction that marks it closing."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from .. import money
from ..accounts.models import TenantSettings, TrialChange
from ..db import in_ids, insert_rows, new_id, run
from ..ingest.models import Bill
from ..ingest.transitions import create_bills
from ..periods import calendar as C
from ..periods.service import ensure_period_row
from . import rating
from .models import FeePrice, Plan, PlanFee, Subscription, SubscriptionChange, SubscriptionCharge, UsageComponent

CHUNK = 5000  # subscriptions read, rated and written at a time


@dataclass
class RatingReport:
    subscriptions: int = 0
    charges: int = 0
    bills_created: int = 0
    amounts: dict[str, int] = field(default_factory=dict)  # currency -> Σ amount


@dataclass(frozen=True)
class LoadedCatalog:
    """The tenant's plans as rating needs them, with what the bills show."""

    catalog: rating.Catalog
    plans: dict[str, sa.Row]  # plan id -> (id, currency, name, unbilled): what its bills show
    fee_plan: dict[str, str]  # fee id -> plan id
    fee_revenue_share: dict[str, bool]


def load_catalog(tenant_id: str, livemode: bool, subscription_ids: Sequence[str] | None = None) -> LoadedCatalog:
    """Every plan of the tenant and mode with its fees and prices (a price list: small); with
    `subscription_ids`, only the plans their histories name and those plans' parents (what rating
    these few needs: the upcoming invoice, whatever the size of the tenant's catalog)."""
    p, f, pr = Plan.__table__.c, PlanFee.__table__.c, FeePrice.__table__.c
    tenant_plans = [p.tenant_id == tenant_id, p.livemode == livemode]
    if subscription_ids is not None:
        ch = SubscriptionChange.__table__.c
        named = sa.select(ch.plan_id).where(in_ids(ch.subscription_id, subscription_ids), ch.plan_id.is_not(None))
        parents = sa.select(p.parent_plan_id).where(p.id.in_(named), p.parent_plan_id.is_not(None))
        tenant_plans.append(sa.or_(p.id.in_(named), p.id.in_(parents)))
    plans = {plan.id: plan for plan in run(sa.select(p.id, p.currency, p.name, p.unbilled).where(*tenant_plans))}
    fees: dict[str, list[rating.Fee]] = {}
    fee_plan, share = {}, {}
    metered = set(run(sa.select(UsageComponent.__table__.c.fee_id).distinct()
                      .join_from(UsageComponent.__table__, PlanFee.__table__, f.id == UsageComponent.__table__.c.fee_id)
                      .join(Plan.__table__, p.id == f.plan_id).where(*tenant_plans)).scalars())
    # joined to the tenant's plans rather than = ANY(their ids): no array of every id to send and probe
    for row in run(sa.select(f.id, f.plan_id, f.name, f.timing, f.parent_fee_id, f.revenue_share)
                   .join_from(PlanFee.__table__, Plan.__table__, p.id == f.plan_id).where(*tenant_plans)
                   .order_by(f.plan_id, f.position)):
        fees.setdefault(row.plan_id, []).append(rating.Fee(row.id, row.plan_id, row.name, row.timing,
                                                           row.parent_fee_id, row.id in metered))
        fee_plan[row.id], share[row.id] = row.plan_id, bool(row.revenue_share)
    prices: dict[str, list[rating.Price]] = {}
    for row in run(sa.select(pr.fee_id, pr.effective_from, pr.recorded_at, pr.amount)
                   .join_from(FeePrice.__table__, PlanFee.__table__, f.id == pr.fee_id)
                   .join(Plan.__table__, p.id == f.plan_id).where(*tenant_plans)):
        prices.setdefault(row.fee_id, []).append(rating.Price(row.effective_from, row.recorded_at, row.amount))
    unbilled = frozenset(plan_id for plan_id, plan in plans.items() if plan.unbilled)
    return LoadedCatalog(rating.Catalog(fees, prices, unbilled), plans, fee_plan, share)


def rate_period(settings: TenantSettings, period: C.Period, chunk: int = CHUNK) -> RatingReport:
    """Rate every subscription the close of `period` bills into bills of that period, in the
    caller's transaction (the close's, which marked the period closing: no change into it can be
    recorded any more). As of the period's end."""
    tenant_id, livemode = settings.tenant_id, settings.livemode
    following = C.next_period(period, settings.period_anchor_day, settings.timezone)
    report = RatingReport()
    # The next period's row first, before the rated rows take key-share locks on customers and
    # subscriptions: a change recorded in that period claims its row, then locks those rows; the
    # other order would let the two wait for each other.
    if _continues(tenant_id, livemode, following):
        ensure_period_row(tenant_id, livemode, following)  # its close is due work at its end
    loaded: LoadedCatalog | None = None
    for subs in _chunks(tenant_id, livemode, period, following, chunk):
        if loaded is None:
            loaded = load_catalog(tenant_id, livemode)
        report.subscriptions += len(subs)
        charges = charges_of(subs, loaded, period, following, settings.timezone)
        _store(settings, period, charges, subs, loaded, report)
    return report


def _continues(tenant_id: str, livemode: bool, following: C.Period) -> bool:
    """Whether a subscription runs into the following period or starts later (the following
    period's close then rates it, or keeps the chain of closes going until it starts)."""
    s = Subscription.__table__.c
    return run(sa.select(sa.exists().where(
        s.tenant_id == tenant_id, s.livemode == livemode,
        sa.or_(s.ends_at.is_(None), s.ends_at > following.start_at)))).scalar()


def charges_of(subs: Sequence[Subscription], loaded: LoadedCatalog, period: C.Period, following: C.Period,
               tz: str) -> list[rating.Charge]:
    """What the close of `period` bills these subscriptions, as known at the period's end."""
    ids = [s.id for s in subs]
    changes: dict[str, list[rating.Change]] = {i: [] for i in ids}
    ch = SubscriptionChange.__table__.c
    for row in run(sa.select(ch.subscription_id, ch.kind, ch.at, ch.recorded_at, ch.plan_id, ch.quantity)
                   .where(in_ids(ch.subscription_id, ids)).order_by(ch.subscription_id, ch.seq)):
        changes[row.subscription_id].append(rating.Change(row.kind, row.at, row.recorded_at, row.plan_id,
                                                          row.quantity))
    trials = _trials(subs, period.end_at)
    billed = billed_for(ids, period.start)
    out: list[rating.Charge] = []
    for sub in subs:
        rated = rating.Subscription(sub.id, tuple(changes[sub.id]), trials.get((sub.provider_id, sub.customer_id)))
        out.extend(rating.charges_at_close(rated, loaded.catalog, period, following, tz, billed.get(sub.id, {})))
    return out


def billed_for(subscription_ids: Sequence[str], covered_start: date) -> dict[str, dict[str, rating.Billed]]:
    """subscription id -> fee id -> what earlier closes billed for the period starting
    `covered_start` (the charges of bills not cancelled)."""
    c, b = SubscriptionCharge.__table__.c, Bill.__table__.c
    out: dict[str, dict[str, rating.Billed]] = {}
    for row in run(sa.select(c.subscription_id, c.fee_id, sa.func.sum(c.amount), sa.func.sum(c.platform_fee),
                             sa.func.sum(c.units))
                   .join_from(SubscriptionCharge.__table__, Bill.__table__, b.id == c.bill_id)
                   .where(in_ids(c.subscription_id, subscription_ids), c.covered_start == covered_start,
                          c.period_start < covered_start, b.status == "pending")
                   .group_by(c.subscription_id, c.fee_id)):
        out.setdefault(row[0], {})[row[1]] = rating.Billed(int(row[2]), int(row[3] or 0), int(row[4]))
    return out


def _trials(subs: Sequence[Subscription], known_at: datetime) -> dict[tuple[str, str], datetime]:
    """(provider, customer) -> the end of the provider's free trial for the customer, as declared
    by `known_at` (the last declaration recorded by then: a trial declared or moved since does
    not change what a close that runs late bills)."""
    t = TrialChange.__table__.c
    customers = sorted({s.customer_id for s in subs})
    ends: dict[tuple[str, str], datetime] = {}
    for r in run(sa.select(t.provider_id, t.customer_id, t.ends_at)
                 .where(in_ids(t.customer_id, customers), t.recorded_at <= known_at).order_by(t.recorded_at, t.id)):
        ends[r.provider_id, r.customer_id] = r.ends_at
    return ends


def _chunks(tenant_id: str, livemode: bool, period: C.Period, following: C.Period,
            chunk: int) -> Iterator[list[Subscription]]:
    """The subscriptions the close of `period` may bill, `chunk` at a time: recorded by the
    period's end (as rating.phases counts "known at") and active at some moment of it or of the
    following period, or ended at its start (as now known: an end recorded later takes effect
    no earlier than the period it was recorded in)."""
    s = Subscription.__table__.c
    after = ""
    while True:
        rows = run(sa.select(s.id, s.provider_id, s.customer_id, s.plan_id).where(
            s.tenant_id == tenant_id, s.livemode == livemode, s.id > after,
            s.created_at <= period.end_at, s.starts_at < following.end_at,
            # >=: one ended at the period's very start may have been billed for it in advance
            sa.or_(s.ends_at.is_(None), s.ends_at >= period.start_at)).order_by(s.id).limit(chunk)).all()
        if not rows:
            return
        yield rows  # rows carry what rating needs (id, provider_id, customer_id)
        after = rows[-1].id


def _store(settings: TenantSettings, period: C.Period, charges: Sequence[rating.Charge], subs: Sequence,
           loaded: LoadedCatalog, report: RatingReport) -> None:
    if not charges:
        return
    of = {s.id: s for s in subs}
    bills, rows = [], []
    for charge in charges:
        sub = of[charge.subscription_id]
        plan = loaded.plans[charge.fee.plan_id]
        key = f"sub:{charge.subscription_id}:{charge.fee.id}:{charge.covered.start}:{period.start}"
        bill_id = new_id("bill")
        bills.append({
            "id": bill_id, "tenant_id": settings.tenant_id, "livemode": settings.livemode,
            "provider_id": sub.provider_id, "customer_id": sub.customer_id, "idempotency_key": key,
            "fingerprint": hashlib.sha256(key.encode()).digest(), "amount": money.check_storable(
                charge.amount, plan.currency), "currency": plan.currency,
            "revenue_share": loaded.fee_revenue_share[charge.fee.id] or charge.platform_fee is not None,
            "description": describe(charge, plan.name), "service_period_start": charge.covered.start,
            "service_period_end": charge.covered.end, "metadata": {},
            "period_start": period.start, "received_at": period.end_at, "source": "subscription",
            "platform_fee": charge.platform_fee,
        })
        rows.append({
            "bill_id": bill_id, "subscription_id": charge.subscription_id, "fee_id": charge.fee.id,
            "plan_id": charge.fee.plan_id, "period_start": period.start, "covered_start": charge.covered.start,
            "covered_end": charge.covered.end, "kind": charge.kind, "units": charge.units, "days": charge.days,
            "period_days": charge.period_days, "quantity": charge.quantity, "amount": charge.amount,
            "platform_fee": charge.platform_fee,
        })
        report.amounts[plan.currency] = report.amounts.get(plan.currency, 0) + charge.amount
    created = create_bills(bills)
    fresh = [row for row in rows if row["bill_id"] in created]
    if fresh:
        insert_rows(SubscriptionCharge.__table__, fresh)
    report.charges += len(charges)
    report.bills_created += len(created)


def describe(charge: rating.Charge, plan_name: str) -> str:
    """The invoice line's words: "Hosting — Production 110, 12 of 30 days"; "× 3" for a
    quantity; a settlement's credit for days billed in advance and not used."""
    text = f"{charge.fee.name} — {plan_name}"
    if charge.kind == rating.ADJUSTMENT:
        used = f"{charge.days} of {charge.period_days} days used"
        return f"{text}, credit for unused days ({used})" if charge.amount < 0 else f"{text}, adjustment ({used})"
    if charge.days != charge.period_days:
        text += f", {charge.days} of {charge.period_days} days"
    if charge.quantity != 1:
        text += f" × {charge.quantity}"
    return text
