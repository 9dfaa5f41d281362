"""Facts the accounts area publishes (aggregator.bus), inside the transaction that made them
true; subscribers are wired by the composition root (aggregator.wiring)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..bus import Fact


@dataclass(frozen=True)
class PaymentMethodChanged(Fact):
    """A customer was given a new payment method as of `as_of`: payments charges at once the
    open invoices that waited for one."""

    tenant_id: str
    livemode: bool
    customer_id: str
    as_of: datetime
