"""Usage thresholds (PLATFORMA's 80/90/100 % of included usage): when a subscription's usage of
a component reaches one, `usage.threshold_reached` is published once per (subscription,
component, threshold, period) — the database's primary key says once — as of the instant of the
event that reached it, in the transaction that stored that event. The customer's email follows
from the event (mail), as the tenant's notification settings say."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa

from ..accounts.keys import Principal
from ..db import dialect_insert, run
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
    events: list[NewEvent] = []
    for (sub_id, _), batch in sorted(touched.items()):
        sub = subs[sub_id]
        components = [pc for pc in watched.get(sub.plan_id, ()) if any(r["meter_id"] == pc.meter.id for r in batch)]
        if not components:
            continue
        period = C.period_containing(batch[0]["timestamp"], principal.period_anchor_day, principal.timezone)
        # usage so far (events may be a few minutes ahead): a level is not yet held to the period's end
        until = max([now, *(r["timestamp"] for r in batch)])
        usage = load_usage(store, [sub_id], [pc.meter for pc in components], period, until)
        for pc in components:
            included = Fraction(pc.component.pricing.get("included_units") or "0")
            quantity = quantity_of(usage, sub_id, pc.component, pc.meter, period, until)
            reached = [t for t in pc.component.thresholds if t * included <= quantity * 100]
            mine = [r for r in batch if r["meter_id"] == pc.meter.id
                    and A.matches(r["dims"], pc.component.dimension or {})]
            for threshold in sorted(reached):
                at = _instant(pc.meter, mine, quantity, threshold * included / 100)
                if _claim(principal, sub_id, pc.component.id, threshold, period, at, quantity):
                    events.append(NewEvent(THRESHOLD_REACHED, sub_id, {"object": {
                        "object": "usage_threshold", "subscription": sub_id, "customer": sub.customer_id,
                        "component": pc.component.id, "name": pc.component.name, "meter": pc.meter.code,
                        "unit": pc.unit, "threshold": threshold, "quantity": A.format_quantity(quantity),
                        "included_units": A.format_quantity(included), "period": period.start.isoformat(),
                        "reached_at": at.isoformat()}}, provider_id=principal.provider_id))
    if events:
        record(principal.tenant_id, principal.livemode, now, events)
    return len(events)


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


def _claim(principal: Principal, sub_id: str, component_id: str, threshold: int, period: C.Period,
           at: datetime, quantity: Fraction) -> bool:
    """Record the threshold as reached, once: False if it already was."""
    table = ThresholdCrossing.__table__
    stmt = dialect_insert(table).values(
        subscription_id=sub_id, component_id=component_id, threshold=threshold, period_start=period.start,
        tenant_id=principal.tenant_id, livemode=principal.livemode, reached_at=at,
        quantity=A.format_quantity(quantity)).on_conflict_do_nothing().returning(table.c.threshold)
    return run(stmt).first() is not None


def reached(subscription_id: str, period_start: Any) -> list[sa.Row]:
    t = ThresholdCrossing.__table__.c
    return run(sa.select(t.component_id, t.threshold, t.reached_at, t.quantity).where(
        t.subscription_id == subscription_id, t.period_start == period_start).order_by(t.reached_at)).all()
