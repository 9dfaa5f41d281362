"""What the invoice transitions publish (aggregator.bus), with the amounts they computed: plain
values (ids, integer amounts, currencies, datetimes, revenue's `Share`s and `InvoiceParts`),
never rows, so a subscriber (the ledger's journals: ledger/handlers.py; payments' collection:
payments/handlers.py) needs nothing of this package but these classes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Mapping

from ..bus import Fact
from ..revenue.parts import InvoiceParts
from ..revenue.shares import Share, provider_shares


@dataclass(frozen=True, slots=True)
class FinalizedInvoice:
    """The amounts an invoice's finalization records: its `shares` per (provider, bill
    currency), `credit` applied (>= 0) and `carried` to the next invoice (>= 0)."""

    invoice_id: str
    customer_id: str
    currency: str
    amount_due: int
    tax: int
    credit: int
    carried: int
    shares: tuple[Share, ...]

    @classmethod
    def of(cls, invoice_id: str, customer_id: str, parts: InvoiceParts) -> FinalizedInvoice:
        """The finalized amounts of an invoice from its parts."""
        return cls(invoice_id, customer_id, parts.currency, parts.total, parts.tax, -parts.credit, parts.carried,
                   provider_shares((b.provider_id, b.currency, b.invoiced_amount, b.share, 1) for b in parts.bills))


@dataclass(frozen=True)
class InvoicesFinalized(Fact):
    """Drafts of one tenant and mode finalized (draft -> open), each with its amounts."""

    tenant_id: str
    livemode: bool
    invoices: tuple[FinalizedInvoice, ...]
    as_of: datetime


@dataclass(frozen=True)
class InvoicesFinalizedAtClose(Fact):
    """A close's chunk created `invoices` finalized at once, numbered `first_number` to
    `last_number`: their amounts (`shares` empty on each), the providers' `shares` of them all,
    summed per provider and bill currency, and their bills `converted` into the invoice's currency
    ((bill currency, invoice currency) -> (amount, invoiced)). `journal_id` is the id their journal
    is to have: each invoice keeps it (`finalized_journal_id`)."""

    tenant_id: str
    livemode: bool
    journal_id: str
    invoices: tuple[FinalizedInvoice, ...]
    shares: tuple[Share, ...]
    converted: dict[tuple[str, str], tuple[int, int]]
    first_number: str
    last_number: str
    as_of: datetime


@dataclass(frozen=True)
class InvoiceWrittenOff(Fact):
    """An invoice marked uncollectible: `amount_paid` of its `amount_due` was paid; its `parts`
    (None when it was paid in full: nothing to write off)."""

    tenant_id: str
    livemode: bool
    invoice_id: str
    currency: str
    amount_due: int
    amount_paid: int
    parts: InvoiceParts | None
    as_of: datetime


@dataclass(frozen=True)
class InvoiceVoided(Fact):
    """An invoice voided (from draft, open or uncollectible). `finalized_at_close`: its finalized
    amounts when a close finalized it with its chunk (recorded for the chunk as a whole, not for
    it); None otherwise."""

    tenant_id: str
    livemode: bool
    invoice_id: str
    finalized_at_close: FinalizedInvoice | None
    as_of: datetime


@dataclass(frozen=True)
class InvoicesOpened(Fact):
    """Invoices became open as of `as_of` (a close under automatic review, or drafts finalized):
    `due_dates`, invoice id -> its due date. Payments schedules their collection."""

    tenant_id: str
    livemode: bool
    as_of: datetime
    due_dates: Mapping[str, date]


@dataclass(frozen=True)
class InvoicesPaid(Fact):
    """Invoices became paid as of `as_of`: nothing more is collected for them."""

    tenant_id: str
    livemode: bool
    invoice_ids: tuple[str, ...]
    as_of: datetime


@dataclass(frozen=True)
class CreditNoteIssued(Fact):
    """A credit note of `total` was issued for an invoice that asked `amount_due` before it and
    is made of `parts`. Settled `reduce_due`, it takes `total` off what the invoice still asks (the
    ledger reverses that part of it from receivable); settled `refund` or `customer_balance`, its
    money moves by a refund, whose own journal records it (RefundSucceeded)."""

    tenant_id: str
    livemode: bool
    credit_note_id: str
    invoice_id: str
    currency: str
    settlement: str
    total: int
    amount_due: int
    parts: InvoiceParts
    as_of: datetime
