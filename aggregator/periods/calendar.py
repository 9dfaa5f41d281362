"""Invoicing periods: pure functions of an anchor day and a time zone.

A period starts at 00:00 local time on the anchor day and ends just before the next one
(anchor 25: "the 25th until the 24th"). It is named by its start date. Boundaries are
instants (UTC); consecutive periods tile time with no gap and no overlap, across DST
changes and month lengths. Where local midnight does not exist (a DST jump at 00:00) the
period starts at the first instant of that local day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Period:
    start: date  # the local anchor date that names the period
    end: date  # the last local day in the period (the day before the next start)
    start_at: datetime  # UTC, inclusive
    end_at: datetime  # UTC, exclusive

    def contains(self, instant: datetime) -> bool:
        return self.start_at <= instant < self.end_at

    @property
    def name(self) -> str:
        return self.start.isoformat()


def _add_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    return date(index // 12, index % 12 + 1, d.day)  # anchor days are 1-28: always valid


def start_date_containing(local_day: date, anchor_day: int) -> date:
    """The start date of the period that contains this local calendar day."""
    candidate = local_day.replace(day=anchor_day)
    return candidate if local_day >= candidate else _add_months(candidate, -1)


def local_midnight(day: date, tz: str) -> datetime:
    """The first instant of a local day, in UTC."""
    # A non-existent midnight (clocks jump forward at 00:00) resolves to the first instant after
    # the gap; an ambiguous one (fold=0) to its first occurrence.
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


@lru_cache(maxsize=4096)  # a pure function, asked the same few questions on every bill
def period_starting(start: date, anchor_day: int, tz: str) -> Period:
    if start.day != anchor_day:
        raise ValueError(f"{start.isoformat()} is not a period start for anchor day {anchor_day}")
    following = _add_months(start, 1)
    return Period(start, following - timedelta(days=1),
                  local_midnight(start, tz), local_midnight(following, tz))


def period_containing(instant: datetime, anchor_day: int, tz: str) -> Period:
    if instant.tzinfo is None:
        raise ValueError("period_containing needs an aware datetime")
    local_day = instant.astimezone(ZoneInfo(tz)).date()
    period = period_starting(start_date_containing(local_day, anchor_day), anchor_day, tz)
    # The local date decides, except where a boundary is not local midnight exactly.
    if instant < period.start_at:  # pragma: no cover - zone-specific edge
        return previous_period(period, anchor_day, tz)
    if instant >= period.end_at:  # pragma: no cover - zone-specific edge
        return next_period(period, anchor_day, tz)
    return period


def next_period(period: Period, anchor_day: int, tz: str) -> Period:
    return period_starting(_add_months(period.start, 1), anchor_day, tz)


def previous_period(period: Period, anchor_day: int, tz: str) -> Period:
    return period_starting(_add_months(period.start, -1), anchor_day, tz)


def due_date(closed_on: date, charge_day: int) -> date:
    """The first `charge_day` on or after the day the period closed (25 Oct-24 Nov -> 2 Dec)."""
    candidate = closed_on.replace(day=charge_day)
    return candidate if candidate >= closed_on else _add_months(candidate, 1)


def period_due_date(period: Period, charge_day: int, payment_terms_days: int | None = None) -> date:
    """When the invoices of `period` are due, whenever its close actually runs: they are issued
    the day it ends (the day after its last day), so `invoice_due_date` of that day."""
    return invoice_due_date(period.end + timedelta(days=1), charge_day, payment_terms_days)


#: The longest payment terms a tenant may give (days after the invoice).
MAX_PAYMENT_TERMS_DAYS = 365


def invoice_due_date(issued_on: date, charge_day: int, payment_terms_days: int | None) -> date:
    """When an invoice issued on the local day `issued_on` is due: `payment_terms_days` days after
    it (net terms; 0: the same day), or, without terms (None), the first `charge_day` on or after
    it."""
    if payment_terms_days is None:
        return due_date(issued_on, charge_day)
    if not 0 <= payment_terms_days <= MAX_PAYMENT_TERMS_DAYS:
        raise ValueError(f"payment terms are 0-{MAX_PAYMENT_TERMS_DAYS} days, not {payment_terms_days}")
    return issued_on + timedelta(days=payment_terms_days)


def overdue_from(due: date, tz: str) -> datetime:
    """The instant an invoice still unpaid on its due date becomes overdue: the end of that day in
    the tenant's time zone (the next local midnight), whatever its charges and retries do."""
    return local_midnight(due + timedelta(days=1), tz)


def payout_date_for(instant: datetime, payout_day: int, tz: str) -> date:
    """The first payout day (day `payout_day` of a month, from its local midnight) at or after
    `instant`: money collected at `instant` is paid out on that day."""
    local_day = instant.astimezone(ZoneInfo(tz)).date()
    candidate = local_day.replace(day=payout_day)
    if candidate < local_day or (candidate == local_day and local_midnight(candidate, tz) < instant):
        candidate = _add_months(candidate, 1)
    return candidate


def payout_period(payout_date: date, anchor_day: int, tz: str) -> Period:
    """The invoicing period a payout day mostly pays: the one before the period containing it
    (period 25 Sep-24 Oct, charged 2 Nov, paid out 10 Nov)."""
    containing = period_starting(start_date_containing(payout_date, anchor_day), anchor_day, tz)
    return previous_period(containing, anchor_day, tz)
