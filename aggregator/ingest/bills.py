"""Pure pieces of bill intake: the validated submission and its fingerprint."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime

import orjson


def canonical_json(value) -> bytes:
    """`json.dumps(value, separators=(",", ":"), ensure_ascii=False)` as UTF-8: the form stored
    fingerprints were computed on. orjson writes the same bytes (a property test holds them
    equal) ten times faster; what it refuses (a lone surrogate) goes the standard way."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


@dataclass(frozen=True, slots=True)
class BillRequest:
    """One bill as a provider submitted it, validated; amount in minor units."""

    idempotency_key: str
    customer: str  # the customer's external_id
    amount: int
    currency: str
    revenue_share: bool
    description: str = ""
    service_period: tuple[date, date] | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def fingerprint(self) -> bytes:
        """Identifies the request's content, so a replay can be told from a different request
        that reuses a key. "12.5" and "12.50" are the same amount and so the same request."""
        return hashlib.sha256(canonical_json(
            [self.customer, self.amount, self.currency, self.revenue_share, self.description,
             [d.isoformat() for d in self.service_period] if self.service_period else None,
             sorted(self.metadata.items())])).digest()


@dataclass(frozen=True, slots=True)
class BillView:
    """A bill as the API shows it."""

    id: str
    status: str
    customer: str
    provider: str
    amount: int
    currency: str
    revenue_share: bool
    description: str
    service_period: dict | None
    metadata: dict[str, str]
    received_at: datetime
    livemode: bool
    period: date  # the start date of the invoicing period the bill belongs to
    source: str = "api"  # or "subscription": rated from a plan at a close (catalog/)
    platform_fee: int | None = None  # the platform's fee it carries itself (a parent plan's)
