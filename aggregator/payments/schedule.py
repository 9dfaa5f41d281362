"""When invoices are charged and retried: pure functions of the tenant's settings and time zone.

* An invoice is charged at `charge_hour` (default 09:00) of its due date, in the tenant's time
  zone, or when it is finalized if that is later (a draft finalized after its due date).
* A declined charge is retried `retry_days` (default 3, 5 and 7) days after the *first* failure,
  at the same wall-clock time (a DST change does not move it); a failure on the last retry day
  is the final one. A failure in between (an operator's charge) does not shift the schedule.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Sequence
from zoneinfo import ZoneInfo


def charge_at(due_date: date, charge_hour: int, tz: str, not_before: datetime | None = None) -> datetime:
    at = datetime.combine(due_date, time(charge_hour), ZoneInfo(tz)).astimezone(timezone.utc)
    return max(at, not_before) if not_before is not None else at


def next_retry(first_failed_at: datetime, failed_at: datetime, retry_days: Sequence[int], tz: str) -> datetime | None:
    """The first retry instant after `failed_at`, or None: the schedule has run out."""
    local = first_failed_at.astimezone(ZoneInfo(tz))
    for days in sorted(retry_days):
        at = datetime.combine(local.date() + timedelta(days=days), local.timetz().replace(tzinfo=None),
                              ZoneInfo(tz)).astimezone(timezone.utc)
        if at > failed_at:
            return at
    return None
