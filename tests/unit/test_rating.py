"""Rating subscriptions (catalog/rating.py) and `money.prorate`, as pure functions: no database.

The references here are computed independently of the code under test, day by day: a local day
is [local_midnight(d), local_midnight(d + 1)) in the tenant's zone, a subscription is active on it
if its history's interval meets that day, and the day belongs to the last phase that meets it.
Instants are drawn near the period (before, inside, after), often exactly at a local midnight and
often on a day whose length is not 24 hours (DST, including zones whose clocks change at midnight).
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from functools import lru_cache

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator import money
from aggregator.catalog.rating import (
    ADJUSTMENT,
    ALWAYS,
    CHANGE,
    END,
    IN_ADVANCE,
    IN_ARREARS,
    START,
    Billed,
    Catalog,
    Change,
    Charge,
    Fee,
    Phase,
    Price,
    Subscription,
    charges_at_close,
    period_days,
    phase_days,
    phases,
    price_of,
)
from aggregator.periods.calendar import (
    Period,
    local_midnight,
    next_period,
    period_starting,
    previous_period,
    start_date_containing,
)

UTC = timezone.utc
DAY = timedelta(days=1)

#: UTC, both hemispheres' DST, +05:30, and zones whose clocks change at midnight: Santiago and
#: Beirut skip it (the day starts at 01:00), Havana repeats it (00:00-01:00 happens twice).
ZONES = ["UTC", "Australia/Sydney", "Europe/Paris", "America/New_York", "Asia/Kolkata",
         "America/Santiago", "Asia/Beirut", "America/Havana"]

#: Keeps the unit suite fast; deadline off because the first lookup of a zone reads its file.
FEW = settings(max_examples=120, deadline=None)

PLANS = ("basic", "pro", "max")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """A local day as the instants [its first, the next day's first)."""
    return local_midnight(day, tz), local_midnight(day + DAY, tz)


def days_of(period: Period) -> list[date]:
    return [period.start + DAY * k for k in range((period.end - period.start).days + 1)]


# --- strategies --------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def odd_days(tz: str) -> list[date]:
    """The local days of 2025-2027 not 24 hours long in `tz` (its DST changes)."""
    return [d for d in (date(2025, 1, 1) + DAY * k for k in range(3 * 365)) if len_of(d, tz) != DAY]


def len_of(day: date, tz: str) -> timedelta:
    first, following = day_bounds(day, tz)
    return following - first


@st.composite
def tenant_periods(draw: st.DrawFn) -> tuple[str, int, Period]:
    """A tenant's zone and anchor day, and one of its periods in 2025-2027: half the time one with
    a change of the clocks in it."""
    tz, anchor = draw(st.sampled_from(ZONES)), draw(st.integers(1, 28))
    if odd_days(tz) and draw(st.booleans()):
        start = start_date_containing(odd_days(tz)[draw(st.integers(0, len(odd_days(tz)) - 1))], anchor)
    else:
        month = draw(st.integers(2025 * 12, 2027 * 12 + 11))
        start = date(month // 12, month % 12 + 1, anchor)
    return tz, anchor, period_starting(start, anchor, tz)


#: Seconds into a day: as often as not its first instant, or an hour in.
SECONDS_IN = st.one_of(st.just(0), st.just(3600), st.integers(0, 25 * 3600 - 1), st.integers(0, 25 * 3600 - 1))


@lru_cache(maxsize=None)
def days_near(period: Period, tz: str, before: int, after: int) -> tuple[list[date], list[date]]:
    """The local days from `before` days before `period` to `after` days after it, and those of
    them not 24 hours long."""
    window = [period.start + DAY * k for k in range(-before, period_days(period) + after)]
    return window, [d for d in window if len_of(d, tz) != DAY]


@st.composite
def instants_near(draw: st.DrawFn, tz: str, period: Period, before: int = 40, after: int = 40) -> datetime:
    """An instant from `before` days before the period to `after` days after it: half the time on a
    day that is not 24 hours long (when the window has one), often at its first instant or an hour in
    (Havana's repeated midnight)."""
    window, odd = days_near(period, tz, before, after)
    days = odd if odd and draw(st.booleans()) else window
    first, following = day_bounds(days[draw(st.integers(0, len(days) - 1))], tz)
    return first + timedelta(seconds=draw(SECONDS_IN) % int((following - first).total_seconds()))


@st.composite
def histories(draw: st.DrawFn, tz: str, period: Period, plans: tuple[str, ...] = PLANS) -> tuple[Change, ...]:
    """A start, up to four changes of plan or quantity and maybe an end, at instants near `period`,
    each no earlier than the last (several may share one); recorded in that order at instants
    anywhere near it (before they take effect, or after: backdated)."""
    ended = draw(st.booleans())
    count = 1 + draw(st.integers(0, 4)) + ended
    ats = sorted(draw(st.lists(instants_near(tz, period), min_size=count, max_size=count)))
    for i in range(1, count):  # often at the instant of the change before it
        if draw(st.integers(0, 3)) == 0:
            ats[i] = ats[i - 1]
    recorded = []  # in order: each when it took effect (half the time), or at another instant
    for at in ats:
        recorded.append(max(recorded[-1:] + [at if draw(st.booleans()) else draw(instants_near(tz, period))]))
    out = []
    for i, (at, recorded_at) in enumerate(zip(ats, recorded)):
        if ended and i == count - 1:
            out.append(Change(END, at, recorded_at))
        else:
            kind = START if i == 0 else CHANGE
            out.append(Change(kind, at, recorded_at, draw(st.sampled_from(plans)), draw(st.integers(1, 5))))
    return tuple(out)


# --- the reference: what was known, and the days, one at a time --------------------------------

#: (plan, quantity, from, until): a stretch of a subscription's history, until None if open.
Segment = tuple[str, int, datetime, datetime | None]


def known_segments(changes: tuple[Change, ...], known_at: datetime) -> list[Segment]:
    """(plan, quantity, from, until) of each stretch of the history recorded by `known_at`."""
    known = [c for c in changes if c.recorded_at <= known_at]
    out: list[Segment] = []
    for change in known:
        if out:
            plan, quantity, since, _ = out[-1]
            out[-1] = (plan, quantity, since, change.at)
        if change.kind != END:
            out.append((change.plan_id, change.quantity, change.at, None))
    return out


def meets(since: datetime, until: datetime | None, first: datetime, following: datetime) -> bool:
    """Whether [since, until) and [first, following) share an instant."""
    return since < following and (until is None or (first < until and since < until))


def reference_days(segments: list[Segment], period: Period, tz: str, free_until: datetime | None) -> dict[int, int]:
    """Segment index -> the period's local days it is billed: each day the subscription met, not
    wholly before the trial's end, to the last segment that met it."""
    out: dict[int, int] = defaultdict(int)
    for day in days_of(period):
        first, following = day_bounds(day, tz)
        if free_until is not None and following <= free_until:
            continue
        met = [i for i, (_, _, since, until) in enumerate(segments) if meets(since, until, first, following)]
        if met:
            out[met[-1]] += 1
    return dict(out)


def active_days(changes: tuple[Change, ...], known_at: datetime, period: Period, tz: str,
                free_until: datetime | None = None) -> int:
    """The period's local days on which the subscription (as known) was active at some moment."""
    segments = known_segments(changes, known_at)
    if not segments:
        return 0
    since, until = segments[0][2], segments[-1][3]
    return sum(1 for day in days_of(period)
               if meets(since, until, *day_bounds(day, tz))
               and (free_until is None or day_bounds(day, tz)[1] > free_until))


# --- money.prorate ------------------------------------------------------------------------------


def half_up(exact: Fraction) -> int:
    """Round half up, away from zero (docs/money.md), of an exact fraction."""
    magnitude = abs(exact)
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return -whole if exact < 0 else whole


@settings(max_examples=300, deadline=None)
@given(st.integers(-10**15, 10**15), st.integers(-10**4, 10**4), st.integers(1, 10**4))
@example(1, 1, 2).via("a half rounds up")
@example(-1, 1, 2).via("a negative half rounds away from zero")
@example(5, 1, 2).via("2.5 -> 3")
@example(-5, 1, 2).via("-2.5 -> -3")
def test_prorate_is_the_exact_fraction_rounded_half_up_away_from_zero(minor, units, whole):
    assert money.prorate(minor, units, whole) == half_up(Fraction(minor * units, whole))


@settings(max_examples=200, deadline=None)
@given(st.integers(-10**15, 10**15), st.integers(1, 10**4))
def test_prorating_a_whole_period_is_the_price(minor, whole):
    assert money.prorate(minor, whole, whole) == minor
    assert money.prorate(minor, 0, whole) == 0


@pytest.mark.parametrize("whole", [0, -30])
def test_prorating_over_no_days_is_refused(whole):
    with pytest.raises(ValueError):
        money.prorate(1000, 1, whole)


def test_twelve_of_thirty_days_of_a_fee_is_its_price_times_twelve_thirtieths_rounded_once():
    assert money.prorate(11000, 12, 30) == 4400
    assert money.prorate(999, 1, 30) == 33  # 33.3 -> 33
    assert money.prorate(1005, 1, 2) == 503  # 502.5 -> 503


# --- phases: the history as known at an instant -------------------------------------------------


def test_a_plan_change_ends_one_phase_and_starts_the_next_at_the_same_instant():
    start, change, end = utc(2026, 1, 3), utc(2026, 1, 10, 12), utc(2026, 1, 20)
    history = (Change(START, start, start, "basic", 1), Change(CHANGE, change, change, "pro", 2),
               Change(END, end, end))
    assert phases(history, end) == [Phase("basic", 1, start, change), Phase("pro", 2, change, end)]


def test_a_change_recorded_after_the_instant_asked_about_is_not_known_then():
    start, change = utc(2026, 1, 3), utc(2026, 1, 10)
    history = (Change(START, start, start, "basic", 1), Change(CHANGE, change, utc(2026, 2, 5), "pro", 1))
    assert phases(history, utc(2026, 2, 1)) == [Phase("basic", 1, start, None)]
    assert len(phases(history, utc(2026, 2, 5))) == 2


def test_a_change_keeps_the_plan_or_quantity_it_does_not_name():
    start, change = utc(2026, 1, 3), utc(2026, 1, 10)
    history = (Change(START, start, start, "basic", 3), Change(CHANGE, change, change, None, 5))
    assert phases(history, change)[-1] == Phase("basic", 5, change, None)


# --- phase_days: Σ prorated days = active days ------------------------------------------------


@FEW
@given(st.data())
def test_the_days_billed_to_each_phase_are_the_days_it_was_the_last_active_and_sum_to_the_active_days(data):
    """Σ prorated days = active days (issue 18). Whatever the zone, anchor, history and what was
    known, the billed days are the period's local days on which the subscription was active at
    some moment, from the trial's end's local day on, each billed once, to the last phase active
    that day (a day with a plan change goes to the new plan)."""
    tz, _, period = data.draw(tenant_periods())
    changes = data.draw(histories(tz, period))
    known_at = data.draw(st.just(period.end_at) | instants_near(tz, period))
    free_until = data.draw(st.none() | instants_near(tz, period))

    timeline = phases(changes, known_at)
    segments = known_segments(changes, known_at)
    assert [(p.plan_id, p.quantity, p.starts_at, p.ends_at) for p in timeline] == segments

    billed = phase_days(timeline, period, tz, free_until)
    assert {timeline.index(b.phase): b.days for b in billed} == reference_days(segments, period, tz, free_until)
    assert all(b.days > 0 for b in billed)
    assert sum(b.days for b in billed) == active_days(changes, known_at, period, tz, free_until)


def test_an_end_at_local_midnight_bills_nothing_of_that_day_and_an_end_during_a_day_bills_it():
    tz = "Europe/Paris"
    period = period_starting(date(2026, 3, 1), 1, tz)  # 31 days, DST starts on the 29th
    start = Change(START, period.start_at, period.start_at, "basic", 1)
    at_midnight = local_midnight(date(2026, 3, 11), tz)
    for end, days in [(at_midnight, 10), (at_midnight + timedelta(seconds=1), 11)]:
        timeline = phases((start, Change(END, end, end)), period.end_at)
        assert [b.days for b in phase_days(timeline, period, tz)] == [days]


@pytest.mark.parametrize(("tz", "day"), [
    ("America/Santiago", date(2025, 9, 7)),  # 00:00 does not exist: the day starts at 01:00
    ("Asia/Beirut", date(2025, 3, 30)),  # the same, in March
])
def test_an_end_at_the_first_instant_of_a_day_without_a_midnight_bills_nothing_of_that_day(tz, day):
    period = period_starting(date(2025, day.month, 1), 1, tz)
    end = local_midnight(day, tz)  # 01:00 local: the day's first instant
    history = (Change(START, period.start_at, period.start_at, "basic", 1), Change(END, end, end))
    billed = phase_days(phases(history, period.end_at), period, tz)
    assert [b.days for b in billed] == [(day - period.start).days]


def test_an_end_in_the_second_midnight_hour_of_a_day_that_repeats_it_bills_that_day():
    tz, day = "America/Havana", date(2025, 11, 2)  # 01:00 -> 00:00: the day's first hour happens twice
    period = period_starting(date(2025, 11, 1), 1, tz)
    end = local_midnight(day, tz) + timedelta(hours=1)  # 00:00 again: active through the day's first hour
    history = (Change(START, period.start_at, period.start_at, "basic", 1), Change(END, end, end))
    assert [b.days for b in phase_days(phases(history, period.end_at), period, tz)] == [2]


def test_a_subscription_that_ends_as_it_starts_bills_no_day():
    tz, period = "UTC", period_starting(date(2026, 1, 1), 1, "UTC")
    at = utc(2026, 1, 10, 12)
    history = (Change(START, at, at, "basic", 1), Change(END, at, at))
    assert phase_days(phases(history, period.end_at), period, tz) == []


def test_a_plan_change_and_an_end_at_one_instant_bill_that_day_to_the_plan_that_was_active():
    tz, period = "UTC", period_starting(date(2026, 1, 1), 1, "UTC")
    at = utc(2026, 1, 10, 12)
    history = (Change(START, period.start_at, period.start_at, "basic", 1), Change(CHANGE, at, at, "pro", 1),
               Change(END, at, at))
    billed = phase_days(phases(history, period.end_at), period, tz)
    assert [(b.phase.plan_id, b.days) for b in billed] == [("basic", 10)]


def test_days_before_the_trial_ends_are_free_and_its_last_day_is_billed():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")  # 30 days
    history = (Change(START, utc(2026, 3, 1), utc(2026, 3, 1), "basic", 1),)
    billed = phase_days(phases(history, period.end_at), period, tz, free_until=utc(2026, 4, 11, 9))
    assert [b.days for b in billed] == [20]  # the 11th to the 30th


# --- the plans and the close ----------------------------------------------------------------------


def catalog_of(prices: dict[str, int], timing: str = IN_ARREARS, parent: dict[str, str] | None = None,
               parent_prices: dict[str, int] | None = None) -> Catalog:
    """One fee per plan (`<plan>-hosting`) at its price from the beginning of time; with `parent`,
    plan -> the parent plan whose fee it resells."""
    parent, parent_prices = parent or {}, parent_prices or {}
    fees = {plan: [Fee(f"{plan}-hosting", plan, "Hosting", timing,
                       f"{parent[plan]}-hosting" if plan in parent else None)] for plan in prices}
    fees |= {plan: [Fee(f"{plan}-hosting", plan, "Hosting", timing)] for plan in parent_prices}
    return Catalog(fees, {f"{plan}-hosting": [Price(ALWAYS, utc(2000, 1, 1), amount)]
                          for plan, amount in (prices | parent_prices).items()})


def close_by_close(sub: Subscription, catalog: Catalog, tz: str, anchor: int, first: Period,
                   closes: int) -> list[tuple[Period, list[Charge]]]:
    """Each close from `first` on, in turn, told what earlier closes billed for its period (as the
    rating service sums its charges)."""
    billed: dict[tuple[str, date], Billed] = {}
    out = []
    period = first
    for _ in range(closes):
        following = next_period(period, anchor, tz)
        before = {fee_id: b for (fee_id, start), b in billed.items() if start == period.start}
        charges = charges_at_close(sub, catalog, period, following, tz, before)
        for c in charges:
            was = billed.get((c.fee.id, c.covered.start), Billed())
            billed[c.fee.id, c.covered.start] = Billed(was.amount + c.amount,
                                                      was.platform_fee + (c.platform_fee or 0), was.units + c.units)
        out.append((period, charges))
        period = following
    return out


def whole_period_start(period: Period) -> Change:
    before = period.start_at - 3 * DAY
    return Change(START, before, before, "basic", 1)


@FEW
@given(st.data())
def test_plan_changes_between_plans_of_one_price_split_the_period_into_parts_that_sum_to_the_whole(data):
    """Plan-change splits sum to the whole (issue 18). A subscription on plans of one price the
    whole period, changing plan N times: the units of its bills add up to quantity × days of the
    period, their exact amounts to price × quantity, and as each bill is rounded once (half up) the
    rounded amounts are within half a minor unit per bill of that: exact with one bill."""
    tz, anchor, period = data.draw(tenant_periods())
    price, quantity = data.draw(st.integers(0, 10**9)), data.draw(st.integers(1, 50))
    inside = st.lists(instants_near(tz, period, before=0, after=0).filter(lambda t: t > period.start_at),
                      min_size=1, max_size=5, unique=True)
    recorded = period.start_at - DAY
    changes = [Change(START, period.start_at - DAY, recorded, "basic", quantity)]
    changes += [Change(CHANGE, at, recorded, data.draw(st.sampled_from(PLANS)), quantity)
                for at in sorted(data.draw(inside))]
    catalog = catalog_of(dict.fromkeys(PLANS, price))
    following = next_period(period, anchor, tz)

    charges = charges_at_close(Subscription("sub", tuple(changes)), catalog, period, following, tz, {})
    whole = charges_at_close(Subscription("sub", (changes[0],)), catalog, period, following, tz, {})

    assert [(c.units, c.amount) for c in whole] == [(quantity * period_days(period), price * quantity)]
    assert {c.covered for c in charges} == {period} and {c.kind for c in charges} <= {IN_ARREARS}
    assert len({c.fee.plan_id for c in charges}) == len(charges)  # one bill per plan
    assert sum(c.units for c in charges) == quantity * period_days(period)
    assert sum(c.days for c in charges) == period_days(period)
    assert sum(Fraction(price * c.units, c.period_days) for c in charges) == price * quantity
    assert 2 * abs(sum(c.amount for c in charges) - price * quantity) <= len(charges)


def test_a_mid_period_change_bills_each_plan_for_its_days_the_change_day_to_the_new_plan():
    tz = "UTC"
    period = period_starting(date(2026, 4, 1), 1, tz)  # 30 days
    at = utc(2026, 4, 13, 15)
    changes = (whole_period_start(period), Change(CHANGE, at, at, "pro", 2))
    catalog = catalog_of({"basic": 3000, "pro": 9000})
    charges = charges_at_close(Subscription("sub", changes), catalog, period, next_period(period, 1, tz), tz, {})
    assert [(c.fee.plan_id, c.days, c.units, c.amount) for c in charges] == [
        ("basic", 12, 12, 1200), ("pro", 18, 36, 10800)]


# --- profit + parent fee = price --------------------------------------------------------------


@FEW
@given(st.data())
def test_every_charge_of_a_resold_fee_is_the_parent_fee_plus_the_profit_rated_the_same_way(data):
    """Profit + parent fee = price (issue 18). Each charge's platform fee is the parent's price rated
    over the charge's own units and period, its amount the provider's price rated the same way, so
    the profit (amount - platform fee) is the one minus the other; over every close that billed a
    covered period (an in-advance bill and its settlement) the same holds of the totals. The profit
    is within a minor unit of the price difference prorated directly (each amount rounds once)."""
    tz, anchor, period = data.draw(tenant_periods())
    price = {plan: data.draw(st.integers(0, 10**7)) for plan in PLANS}
    parent_price = data.draw(st.integers(0, 10**7))  # above a provider's price: a negative profit
    timing = data.draw(st.sampled_from([IN_ADVANCE, IN_ARREARS]))
    catalog = catalog_of(price, timing, dict.fromkeys(PLANS, "platform"), {"platform": parent_price})
    sub = Subscription("sub", data.draw(histories(tz, period)), data.draw(st.none() | instants_near(tz, period)))
    first = previous_period(period, anchor, tz)

    totals: dict[tuple[str, date], list[Charge]] = defaultdict(list)
    for _, charges in close_by_close(sub, catalog, tz, anchor, first, 4):
        for c in charges:
            plan = c.fee.plan_id
            assert c.platform_fee is not None
            if c.kind != ADJUSTMENT:
                assert c.amount == money.prorate(price[plan], c.units, c.period_days)
                assert c.platform_fee == money.prorate(parent_price, c.units, c.period_days)
            totals[c.fee.id, c.covered.start].append(c)
    for group in totals.values():
        plan, units, whole = group[0].fee.plan_id, sum(c.units for c in group), group[0].period_days
        profit = sum(c.amount for c in group) - sum(c.platform_fee for c in group)
        assert sum(c.platform_fee for c in group) == money.prorate(parent_price, units, whole)
        assert profit == money.prorate(price[plan], units, whole) - money.prorate(parent_price, units, whole)
        assert abs(profit - money.prorate(price[plan] - parent_price, units, whole)) <= 1


@FEW
@given(st.sampled_from(ZONES), st.integers(1, 28), st.integers(0, 10**7), st.integers(0, 10**7),
       st.integers(1, 20), st.sampled_from([IN_ADVANCE, IN_ARREARS]))
def test_a_resold_fee_over_a_whole_period_is_its_price_of_which_the_parent_price_is_the_platforms(
        tz, anchor, price, parent_price, quantity, timing):
    period = period_starting(date(2026, 2, anchor), anchor, tz)
    catalog = catalog_of({"basic": price}, timing, {"basic": "platform"}, {"platform": parent_price})
    start = period.start_at - 40 * DAY
    sub = Subscription("sub", (Change(START, start, start, "basic", quantity),))
    charges = charges_at_close(sub, catalog, period, next_period(period, anchor, tz), tz, {})
    assert charges and all((c.amount, c.platform_fee) == (price * quantity, parent_price * quantity)
                           for c in charges)
    assert all(c.amount - c.platform_fee == (price - parent_price) * quantity for c in charges)


def test_a_fee_that_resells_nothing_carries_no_platform_fee():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    sub = Subscription("sub", (whole_period_start(period),))
    charges = charges_at_close(sub, catalog_of({"basic": 3000}), period, next_period(period, 1, tz), tz, {})
    assert [(c.amount, c.platform_fee) for c in charges] == [(3000, None)]


# --- what a close bills -------------------------------------------------------------------------


def test_an_in_arrears_fee_bills_the_closed_period():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    sub = Subscription("sub", (whole_period_start(period),))
    [charge] = charges_at_close(sub, catalog_of({"basic": 3000}), period, next_period(period, 1, tz), tz, {})
    assert (charge.covered, charge.kind, charge.amount, charge.key) == (
        period, IN_ARREARS, 3000, ("sub", "basic-hosting", period.start))


def test_an_in_advance_fee_bills_the_following_period_at_the_close():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    following = next_period(period, 1, tz)
    starts = following.start_at + 5 * DAY  # a subscription starting in the coming period
    sub = Subscription("sub", (Change(START, starts, period.start_at, "basic", 1),))
    [charge] = charges_at_close(sub, catalog_of({"basic": 3100}, IN_ADVANCE), period, following, tz, {})
    assert (charge.covered, charge.kind, charge.days, charge.amount) == (following, IN_ADVANCE, 26, 2600)


def test_an_in_advance_period_not_billed_before_is_billed_at_its_own_close():
    """A subscription backdated into the open period was not known a period ahead: its close bills
    that period (as in advance) besides the following one."""
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    start = utc(2026, 4, 16)
    sub = Subscription("sub", (Change(START, start, utc(2026, 4, 20), "basic", 1),))
    charges = charges_at_close(sub, catalog_of({"basic": 3000}, IN_ADVANCE), period, next_period(period, 1, tz),
                               tz, {})
    assert [(c.covered.start, c.kind, c.amount) for c in charges] == [
        (date(2026, 4, 1), IN_ADVANCE, 1500), (date(2026, 5, 1), IN_ADVANCE, 3000)]


@FEW
@given(st.data())
def test_a_cancellation_credits_the_in_advance_days_it_did_not_use_at_the_next_close(data):
    """At the close after an in-advance bill, a cancellation during the billed period gives an
    adjustment of (the period rated over the days now active) - (what was billed for it)."""
    tz, anchor, period = data.draw(tenant_periods())
    following = next_period(period, anchor, tz)
    price, quantity = data.draw(st.integers(0, 10**9)), data.draw(st.integers(1, 9))
    end = data.draw(instants_near(tz, following, before=0, after=0).filter(lambda t: t > following.start_at))
    # recorded during the billed period (backdated or ahead of its instant): after the first close
    recorded = data.draw(instants_near(tz, following, before=0, after=0).filter(
        lambda t: following.start_at < t < following.end_at))
    start = period.start_at - 10 * DAY
    sub = Subscription("sub", (Change(START, start, start, "basic", quantity), Change(END, end, recorded)))
    catalog = catalog_of({"basic": price}, IN_ADVANCE)

    [(_, first), (_, second)] = close_by_close(sub, catalog, tz, anchor, period, 2)
    [advance] = [c for c in first if c.covered == following]
    assert (advance.kind, advance.amount) == (IN_ADVANCE, price * quantity)  # the whole period, as then known
    adjustments = [c for c in second if c.covered == following]  # none when every day was used
    used = active_days(sub.changes, following.end_at, following, tz)
    assert len(adjustments) == (used < period_days(following)) and {c.kind for c in adjustments} <= {ADJUSTMENT}
    credit = money.prorate(price, quantity * used, period_days(following)) - advance.amount
    assert sum(c.amount for c in adjustments) == credit <= 0
    assert sum(c.units for c in adjustments) == quantity * (used - period_days(following))
    assert [c for c in second if c.covered != following] == []  # nothing after the end


@FEW
@given(st.data())
def test_stepping_close_by_close_an_in_advance_fee_bills_each_period_what_in_arrears_would(data):
    """Advance + adjustment == arrears: for any history (changes, cancellation, backdating, a
    trial), the in-advance bill of each covered period plus its settlement at the period's own close
    is exactly what the same fee in arrears bills at that close."""
    tz, anchor, period = data.draw(tenant_periods())
    prices = {plan: data.draw(st.integers(0, 10**8)) for plan in PLANS}
    fees = {plan: [Fee(f"{plan}-ahead", plan, "Hosting", IN_ADVANCE), Fee(f"{plan}-after", plan, "Hosting",
                                                                              IN_ARREARS)] for plan in PLANS}
    catalog = Catalog(fees, {f"{plan}-{when}": [Price(ALWAYS, utc(2000, 1, 1), amount)]
                             for plan, amount in prices.items() for when in ("ahead", "after")})
    sub = Subscription("sub", data.draw(histories(tz, period)), data.draw(st.none() | instants_near(tz, period)))
    first = previous_period(period, anchor, tz)

    totals: dict[tuple[str, str, date], int] = defaultdict(int)
    closed = []
    for closing, charges in close_by_close(sub, catalog, tz, anchor, first, 4):
        closed.append(closing.start)
        for c in charges:
            assert c.kind == IN_ARREARS or c.fee.timing == IN_ADVANCE
            totals[c.fee.plan_id, c.fee.timing, c.covered.start] += c.amount
    for (plan, timing, start), amount in totals.items():
        if start in closed:
            twin = IN_ARREARS if timing == IN_ADVANCE else IN_ADVANCE
            assert totals.get((plan, twin, start), 0) == amount


@FEW
@given(st.data())
def test_a_change_recorded_after_the_period_ends_is_ignored_by_its_close(data):
    """Bitemporal: the close rates the history as known at the period's end, however late it runs."""
    tz, anchor, period = data.draw(tenant_periods())
    changes = data.draw(histories(tz, period))
    late = period.end_at + timedelta(seconds=data.draw(st.integers(1, 60 * 86400)))
    if changes[-1].kind == END:
        changes = changes[:-1]
    at = changes[-1].at + timedelta(seconds=data.draw(st.integers(1, 90 * 86400)))
    recorded_late = max(late, changes[-1].recorded_at)
    later = data.draw(st.sampled_from([Change(END, at, recorded_late),
                                       Change(CHANGE, at, recorded_late, "pro", 7)]))
    timing = data.draw(st.sampled_from([IN_ADVANCE, IN_ARREARS]))
    catalog = catalog_of({plan: 1000 * (i + 1) for i, plan in enumerate(PLANS)}, timing)
    following = next_period(period, anchor, tz)

    as_known = charges_at_close(Subscription("sub", changes), catalog, period, following, tz, {})
    assert charges_at_close(Subscription("sub", (*changes, later)), catalog, period, following, tz, {}) == as_known


def test_an_unbilled_plan_bills_nothing():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    catalog = catalog_of({"basic": 3000})
    catalog = Catalog(catalog.fees, catalog.prices, frozenset({"basic"}))
    sub = Subscription("sub", (whole_period_start(period),))
    assert charges_at_close(sub, catalog, period, next_period(period, 1, tz), tz, {}) == []


# --- price versions -----------------------------------------------------------------------------

period_starts = st.sampled_from([ALWAYS, date(2026, 1, 5), date(2026, 2, 5), date(2026, 3, 5)])


@FEW
@given(st.lists(st.builds(Price, period_starts, st.integers(0, 40).map(lambda d: utc(2026, 1, 1) + d * DAY),
                          st.integers(0, 10**6)), max_size=8, unique_by=lambda p: (p.effective_from, p.recorded_at)),
       period_starts, st.integers(0, 40).map(lambda d: utc(2026, 1, 1) + d * DAY))
def test_the_price_of_a_period_is_the_latest_effective_by_its_start_among_those_recorded_by_then(
        prices, period_start, known_at):
    known = [p for p in prices if p.effective_from <= period_start and p.recorded_at <= known_at]
    expected = max(known, key=lambda p: (p.effective_from, p.recorded_at)).amount if known else None
    assert price_of(prices, period_start, known_at) == expected


def test_a_price_change_recorded_after_a_close_does_not_rewrite_the_closed_period():
    tz = "UTC"
    period = period_starting(date(2026, 4, 1), 1, tz)
    fee = Fee("hosting", "basic", "Hosting", IN_ARREARS)
    rewrite = Price(period.start, period.end_at + DAY, 5000)  # recorded after the period ended
    catalog = Catalog({"basic": [fee]}, {"hosting": [Price(ALWAYS, utc(2026, 1, 1), 3000), rewrite]})
    sub = Subscription("sub", (whole_period_start(period),))
    [charge] = charges_at_close(sub, catalog, period, next_period(period, 1, tz), tz, {})
    assert charge.amount == 3000


def test_a_fee_with_no_price_for_the_period_is_refused():
    tz, period = "UTC", period_starting(date(2026, 4, 1), 1, "UTC")
    fee = Fee("hosting", "basic", "Hosting", IN_ARREARS)
    catalog = Catalog({"basic": [fee]}, {"hosting": [Price(date(2026, 5, 1), utc(2026, 1, 1), 3000)]})
    with pytest.raises(ValueError):
        charges_at_close(Subscription("sub", (whole_period_start(period),)), catalog, period,
                         next_period(period, 1, tz), tz, {})
