"""The due-date rule as pure functions: without terms, the first charge day on or after the issue
day; with terms, that many days after it; and the instant an unpaid invoice becomes overdue, the
end of its due date in the tenant's time zone."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.periods.calendar import (
    MAX_PAYMENT_TERMS_DAYS,
    due_date,
    invoice_due_date,
    overdue_from,
    period_due_date,
    period_starting,
)

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2090, 12, 31))
zones = st.sampled_from(["UTC", "Australia/Sydney", "America/New_York", "Pacific/Kiritimati", "America/Havana",
                         "Asia/Kolkata", "Pacific/Chatham"])


@given(issued=days, charge_day=st.integers(1, 28), terms=st.integers(0, MAX_PAYMENT_TERMS_DAYS))
def test_terms_make_the_due_date_that_many_days_after_the_issue_day(issued, charge_day, terms):
    assert invoice_due_date(issued, charge_day, terms) == issued + timedelta(days=terms)


@given(issued=days, charge_day=st.integers(1, 28))
def test_without_terms_the_due_date_is_the_first_charge_day_on_or_after_the_issue_day(issued, charge_day):
    due = invoice_due_date(issued, charge_day, None)
    assert due == due_date(issued, charge_day)
    assert due.day == charge_day and issued <= due < issued + timedelta(days=32)
    assert all((issued + timedelta(days=n)).day != charge_day for n in range((due - issued).days))


def test_a_period_is_due_from_the_day_after_its_last_day():
    period = period_starting(date(2026, 10, 25), 25, "Australia/Sydney")
    assert period_due_date(period, 2) == date(2026, 12, 2)
    assert period_due_date(period, 2, 14) == date(2026, 12, 9)  # PLATFORMA: due 14 days after the invoice
    assert period_due_date(period, 2, 0) == date(2026, 11, 25)


@pytest.mark.parametrize("terms", [-1, MAX_PAYMENT_TERMS_DAYS + 1])
def test_terms_outside_the_range_are_refused(terms):
    with pytest.raises(ValueError):
        invoice_due_date(date(2026, 11, 25), 2, terms)


@given(due=days, tz=zones)
def test_an_invoice_becomes_overdue_at_the_end_of_its_due_date_in_the_tenant_zone(due, tz):
    at = overdue_from(due, tz)
    assert at.tzinfo is not None
    zone = ZoneInfo(tz)
    # every instant of the due date comes before it, and it is on the next local day
    last_moment = datetime.combine(due, time(23, 59, 59), zone).astimezone(timezone.utc)
    assert last_moment < at
    assert at.astimezone(zone).date() == due + timedelta(days=1)


def test_sydney_examples():
    assert overdue_from(date(2026, 12, 2), "Australia/Sydney") == datetime(2026, 12, 2, 13, tzinfo=timezone.utc)
    assert overdue_from(date(2026, 6, 2), "Australia/Sydney") == datetime(2026, 6, 2, 14, tzinfo=timezone.utc)
