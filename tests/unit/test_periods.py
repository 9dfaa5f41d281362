"""Invoicing periods: local midnight on the anchor day, in the tenant's zone, tiling time.

A period starts at the first instant of its anchor day (1-28) in the tenant's IANA zone and
ends just before the next one; it is named by its start date. Properties run over every
anchor day, a fixed set of awkward zones (half-hour and 45-minute offsets, DST at midnight,
southern-hemisphere DST, a zone that crossed the date line) and a sample of all zones.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.periods.calendar import (
    Period,
    due_date,
    next_period,
    period_containing,
    period_starting,
    previous_period,
)

UTC = timezone.utc
EPS = timedelta(microseconds=1)
DAY = timedelta(days=1)

#: UTC, both hemispheres' DST, +12:45/+13:45, +05:30, DST that used to start or end at midnight
#: (Sao Paulo, Santiago, Tehran), and Apia, which skipped 30 Dec 2011 to cross the date line.
AWKWARD_ZONES = [
    "UTC",
    "Australia/Sydney",
    "America/New_York",
    "Pacific/Chatham",
    "Europe/London",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "America/Santiago",
    "Asia/Tehran",
]
ALL_ZONES = sorted(available_timezones())

#: Keeps the unit suite fast; deadline off because the first lookup of a zone reads its file.
FEW = settings(max_examples=200, deadline=None)

anchor_days = st.integers(min_value=1, max_value=28)
zones = st.one_of(st.sampled_from(AWKWARD_ZONES), st.sampled_from(ALL_ZONES))
instants = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local_date(instant: datetime, tz: str) -> date:
    return instant.astimezone(ZoneInfo(tz)).date()


def assert_starts_on_its_local_anchor_day(period: Period, anchor_day: int, tz: str) -> None:
    """start_at is the first instant whose local date is the start date (or later, if that day was skipped)."""
    assert period.start.day == anchor_day
    assert local_date(period.start_at - EPS, tz) < period.start <= local_date(period.start_at, tz)


# --- properties over every anchor day and many zones -----------------------------------------


@FEW
@given(instant=instants, anchor_day=anchor_days, tz=zones)
def test_the_period_containing_an_instant_contains_it_and_starts_on_the_anchor_day(instant, anchor_day, tz):
    period = period_containing(instant, anchor_day, tz)

    assert period.start_at <= instant < period.end_at
    assert period.contains(instant)
    assert period.start.day == anchor_day
    assert period.name == period.start.isoformat()


@FEW
@given(instant=instants, anchor_day=anchor_days, tz=zones)
def test_a_period_starts_at_the_first_instant_of_its_local_start_day(instant, anchor_day, tz):
    period = period_containing(instant, anchor_day, tz)

    assert_starts_on_its_local_anchor_day(period, anchor_day, tz)
    assert period.start_at.utcoffset() == timedelta(0)
    assert period.end_at.utcoffset() == timedelta(0)


@FEW
@given(instant=instants, anchor_day=anchor_days, tz=zones)
def test_consecutive_periods_tile_time_with_no_gap_and_no_overlap(instant, anchor_day, tz):
    period = period_containing(instant, anchor_day, tz)
    following = next_period(period, anchor_day, tz)
    preceding = previous_period(period, anchor_day, tz)

    assert following.start_at == period.end_at
    assert preceding.end_at == period.start_at
    assert previous_period(following, anchor_day, tz) == period
    assert next_period(preceding, anchor_day, tz) == period
    assert period.end == following.start - DAY
    assert period.start_at < period.end_at


@FEW
@given(data=st.data(), anchor_day=anchor_days, tz=zones,
       start=st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 1, 1)))
def test_every_instant_of_a_period_maps_to_that_period(data, anchor_day, tz, start):
    period = period_starting(start.replace(day=anchor_day), anchor_day, tz)
    length_us = (period.end_at - period.start_at) // EPS
    inside = period.start_at + data.draw(st.integers(0, length_us - 1), label="offset_us") * EPS

    assert period_containing(inside, anchor_day, tz) == period
    assert period_containing(period.start_at, anchor_day, tz) == period
    assert period_containing(period.end_at - EPS, anchor_day, tz) == period
    assert period_containing(period.end_at, anchor_day, tz) == next_period(period, anchor_day, tz)
    assert period_containing(period.start_at - EPS, anchor_day, tz) == previous_period(period, anchor_day, tz)


@FEW
@given(instant=instants, anchor_day=anchor_days, tz=zones,
       offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_the_offset_an_instant_is_written_in_does_not_change_its_period(instant, anchor_day, tz, offset_minutes):
    written_elsewhere = instant.astimezone(timezone(timedelta(minutes=offset_minutes)))

    assert period_containing(written_elsewhere, anchor_day, tz) == period_containing(instant, anchor_day, tz)


@pytest.mark.parametrize("tz", AWKWARD_ZONES)
def test_periods_tile_thirty_years_for_every_anchor_day(tz):
    for anchor_day in range(1, 29):
        period = period_starting(date(2000, 1, anchor_day), anchor_day, tz)
        while period.start.year < 2030:
            following = next_period(period, anchor_day, tz)
            assert_starts_on_its_local_anchor_day(period, anchor_day, tz)
            assert local_date(period.start_at, tz) == period.start  # none of these zones skipped an anchor day
            assert following.start_at == period.end_at
            assert period.end == following.start - DAY
            assert period_containing(period.start_at, anchor_day, tz) == period
            assert period_containing(period.end_at - EPS, anchor_day, tz) == period
            period = following


# --- explicit examples -----------------------------------------------------------------------


def test_mid_november_in_sydney_with_anchor_25_is_in_the_period_starting_25_october():
    period = period_containing(utc(2026, 11, 10, 12), 25, "Australia/Sydney")

    assert (period.start, period.end) == (date(2026, 10, 25), date(2026, 11, 24))
    assert period.name == "2026-10-25"
    assert period.start_at == utc(2026, 10, 24, 13)  # 00:00 AEDT, UTC+11
    assert period.end_at == utc(2026, 11, 24, 13)


def test_the_last_instant_before_end_at_is_in_the_period_and_end_at_is_in_the_next():
    period = period_starting(date(2026, 10, 25), 25, "Australia/Sydney")

    assert period_containing(utc(2026, 11, 24, 12, 59, 59, 999999), 25, "Australia/Sydney") == period
    later = period_containing(utc(2026, 11, 24, 13), 25, "Australia/Sydney")
    assert later.start == date(2026, 11, 25)
    assert later.start_at == period.end_at


def test_a_sydney_period_spanning_the_april_dst_change_is_not_whole_days():
    period = period_starting(date(2026, 3, 25), 25, "Australia/Sydney")  # DST ends 5 April 2026

    assert period.start_at == utc(2026, 3, 24, 13)  # 00:00 AEDT, UTC+11
    assert period.end_at == utc(2026, 4, 24, 14)  # 00:00 AEST, UTC+10
    assert period.end_at - period.start_at == timedelta(days=31, hours=1)
    assert (period.end_at - period.start_at) % DAY != timedelta(0)


def test_a_sydney_period_spanning_the_october_dst_change_is_an_hour_short():
    period = period_starting(date(2026, 9, 25), 25, "Australia/Sydney")  # DST starts 4 October 2026

    assert (period.start_at, period.end_at) == (utc(2026, 9, 24, 14), utc(2026, 10, 24, 13))
    assert period.end_at - period.start_at == timedelta(days=29, hours=23)


@pytest.mark.parametrize(("start", "anchor_day", "end"), [
    (date(2026, 1, 28), 28, date(2026, 2, 27)),
    (date(2026, 2, 28), 28, date(2026, 3, 27)),
    (date(2028, 2, 28), 28, date(2028, 3, 27)),
    (date(2026, 2, 1), 1, date(2026, 2, 28)),
    (date(2028, 2, 1), 1, date(2028, 2, 29)),
])
def test_february_periods_end_the_day_before_the_next_anchor_day(start, anchor_day, end):
    assert period_starting(start, anchor_day, "UTC").end == end


def test_29_february_belongs_to_the_period_starting_28_february():
    period = period_containing(utc(2028, 2, 29, 23, 59), 28, "UTC")

    assert (period.start, period.end) == (date(2028, 2, 28), date(2028, 3, 27))


def test_a_december_period_rolls_over_into_january():
    period = period_containing(utc(2027, 1, 3), 15, "UTC")

    assert (period.start, period.end) == (date(2026, 12, 15), date(2027, 1, 14))
    assert next_period(period, 15, "UTC").start == date(2027, 1, 15)
    december = period_starting(date(2026, 12, 1), 1, "UTC")
    assert december.end == date(2026, 12, 31)
    assert next_period(december, 1, "UTC").start == date(2027, 1, 1)
    assert previous_period(period_starting(date(2027, 1, 1), 1, "UTC"), 1, "UTC") == december


def test_chatham_periods_start_at_a_45_minute_offset_from_utc():
    winter = period_starting(date(2026, 7, 1), 1, "Pacific/Chatham")  # UTC+12:45
    summer = period_starting(date(2026, 1, 1), 1, "Pacific/Chatham")  # UTC+13:45

    assert winter.start_at == utc(2026, 6, 30, 11, 15)
    assert summer.start_at == utc(2025, 12, 31, 10, 15)
    assert period_containing(utc(2026, 6, 30, 11, 14, 59), 1, "Pacific/Chatham").start == date(2026, 6, 1)
    assert period_containing(utc(2026, 6, 30, 11, 15), 1, "Pacific/Chatham") == winter


def test_kolkata_periods_start_at_a_half_hour_offset_from_utc():
    assert period_starting(date(2026, 5, 10), 10, "Asia/Kolkata").start_at == utc(2026, 5, 9, 18, 30)


@pytest.mark.parametrize(("tz", "start", "start_at"), [
    ("America/Santiago", date(2026, 9, 6), utc(2026, 9, 6, 4)),  # 00:00 -04 -> 01:00 -03
    ("America/Santiago", date(2004, 10, 10), utc(2004, 10, 10, 4)),
    ("Asia/Tehran", date(2001, 3, 22), utc(2001, 3, 21, 20, 30)),  # 00:00 +03:30 -> 01:00 +04:30
])
def test_where_local_midnight_does_not_exist_the_period_starts_at_the_first_instant_of_the_day(tz, start, start_at):
    period = period_starting(start, start.day, tz)
    local_start = period.start_at.astimezone(ZoneInfo(tz))

    assert period.start_at == start_at
    assert (local_start.date(), local_start.hour, local_start.minute) == (start, 1, 0)
    assert period_containing(start_at - EPS, start.day, tz) == previous_period(period, start.day, tz)
    assert period_containing(start_at, start.day, tz) == period


def test_where_local_midnight_happens_twice_the_period_starts_at_the_first():
    # Havana, 28 Oct 2001: 01:00 CDT falls back to 00:00 CST, so 00:00 happens at 04:00Z and 05:00Z.
    period = period_starting(date(2001, 10, 28), 28, "America/Havana")

    assert period.start_at == utc(2001, 10, 28, 4)
    assert period_containing(utc(2001, 10, 28, 5), 28, "America/Havana") == period
    assert period_containing(utc(2001, 10, 28, 3, 59), 28, "America/Havana").start == date(2001, 9, 28)


def test_a_santiago_period_ending_on_a_midnight_that_falls_back_keeps_its_extra_hour():
    # Santiago, 14 Mar 2004: 24:00 -03 falls back to 23:00 -04, so 13 March has 25 hours.
    period = period_starting(date(2004, 2, 14), 14, "America/Santiago")

    assert period.end_at == utc(2004, 3, 14, 4)
    assert period.end_at - period.start_at == timedelta(days=29, hours=1)


def test_an_instant_whose_clock_fell_back_across_midnight_stays_in_the_period_that_already_started():
    # Casey, 5 Mar 2010: at 02:00 +11 (15:00Z) clocks went back to 23:00 +08 on 4 March.
    period = period_starting(date(2010, 3, 5), 5, "Antarctica/Casey")
    instant = utc(2010, 3, 4, 15, 30)

    assert period.start_at == utc(2010, 3, 4, 13)  # the first 00:00 of 5 March, +11
    assert local_date(instant, "Antarctica/Casey") == date(2010, 3, 4)
    assert period_containing(instant, 5, "Antarctica/Casey") == period
    assert period_containing(period.start_at - EPS, 5, "Antarctica/Casey").start == date(2010, 2, 5)


def test_a_skipped_anchor_day_starts_the_period_at_the_first_instant_after_it():
    # Kwajalein crossed the date line after 20 Aug 1993: 21 August never happened there.
    period = period_starting(date(1993, 8, 21), 21, "Pacific/Kwajalein")

    assert period.start_at == utc(1993, 8, 21, 12)
    assert period.start_at.astimezone(ZoneInfo("Pacific/Kwajalein")).isoformat() == "1993-08-22T00:00:00+12:00"
    assert previous_period(period, 21, "Pacific/Kwajalein").end_at == period.start_at


# --- refusals --------------------------------------------------------------------------------


@FEW
@given(day=st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 1, 1)), anchor_day=anchor_days)
def test_a_period_cannot_start_on_a_day_other_than_the_anchor_day(day, anchor_day):
    if day.day == anchor_day:
        assert period_starting(day, anchor_day, "UTC").start == day
    else:
        with pytest.raises(ValueError, match="not a period start"):
            period_starting(day, anchor_day, "UTC")


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="aware"):
        period_containing(datetime(2026, 11, 10, 12), 25, "Australia/Sydney")


# --- due dates -------------------------------------------------------------------------------


def test_a_period_closed_on_25_november_with_charge_day_2_is_due_2_december():
    period = period_starting(date(2026, 10, 25), 25, "Australia/Sydney")
    closed_on = period.end + DAY

    assert closed_on == date(2026, 11, 25)
    assert due_date(closed_on, 2) == date(2026, 12, 2)


def test_a_period_closed_on_the_charge_day_is_due_that_day():
    assert due_date(date(2026, 11, 2), 2) == date(2026, 11, 2)


def test_a_period_closed_before_the_charge_day_is_due_later_that_month():
    assert due_date(date(2026, 11, 1), 28) == date(2026, 11, 28)


def test_a_period_closed_in_december_after_the_charge_day_is_due_in_january():
    assert due_date(date(2026, 12, 20), 5) == date(2027, 1, 5)
    assert due_date(date(2026, 12, 31), 1) == date(2027, 1, 1)


@FEW
@given(closed_on=st.dates(min_value=date(1950, 1, 1), max_value=date(2100, 1, 1)),
       charge_day=st.integers(min_value=1, max_value=28))
def test_the_due_date_is_the_first_charge_day_on_or_after_closing(closed_on, charge_day):
    due = due_date(closed_on, charge_day)

    assert due >= closed_on
    assert due.day == charge_day
    assert due - closed_on < timedelta(days=31)
    days_before = (due - closed_on).days
    assert all((closed_on + k * DAY).day != charge_day for k in range(days_before))


def test_money_collected_is_paid_out_on_the_first_payout_day_at_or_after_it():
    from aggregator.periods.calendar import payout_date_for

    utc = timezone.utc
    assert payout_date_for(datetime(2026, 11, 2, 9, tzinfo=utc), 10, "UTC") == date(2026, 11, 10)
    assert payout_date_for(datetime(2026, 11, 10, tzinfo=utc), 10, "UTC") == date(2026, 11, 10)  # at its midnight
    assert payout_date_for(datetime(2026, 11, 10, 0, 0, 1, tzinfo=utc), 10, "UTC") == date(2026, 12, 10)
    assert payout_date_for(datetime(2026, 12, 12, tzinfo=utc), 10, "UTC") == date(2027, 1, 10)
    # Sydney's 10 December begins at 13:00 UTC on the 9th
    assert payout_date_for(datetime(2026, 12, 9, 12, 59, tzinfo=utc), 10, "Australia/Sydney") == date(2026, 12, 10)
    assert payout_date_for(datetime(2026, 12, 9, 13, 1, tzinfo=utc), 10, "Australia/Sydney") == date(2027, 1, 10)


def test_a_payout_day_pays_the_period_before_the_one_containing_it():
    from aggregator.periods.calendar import payout_period

    assert payout_period(date(2026, 11, 10), 25, "UTC").start == date(2026, 9, 25)
    assert payout_period(date(2026, 11, 10), 1, "UTC").start == date(2026, 10, 1)
    assert payout_period(date(2026, 11, 28), 25, "UTC").start == date(2026, 10, 25)
