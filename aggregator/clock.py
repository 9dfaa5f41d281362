"""Clocks. Use cases never read the time themselves; they are handed `now` by a clock."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable, Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock that says what it is told: for tests and for replaying a moment."""

    def __init__(self, now: datetime):
        self.set(now)

    def set(self, now: datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._now = now.astimezone(timezone.utc)

    def now(self) -> datetime:
        return self._now


class Clocks:
    """Chooses the clock for a caller: live mode always runs on `base` (real time in production);
    test mode runs on the tenant's test clock, `test_clock(tenant_id, base)` (given by the
    composition root: `aggregator.testmode.TenantTestClock`)."""

    def __init__(self, base: Clock, test_clock: Callable[[str, Clock], Clock]):
        self.base, self.test_clock = base, test_clock

    def for_principal(self, principal) -> Clock:
        return self.for_tenant(principal.tenant_id, principal.livemode)

    def for_tenant(self, tenant_id: str, livemode: bool) -> Clock:
        if livemode:
            return self.base
        return self.test_clock(tenant_id, self.base)
