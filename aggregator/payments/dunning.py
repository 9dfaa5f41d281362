"""Dunning: what follows a failed charge of an open invoice. A pure function of the failure, the
tenant's settings and time; the charge service applies the step it returns
(`charge_service._failed`) and `transitions` writes it.

* An amount the gateway cannot charge (`amount_not_chargeable`) waits for a recorded payment
  (collection `manual`): no retry.
* A hard decline (a lost card, a closed account: `declines.is_hard`) waits for a new payment
  method (`payment_method_required`): no retry until one is set.
* Otherwise the charge is retried on the schedule (`schedule.next_retry`: `retry_days` after
  the *first* failure, at the same wall-clock time), `retrying`.
* When the schedule has run out, collection gives up (the final failure): the invoice stays
  open `past_due`, or is written off (`after_final_failure = uncollectible`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, Sequence

from .schedule import next_retry

#: The failure code of an amount the gateway cannot take (money.to_stripe_amount refused it).
NOT_CHARGEABLE = "amount_not_chargeable"


class DunningSettings(Protocol):
    """The tenant's settings dunning reads (TenantSettings has them)."""

    retry_days: Sequence[int] | None
    timezone: str
    after_final_failure: str  # "uncollectible" | "past_due"


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as dunning needs it."""

    failure_code: str | None
    hard_decline: bool


@dataclass(frozen=True)
class Step:
    """What to do next. `collection`: the invoice's collection state from now on (None: left as
    it is); `retry_at`: the next charge (None: no automatic charge); `final`: the schedule ran
    out; `write_off`: mark the invoice uncollectible."""

    collection: str | None
    retry_at: datetime | None
    first_failed_at: datetime
    final: bool = False
    write_off: bool = False


def next_step(outcome: Failure, settings: DunningSettings, first_failed_at: datetime | None,
              now: datetime) -> Step:
    """The step after `outcome` failed at `now`; `first_failed_at`: the invoice's first failure
    (None: this is the first)."""
    first = first_failed_at or now
    if outcome.failure_code == NOT_CHARGEABLE:
        return Step("manual", None, first)
    if outcome.hard_decline:
        return Step("payment_method_required", None, first)
    retry_at = next_retry(first, now, settings.retry_days or [], settings.timezone)
    if retry_at is not None:
        return Step("retrying", retry_at, first)
    past_due = settings.after_final_failure == "past_due"
    return Step("past_due" if past_due else None, None, first, final=True,
                write_off=settings.after_final_failure == "uncollectible")
