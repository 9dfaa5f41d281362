"""Rating subscriptions into charges: pure functions of a subscription's history, its plans'
fees and prices, and a period (docs/plans.md). No framework, no database: the close's rating
service (`rating_service.py`) and the upcoming invoice read the rows and hand them here.

The rules, each in one function:

- **History, bitemporal** (`phases`): a subscription is an append-only list of changes (start,
  change of plan or quantity, end), each with the instant it takes effect (`at`) and the instant
  it was recorded. What was known at an instant is the changes recorded by then: rating as of a
  period's end ignores what was recorded later, so a close that runs late (downtime, a test
  clock's jump) rates exactly what a close on time would have.
- **Days** (`phase_days`): a fee is billed per local day of the period (the tenant's time zone).
  A day is billed if the subscription was active at any moment of it, to the phase active last
  that day (a day with a plan change is billed to the new plan). Days before a provider's free
  trial for the customer ended are not billed. So the days of a period's phases never overlap and
  add up to the days the subscription was active (property-tested).
- **Amount** (`prorate`): price × Σ(quantity × days) / days in the period, rounded once by
  `money.prorate`. A provider's fee built on a parent fee carries the platform's fee: the parent
  price rated the same way (same days, same quantity); the provider's profit is the difference.
- **What a close bills** (`charges_at_close`): at the close of period P, an `in_arrears` fee bills
  P; an `in_advance` fee bills P+1 as known at P's end, and settles P: what P is worth now minus
  what was billed for it before (a negative charge credits the unused days of a cancellation).
  Each charge is keyed (subscription, fee, covered period, billing period): idempotent.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from .. import money
from ..periods.calendar import Period, local_midnight

IN_ADVANCE, IN_ARREARS = "in_advance", "in_arrears"
ADJUSTMENT = "adjustment"  # an in-advance fee's period settled at its own close
START, CHANGE, END = "start", "change", "end"

#: The effective period of a plan's first prices: from the beginning of time.
ALWAYS = date(1, 1, 1)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of a subscription's history."""

    kind: str  # start | change | end
    at: datetime  # when it takes effect
    recorded_at: datetime  # when it was recorded (on the tenant's clock)
    plan_id: str | None = None  # start and change
    quantity: int | None = None  # start and change


@dataclass(frozen=True, slots=True)
class Phase:
    """An uninterrupted stretch of one plan at one quantity: [starts_at, ends_at)."""

    plan_id: str
    quantity: int
    starts_at: datetime
    ends_at: datetime | None  # None: still running (as known)


def phases(changes: Iterable[Change], known_at: datetime) -> list[Phase]:
    """The phases of a subscription as known at `known_at`, in order. Changes are applied in the
    order given (the order they were recorded); each takes effect no earlier than the last."""
    out: list[Phase] = []
    for change in changes:
        if change.recorded_at > known_at:
            continue
        if change.kind == START:
            out = [Phase(change.plan_id or "", change.quantity or 1, change.at, None)]
            continue
        if not out or out[-1].ends_at is not None:
            continue  # nothing running: a change after the end is refused before it is recorded
        last = out[-1]
        out[-1] = Phase(last.plan_id, last.quantity, last.starts_at, change.at)
        if change.kind == CHANGE:
            out.append(Phase(change.plan_id or last.plan_id, change.quantity or last.quantity, change.at, None))
    return out


def period_days(period: Period) -> int:
    return (period.end - period.start).days + 1


