"""Facts the invoicing area publishes (aggregator.bus), inside the transaction that made them
true; subscribers are wired by the composition root (aggregator.wiring)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Mapping

from ..bus import Fact


@dataclass(frozen=True)
class InvoicesFinalized(Fact):
    """Invoices became open as of `as_of` (a close under automatic review, or drafts finalized);
    `due_dates`: invoice id -> its due date. Payments schedules their collection."""

    tenant_id: str
    livemode: bool
    as_of: datetime
    due_dates: Mapping[str, date]


@dataclass(frozen=True)
class InvoiceVoided(Fact):
    """An invoice became void as of `as_of`: nothing is collected for it any more."""

    tenant_id: str
    livemode: bool
    invoice_id: str
    as_of: datetime


@dataclass(frozen=True)
class InvoicesPaid(Fact):
    """Invoices became paid as of `as_of`: nothing more is collected for them."""

    tenant_id: str
    livemode: bool
    invoice_ids: tuple[str, ...]
    as_of: datetime


@dataclass(frozen=True)
class InvoiceWrittenOff(Fact):
    """An open invoice became uncollectible as of `as_of`: collection gave up on it."""

    tenant_id: str
    livemode: bool
    invoice_id: str
    as_of: datetime
