"""When a failed delivery is tried again: an exponential backoff over about three days (real
time), after which the delivery has failed and its endpoint is disabled. Pure."""
from __future__ import annotations

from datetime import timedelta

#: The wait after the 1st, 2nd, … failed attempt; after the last, nothing more is tried.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=5),
    timedelta(hours=10), timedelta(hours=10), timedelta(hours=20), timedelta(hours=24))

#: Every attempt there will be: the first and one per wait of the schedule.
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1


def retry_delay(failed_attempts: int) -> timedelta | None:
    """How long to wait after `failed_attempts` failures before the next attempt; None: give up."""
    if failed_attempts < 1:
        raise ValueError("retry_delay is asked after a failed attempt")
    return RETRY_SCHEDULE[failed_attempts - 1] if failed_attempts <= len(RETRY_SCHEDULE) else None