def _local_day(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def _day_after_last(instant: datetime, tz: str) -> date:
    """The first local day wholly at or after `instant`: an end at a day's first instant bills
    nothing of that day; an end during a day bills it. The first instant, not 00:00 on the clock:
    where clocks change at midnight a day may start at 01:00, or live 00:00 twice."""
    day = _local_day(instant, ZoneInfo(tz))
    return day if instant == local_midnight(day, tz) else day + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class PhaseDays:
    phase: Phase
    days: int


def phase_days(timeline: Sequence[Phase], period: Period, tz: str,
               free_until: datetime | None = None) -> list[PhaseDays]:
    """Days of `period` billed to each phase of `timeline` (consecutive phases, in order): a day
    goes to the last phase active at some moment of it; days before `free_until`'s day (a free
    trial's end) go to none."""
    zone = ZoneInfo(tz)
    timeline = [p for p in timeline if p.ends_at is None or p.ends_at > p.starts_at]  # a phase of no time has no day
    first_day = period.start
    if free_until is not None:
        first_day = max(first_day, _local_day(free_until, zone))
    end_day = period.end + timedelta(days=1)
    out: list[PhaseDays] = []
    for i, phase in enumerate(timeline):
        if phase.ends_at is not None and phase.ends_at <= period.start_at or phase.starts_at >= period.end_at:
            continue
        start = max(_local_day(phase.starts_at, zone), first_day)
        if i + 1 < len(timeline) and timeline[i + 1].starts_at < period.end_at:
            stop = _local_day(timeline[i + 1].starts_at, zone)  # the next phase takes the day it starts
        elif phase.ends_at is not None:
            stop = _day_after_last(phase.ends_at, tz)
        else:
            stop = end_day
        days = (min(stop, end_day) - start).days
        if days > 0:
            out.append(PhaseDays(phase, days))
    return out


@dataclass(frozen=True, slots=True)
class Fee:
    """A recurring fee of a plan."""

    id: str
    plan_id: str
    name: str
    timing: str  # in_advance | in_arrears
    parent_fee_id: str | None = None  # the parent plan's fee this one resells
    metered: bool = False  # it has usage components: a flat price of 0 bills nothing of its own


@dataclass(frozen=True, slots=True)
class Price:
    """A fee's price from a period on, as recorded at an instant."""

    effective_from: date  # a period's start (ALWAYS: the plan's first prices)
    recorded_at: datetime
    amount: int


def price_of(prices: Sequence[Price], period_start: date, known_at: datetime) -> int | None:
    """The price in effect for the period starting `period_start`, as known at `known_at`: the
    latest effective one recorded by then."""
    best: Price | None = None
    for price in prices:
        if price.effective_from <= period_start and price.recorded_at <= known_at and (
                best is None or (price.effective_from, price.recorded_at) > (best.effective_from, best.recorded_at)):
            best = price
    return best.amount if best else None


@dataclass(frozen=True, slots=True)
class Rated:
    """A fee rated over a period: its units (Σ quantity × days), its days and amounts."""

    units: int
    days: int
    quantity: int  # the quantity, when one throughout (else the largest)
    amount: int
    platform_fee: int | None  # the parent fee rated the same way, when the fee resells one


def rate(price: int, parent_price: int | None, billed: Sequence[PhaseDays], whole: int) -> Rated:
    """A fee of `price` (and its parent's, if any) over the days `billed` of a period of `whole`
    days: each amount rounded once."""
    if len(billed) == 1:  # one phase: most subscriptions in most periods, rated without the sums
        days, quantity = billed[0].days, billed[0].phase.quantity
        units = days * quantity
    else:
        units = sum(b.days * b.phase.quantity for b in billed)
        days = sum(b.days for b in billed)
        quantity = max((b.phase.quantity for b in billed), default=0)
    fee = money.prorate(parent_price, units, whole) if parent_price is not None else None
    return Rated(units, days, quantity, money.prorate(price, units, whole), fee)


@dataclass(frozen=True, slots=True)
class Billed:
    """What was billed before for a (fee, covered period): sums of earlier charges."""

    amount: int = 0
    platform_fee: int = 0
    units: int = 0


@dataclass(frozen=True, slots=True)
class Charge:
    """What a close bills for one (subscription, fee, covered period)."""

    subscription_id: str
    fee: Fee
    covered: Period
    kind: str  # "in_arrears" | "in_advance" | "adjustment" (an in-advance period settled)
    units: int
    days: int
    period_days: int
    quantity: int
    amount: int
    platform_fee: int | None

    @property
    def key(self) -> tuple[str, str, date]:
        return self.subscription_id, self.fee.id, self.covered.start


@dataclass(frozen=True, slots=True)
class Subscription:
    """What rating needs of a subscription."""

    id: str
    changes: tuple[Change, ...]
    free_until: datetime | None = None  # the end of its provider's free trial for the customer


@dataclass(frozen=True, slots=True)
class Catalog:
    """The fees of every plan involved and their prices, and the plans billed nothing."""

    fees: Mapping[str, Sequence[Fee]]  # plan id -> its fees
    prices: Mapping[str, Sequence[Price]]  # fee id -> its prices
    unbilled: frozenset[str] = frozenset()  # plan ids

    def fee(self, fee_id: str) -> Fee:
        for fees in self.fees.values():
            for fee in fees:
                if fee.id == fee_id:
                    return fee
        raise KeyError(f"no fee {fee_id}")

    def price(self, fee_id: str, period: Period, known_at: datetime) -> int:
        amount = price_of(self.prices.get(fee_id, ()), period.start, known_at)
        if amount is None:
            raise ValueError(f"fee {fee_id} has no price for the period {period.start}")
        return amount


def _rated_fees(sub: Subscription, catalog: Catalog, covered: Period, tz: str, known_at: datetime,
                timing: str | None) -> Iterable[tuple[Fee, Rated]]:
    """Each fee (of `timing`, or all) of the plans `sub` was on during `covered`, rated."""
    days_by_plan: dict[str, list[PhaseDays]] = {}
    for billed in phase_days(phases(sub.changes, known_at), covered, tz, sub.free_until):
        days_by_plan.setdefault(billed.phase.plan_id, []).append(billed)
    whole = period_days(covered)
    for plan_id, billed_days in days_by_plan.items():
        if plan_id in catalog.unbilled:
            continue
        for fee in catalog.fees.get(plan_id, ()):
            if timing is not None and fee.timing != timing:
                continue
            parent = catalog.price(fee.parent_fee_id, covered, known_at) if fee.parent_fee_id else None
            if fee.metered and not catalog.price(fee.id, covered, known_at) and not parent:
                continue  # a usage-only fee: its usage components are rated by metering
            yield fee, rate(catalog.price(fee.id, covered, known_at), parent, billed_days, whole)


def charges_at_close(sub: Subscription, catalog: Catalog, period: Period, following: Period, tz: str,
                     billed: Mapping[str, Billed]) -> list[Charge]:
    """What the close of `period` bills `sub`, as known at the period's end: its in-arrears fees
    for `period`; its in-advance fees for `following`; and for each in-advance fee it has now or
    was billed for `period` before (`billed`: fee id -> what earlier closes billed for `period`),
    the difference between what `period` is worth now and what was billed. Zero charges are left
    out."""
    known_at = period.end_at
    whole, next_whole = period_days(period), period_days(following)
    out: list[Charge] = []
    advance: dict[str, tuple[Fee, Rated]] = {}
    for fee, r in _rated_fees(sub, catalog, period, tz, known_at, None):
        if fee.timing == IN_ADVANCE:
            advance[fee.id] = (fee, r)
        elif r.units:
            out.append(Charge(sub.id, fee, period, IN_ARREARS, r.units, r.days, whole, r.quantity, r.amount,
                              r.platform_fee))
    for fee_id in sorted(set(advance) | set(billed)):
        fee, now = advance.get(fee_id) or (catalog.fee(fee_id), NOTHING)
        out.extend(_settlement(sub.id, fee, period, whole, now, billed.get(fee_id, Billed())))
    for fee, r in _rated_fees(sub, catalog, following, tz, known_at, IN_ADVANCE):
        if r.units:
            out.append(Charge(sub.id, fee, following, IN_ADVANCE, r.units, r.days, next_whole, r.quantity, r.amount,
                              r.platform_fee))
    return out


NOTHING = Rated(0, 0, 0, 0, None)


def _settlement(sub_id: str, fee: Fee, period: Period, whole: int, now: Rated, before: Billed) -> list[Charge]:
    """An in-advance fee's `period` settled: what it is worth `now` minus what was billed `before`."""
    amount, units = now.amount - before.amount, now.units - before.units
    platform_fee = None
    if fee.parent_fee_id is not None:
        platform_fee = (now.platform_fee or 0) - before.platform_fee
    if amount == 0 and units == 0 and not platform_fee:
        return []
    kind = ADJUSTMENT if before != Billed() else IN_ADVANCE  # a first period not known a period ahead
    return [Charge(sub_id, fee, period, kind, units, now.days, whole, now.quantity, amount, platform_fee)]
