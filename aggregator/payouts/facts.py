"""What the payout transitions publish (aggregator.bus): plain values, never rows (see
consolidate/facts.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..bus import Fact


@dataclass(frozen=True)
class PayoutPaid(Fact):
    """A payout of `amount` (>= 0) sent to a provider (Stripe created the transfer, or finance
    recorded the bank transfer)."""

    tenant_id: str
    livemode: bool
    payout_id: str
    provider_id: str
    currency: str
    amount: int
    as_of: datetime
