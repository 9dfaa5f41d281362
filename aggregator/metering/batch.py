"""A batch of usage event bodies judged one by one, as the batch API answers it: each body
loaded (or refused), the valid ones recorded together, each answered {status, event | error}.
Shared by `POST /v1/usage_events/batch` and `aggregator usage send`."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ..accounts.keys import Principal
from ..errors import DomainError, describe
from . import events_service
from .schemas import load_event


def judge_batch(principal: Principal, bodies: Sequence[Any], now: datetime) -> list[dict[str, Any]]:
    """Up to 1,000 bodies, each accepted or refused on its own, in one transaction."""
    items: list[Any] = []
    for body in bodies:
        try:
            items.append(load_event(body, now))
        except DomainError as error:
            items.append(error)
    valid = [item for item in items if isinstance(item, events_service.UsageEventRequest)]
    outcomes = iter(events_service.record_usage_events(principal, valid, now) if valid else [])
    results: list[dict[str, Any]] = []
    for item in items:
        outcome = next(outcomes) if isinstance(item, events_service.UsageEventRequest) \
            else events_service.Outcome(error=item)
        if outcome.error:
            status, error = describe(outcome.error)
            results.append({"status": status, "error": error})
        else:
            results.append({"status": 201, "replayed": outcome.replayed,
                            "event": events_service.event_document(outcome.event)})
    return results
