"""Building one consolidated invoice from a customer's bills: pure, no database."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Iterable, Mapping, Sequence

from .. import money


@dataclass(frozen=True, slots=True)
class BillItem:
    id: str
    provider_id: str
    amount: int
    currency: str
    description: str
    service_start: date | None = None
    service_end: date | None = None


@dataclass(frozen=True, slots=True)
class CreditItem:
    """Credit carried from an earlier invoice whose total was negative."""

    id: str
    amount: int  # positive: what is owed to the customer
    currency: str
    description: str


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # "bill" | "credit"
    amount: int  # in the invoice currency
    description: str
    bill_id: str | None = None
    provider_id: str | None = None
    credit_id: str | None = None
    service_start: date | None = None
    service_end: date | None = None
    original_amount: int | None = None
    original_currency: str | None = None
    fx_rate: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: int  # bills and applied credits, before tax
    tax: int
    total: int  # what the customer owes: never negative
    carried_credit: int  # what is carried to the next invoice when the sum is negative


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    currency: str
    tax_rate: Decimal
    lines: tuple[Line, ...]
    totals: Totals


@dataclass(frozen=True)
class MissingRates(Exception):
    pairs: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (base, quote)


def tax_rate_for(default_rate: Decimal, override: Decimal | None, exempt: bool) -> Decimal:
    if exempt:
        return Decimal(0)
    return default_rate if override is None else override


def totals(amounts: Iterable[int], tax_rate: Decimal) -> Totals:
    """Tax is charged on a positive subtotal; a negative subtotal is carried forward as credit."""
    subtotal = sum(amounts)
    if subtotal <= 0:
        return Totals(subtotal, 0, 0, -subtotal)
    tax = money.apply_rate(subtotal, tax_rate)
    return Totals(subtotal, tax, subtotal + tax, 0)


def build_invoice(currency: str, tax_rate: Decimal, bills: Sequence[BillItem],
                  credits: Sequence[CreditItem], rates: Mapping[tuple[str, str], Decimal]) -> InvoiceDraft:
    """Lines in provider order (one per bill), converted to `currency` where needed, then credits.

    `rates[(base, quote)]` is the tenant's rate in effect at the period end. Raises MissingRates
    naming every pair that is needed and absent.
    """
    missing = {(b.currency, currency) for b in bills
               if b.currency != currency and (b.currency, currency) not in rates}
    if missing:
        raise MissingRates(frozenset(missing))
    lines: list[Line] = []
    for bill in sorted(bills, key=lambda b: (b.provider_id, b.id)):
        if bill.currency == currency:
            lines.append(Line("bill", bill.amount, bill.description, bill.id, bill.provider_id,
                              service_start=bill.service_start, service_end=bill.service_end))
        else:
            rate = rates[(bill.currency, currency)]
            lines.append(Line("bill", money.convert(bill.amount, bill.currency, currency, rate),
                              bill.description, bill.id, bill.provider_id,
                              service_start=bill.service_start, service_end=bill.service_end,
                              original_amount=bill.amount, original_currency=bill.currency,
                              fx_rate=rate))
    for credit in credits:
        if credit.currency == currency:
            lines.append(Line("credit", -credit.amount, credit.description, credit_id=credit.id))
    return InvoiceDraft(currency, tax_rate, tuple(lines), totals((l.amount for l in lines), tax_rate))
