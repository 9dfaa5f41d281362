"""What an invoice is made of, for attributing what it collects (`shares.py`): its bills, each
with its own amount and currency, its line's amount in the invoice currency and its split
(`terms.py`), its tax and its applied carried credit. Pure: the areas read the lines and the
terms from the database and hand them here."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from .terms import Split, policy


class InvoiceLine(Protocol):
    """An invoice line as the invoice shows it (consolidate's `Line` is one): a bill's line, or a
    carried credit applied (`kind` "credit")."""

    @property
    def kind(self) -> str: ...
    @property
    def amount(self) -> int: ...  # in `currency`, the invoice's
    @property
    def currency(self) -> str: ...
    @property
    def bill_id(self) -> str | None: ...
    @property
    def provider_id(self) -> str | None: ...
    @property
    def original_amount(self) -> int | None: ...  # the bill's own amount, when converted
    @property
    def original_currency(self) -> str | None: ...
    @property
    def fx_rate(self) -> Decimal | None: ...


@dataclass(frozen=True, slots=True)
class InvoicedBill:
    """A bill as its invoice holds it: its own amount and currency, the invoice line's amount (in
    the invoice currency; the same when not converted), its split (rule 1) and its FX rate."""

    bill_id: str
    provider_id: str
    currency: str
    amount: int
    invoiced_amount: int
    share: Split
    fx_rate: Decimal | None = None  # invoice currency per one of `currency`, when converted
    revenue_share: bool = False


@dataclass(frozen=True, slots=True)
class InvoiceParts:
    """What an invoice is made of, for attributing what it collects."""

    currency: str
    bills: tuple[InvoicedBill, ...]
    tax: int  # >= 0, the platform's
    credit: int = 0  # the carried credits applied (<= 0), the platform's

    def __post_init__(self) -> None:
        if self.tax < 0 or self.credit > 0 or (self.tax and self.subtotal <= 0):
            raise ValueError("an invoice's tax is >= 0 (0 on a subtotal <= 0) and its applied credit <= 0")

    @property
    def subtotal(self) -> int:
        return sum(b.invoiced_amount for b in self.bills) + self.credit

    @property
    def total(self) -> int:
        """What the customer owes (as consolidate.invoices.totals): never negative."""
        return max(self.subtotal, 0) + self.tax

    @property
    def carried(self) -> int:
        """The credit this invoice carries to the next one (> 0 only when its subtotal is negative)."""
        return max(-self.subtotal, 0)


def invoice_parts(currency: str, lines: Iterable[InvoiceLine], tax: int,
                  terms: Mapping[str, tuple[bool, Decimal]], fees: Mapping[str, int] | None = None) -> InvoiceParts:
    """The parts of a built invoice in `currency` from its `lines` and `tax`; `terms[bill_id]` =
    (revenue_share, rate) recorded on the bill; `fees[bill_id]`, the platform fee of a bill that
    carries its own (terms.ExplicitFee)."""
    bills, credit = [], 0
    for line in lines:
        if line.kind == "credit":
            credit += line.amount
            continue
        if line.bill_id is None or line.provider_id is None:  # checked even under python -O
            raise ValueError(f"a {line.kind} line without its bill or provider cannot be paid out")
        amount = line.amount if line.original_amount is None else line.original_amount
        revenue_share, rate = terms[line.bill_id]
        terms_of_bill = policy(revenue_share, rate, fees.get(line.bill_id) if fees else None)
        bills.append(InvoicedBill(line.bill_id, line.provider_id, line.original_currency or line.currency,
                                  amount, line.amount, terms_of_bill.split(amount), line.fx_rate,
                                  terms_of_bill.revenue_share))
    return InvoiceParts(currency, tuple(bills), tax, credit)
