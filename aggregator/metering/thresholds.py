"""Usage thresholds (PLATFORMA's 80/90/100 % of included usage): when a subscription's usage of
a component reaches one, `usage.threshold_reached` is published once per (subscription,
component, threshold, period) — the database's primary key says once — as of the instant of the
event that reached it, in the transaction that stored that event. The customer's email follows
from the event (mail), as the tenant's notification settings say.

Once, and never missed, under concurrent intake (PostgreSQL): a transaction checks a
subscription's thresholds under a transaction-scoped lock of that subscription, taken after its
events went in, so the usage and the crossings it reads (a fresh snapshot: read committed) hold
every event committed before it, and a batch that commits later sees this one's. Two batches
that each stay below a threshold but together cross it: the second to take the lock publishes
it. The claim (INSERT ... ON CONFLICT DO NOTHING on the crossing's primary key) is the arbiter
should two ever reach the same threshold: the second waits for the first's commit and inserts
nothing."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from ..accounts.keys import Principal
from ..accounts.models import Customer
from ..db import advisory_locks, dialect_insert, in_ids, run
from ..events.service import NewEvent, record
from ..periods import calendar as C
from . import aggregation as A
from .models import ThresholdCrossing
from .store import UsageStore
from .usage_service import components_of_plans, load_usage, quantity_of

THRESHOLD_REACHED = "usage.threshold_reached"


def check_thresholds(principal: Principal, rows: Sequence[Mapping[str, Any]], meters: Mapping[str, Any],
                     subs: Mapping[str, Any], store: UsageStore, now: datetime) -> int:
    """Publish the thresholds that the freshly stored events `rows` made their subscriptions'
    usage reach. -> how many."""
    if not rows:
        return 0
    touched: dict[tuple[str, Any], list[Mapping[str, Any]]] = {}
    for row in rows:
        touched.setdefault((row["subscription_id"], row["period_start"]), []).append(row)
    plans = components_of_plans({subs[s].plan_id for s, _ in touched})
    watched = {plan_id: [pc for pc in pcs if pc.component.thresholds] for plan_id, pcs in plans.items()}
    if not any(watched.values()):
        return 0
    # (component id, thresholds, meter id) of each watched component, read off the ORM once
    plain = {id(pc): (pc.component.id, tuple(pc.component.thresholds), pc.meter.id)
             for pcs in watched.values() for pc in pcs}
    periods: dict[Any, C.Period] = {}
    work = []  # (subscription, period, its events of the batch, the components they may push over)
    for (sub_id, start), batch in sorted(touched.items()):
        metered = {r["meter_id"] for r in batch}
        components = [pc for pc in watched.get(subs[sub_id].plan_id, ()) if plain[id(pc)][2] in metered]
        if components:
            if start not in periods:
                periods[start] = C.period_containing(batch[0]["timestamp"], principal.period_anchor_day,
                                                     principal.timezone)
            work.append((sub_id, periods[start], batch, components))
    if not work:
        return 0
    advisory_locks([f"usage_thresholds:{sub_id}" for sub_id in sorted({sub_id for sub_id, *_ in work})])
    # the thresholds already reached need neither usage read nor claim (a claim would find them)
    done = _reached_of({sub_id for sub_id, *_ in work}, {period.start for _, period, *_ in work})
    work = [(sub_id, period, batch, [pc for pc in components if any(
        (sub_id, plain[id(pc)][0], t, period.start) not in done for t in plain[id(pc)][1])])
        for sub_id, period, batch, components in work]
    usage_of = {}  # one read of the rollups per period for all the subscriptions touched
    for start in sorted({period.start for _, period, _, components in work if components}):
        mine = [(sub_id, period, components) for sub_id, period, _, components in work
                if components and period.start == start]
        # usage so far (events may be a few minutes ahead): a level is not yet held to the period's end
        until = max([now, *(r["timestamp"] for _, p, batch, cs in work if cs and p.start == start for r in batch)])
        usage_of[start] = load_usage(store, sorted({sub_id for sub_id, *_ in mine}),
                                     {pc.meter.id: pc.meter for *_, cs in mine for pc in cs}.values(), mine[0][1],
                                     until)
    external = _external_ids({subs[sub_id].customer_id for sub_id, _, _, components in work if components})
    candidates = []  # (claim row, event), claimed together below: once each, by the primary key
    for sub_id, period, batch, components in work:
        sub = subs[sub_id]
        if not components:
            continue
        usage = usage_of[period.start]
        for pc in components:
            mine = [r for r in batch if r["meter_id"] == pc.meter.id
                    and A.matches(r["dims"], pc.component.dimension or {})]
            if not mine:  # none of the batch's events counts for this component (another dimension)
                continue
            included = Fraction(pc.component.pricing.get("included_units") or "0")
            until = max([now, *(r["timestamp"] for r in batch)])
            quantity = quantity_of(usage, sub_id, pc.component, pc.meter, period, until)
            reached = [t for t in pc.component.thresholds if t * included <= quantity * 100
                       and (sub_id, pc.component.id, t, period.start) not in done]
            for threshold in sorted(reached):
                at = _instant(pc.meter, mine, quantity, threshold * included / 100)
                candidates.append(({
                    "subscription_id": sub_id, "component_id": pc.component.id, "threshold": threshold,
                    "period_start": period.start, "tenant_id": principal.tenant_id, "livemode": principal.livemode,
                    "reached_at": at, "quantity": A.format_quantity(quantity)},
                    NewEvent(THRESHOLD_REACHED, sub_id, {"object": threshold_document(
                        principal, sub, external.get(sub.customer_id), pc, threshold, quantity, included, period,
                        at)}, provider_id=principal.provider_id)))
    claimed = _claim_all([row for row, _ in candidates])
    events = [event for row, event in candidates if _key(row) in claimed]
    if events:
        record(principal.tenant_id, principal.livemode, now, events)
    return len(events)


def threshold_document(principal: Principal, sub: Any, customer_external_id: str | None, pc: Any,
                       threshold: int, quantity: Fraction, included: Fraction, period: C.Period,
                       at: datetime) -> dict[str, Any]:
    """The event's object: which subscription (and its customer, provider and plan) reached
    which threshold of which component, with the usage then and the period."""
    return {"object": "usage_threshold", "subscription": sub.id,
            "external_billing_id": sub.external_billing_id, "customer": sub.customer_id,
            "customer_external_id": customer_external_id, "provider": principal.provider_id,
            "plan": pc.plan.code, "plan_name": pc.plan.name, "component": pc.component.id,
            "name": pc.component.name, "meter": pc.meter.code, "unit": pc.unit,
            "dimension": dict(pc.component.dimension or {}), "threshold": threshold,
            "quantity": A.format_quantity(quantity), "included_units": A.format_quantity(included),
            "period": period.start.isoformat(), "period_end": period.end.isoformat(),
            "reached_at": at.isoformat()}


def _external_ids(customer_ids: set[str]) -> dict[str, str]:
    if not customer_ids:
        return {}
    c = Customer.__table__.c
    return dict(run(sa.select(c.id, c.external_id).where(in_ids(c.id, sorted(customer_ids)))).all())


def _reached_of(subscription_ids: set[str], period_starts: set) -> set[tuple]:
    """(subscription, component, threshold, period start) already reached, of these."""
    if not subscription_ids:
        return set()
    t = ThresholdCrossing.__table__.c
    return {tuple(row) for row in run(sa.select(t.subscription_id, t.component_id, t.threshold, t.period_start).where(
        in_ids(t.subscription_id, sorted(subscription_ids)), t.period_start.in_(sorted(period_starts))))}


def _instant(meter: Any, mine: Sequence[Mapping[str, Any]], quantity: Fraction, level: Fraction) -> datetime:
    """The timestamp of the event that made usage reach `level`: for counts and sums, the one
    at which the running total reached it; otherwise the latest of the batch's."""
    ordered = sorted(mine, key=lambda r: r["timestamp"])
    if meter.aggregation in (A.COUNT, A.SUM):
        scale = 10 ** meter.decimals
        step = [Fraction(1) if meter.aggregation == A.COUNT else Fraction(r["value"], scale) for r in ordered]
        running = quantity - sum(step)
        for r, s in zip(ordered, step):
            running += s
            if running >= level:
                return r["timestamp"]
    return ordered[-1]["timestamp"]


def _key(row: Mapping[str, Any]) -> tuple:
    return row["subscription_id"], row["component_id"], row["threshold"], row["period_start"]


def _claim_all(rows: Sequence[Mapping[str, Any]]) -> set[tuple]:
    """Record these thresholds as reached, each once (one statement): -> the keys recorded now
    (a key already recorded, by a concurrent request, is not)."""
    if not rows:
        return set()
    t = ThresholdCrossing.__table__.c
    stmt = dialect_insert(ThresholdCrossing.__table__).on_conflict_do_nothing().returning(
        t.subscription_id, t.component_id, t.threshold, t.period_start)
    return {tuple(row) for row in run(stmt, list(rows))}


def reached(subscription_id: str, period_start: Any) -> list[sa.Row]:
    t = ThresholdCrossing.__table__.c
    return run(sa.select(t.component_id, t.threshold, t.reached_at, t.quantity).where(
        t.subscription_id == subscription_id, t.period_start == period_start).order_by(t.reached_at)).all()
