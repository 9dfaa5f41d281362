"""What the payment and refund transitions publish (aggregator.bus), with the amounts they
computed: plain values, never rows (see consolidate/facts.py)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..bus import Fact
from ..revenue.parts import InvoiceParts


@dataclass(frozen=True, slots=True)
class SucceededPayment:
    payment_id: str
    invoice_id: str
    currency: str
    amount: int


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    """An invoice payments were applied to, as it stood before them: `amount_paid` of its
    `amount_due`. When it was uncollectible, what its succeeded refunds gave back (`refunded`)
    and its `parts`: a payment then recovers what was written off."""

    invoice_id: str
    customer_id: str
    amount_due: int
    amount_paid: int
    uncollectible: bool = False
    refunded: int = 0
    parts: InvoiceParts | None = None


@dataclass(frozen=True)
class PaymentsSucceeded(Fact):
    """Payments of one tenant and mode that succeeded, in order, and their invoices."""

    tenant_id: str
    livemode: bool
    payments: tuple[SucceededPayment, ...]
    invoices: tuple[PaidInvoice, ...]
    as_of: datetime


@dataclass(frozen=True)
class RefundSucceeded(Fact):
    """A refund that succeeded: `amount` given back of an invoice that had `collected` (net of
    the refunds before it) and is made of `parts`. `to_credit_of`: the customer whose credit
    balance keeps the money (a credit note settled to its balance), rather than given back."""

    tenant_id: str
    livemode: bool
    refund_id: str
    currency: str
    amount: int
    invoice_id: str
    collected: int
    parts: InvoiceParts
    as_of: datetime
    to_credit_of: str | None = None
