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
class BillTotal:
    """`count` bills of one customer in `currency` adding up to `amount`: what the close reads
    instead of the bills themselves (grouped in SQL). Conversion rounds each line, so bills in
    another currency than the invoice's are only grouped when their amounts are equal: such a
    total is `count` times one amount."""

    currency: str
    amount: int
    count: int


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
    amount: int  # in `currency`, the invoice's
    currency: str
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


@dataclass(frozen=True, slots=True)
class InvoiceSummary:
    """An invoice without its bill lines: what the close stores (the lines are derived on read
    with build_invoice and `rates`, which give the same totals)."""

    currency: str
    tax_rate: Decimal
    credit_lines: tuple[Line, ...]
    totals: Totals
    rates: dict[str, Decimal]  # original currency -> rate into `currency`, for the converted bills


@dataclass(frozen=True)
class MissingRates(Exception):
    pairs: frozenset[tuple[str, str]] = field(default_factory=frozenset)  # (base, quote)


def tax_rate_for(default_rate: Decimal, override: Decimal | None, exempt: bool) -> Decimal:
    if exempt:
        return Decimal(0)
    return default_rate if override is None else override


def totals(amounts: Iterable[int], tax_rate: Decimal, currency: str) -> Totals:
    """Tax is charged on a positive subtotal; a negative subtotal is carried forward as credit.
    Raises MoneyError for totals beyond what can be stored."""
    subtotal = money.check_storable(sum(amounts), currency)
    if subtotal <= 0:
        return Totals(subtotal, 0, 0, -subtotal)
    tax = money.apply_rate(subtotal, tax_rate)
    return Totals(subtotal, tax, money.check_storable(subtotal + tax, currency), 0)


def _missing_rates(currencies: Iterable[str], currency: str,
                   rates: Mapping[tuple[str, str], Decimal]) -> None:
    missing = {(c, currency) for c in currencies if c != currency and (c, currency) not in rates}
    if missing:
        raise MissingRates(frozenset(missing))


def _credit_lines(credits: Sequence[CreditItem], currency: str) -> list[Line]:
    return [Line("credit", -c.amount, currency, c.description,
                 credit_id=c.id) for c in credits if c.currency == currency]


def summarize_invoice(currency: str, tax_rate: Decimal, bills: Sequence[BillTotal],
                      credits: Sequence[CreditItem],
                      rates: Mapping[tuple[str, str], Decimal]) -> InvoiceSummary:
    """The totals build_invoice gives for the same bills, from their per-currency totals:
    O(currencies), not O(bills). A converted total is `count` lines of one amount, each
    converted and rounded on its own (money.convert), as build_invoice does."""
    _missing_rates((b.currency for b in bills), currency, rates)
    subtotal, used = 0, {}
    for bill in bills:
        if bill.currency == currency:
            subtotal += bill.amount
        else:
            rate = used[bill.currency] = rates[(bill.currency, currency)]
            subtotal += money.convert(bill.amount // bill.count, bill.currency, currency, rate) * bill.count
    credit_lines = _credit_lines(credits, currency)
    return InvoiceSummary(currency, tax_rate, tuple(credit_lines),
                          totals([subtotal, *(line.amount for line in credit_lines)], tax_rate, currency), used)


def build_invoice(currency: str, tax_rate: Decimal, bills: Sequence[BillItem],
                  credits: Sequence[CreditItem], rates: Mapping[tuple[str, str], Decimal]) -> InvoiceDraft:
    """Lines in provider order (one per bill), converted to `currency` where needed, then credits.

    `rates[(base, quote)]` is the tenant's rate in effect at the period end. Raises MissingRates
    naming every pair that is needed and absent.
    """
    _missing_rates((b.currency for b in bills), currency, rates)
    lines: list[Line] = []
    for bill in sorted(bills, key=lambda b: (b.provider_id, b.id)):
        if bill.currency == currency:
            lines.append(Line("bill", bill.amount, currency, bill.description, bill.id, bill.provider_id,
                              service_start=bill.service_start, service_end=bill.service_end))
        else:
            rate = rates[(bill.currency, currency)]
            lines.append(Line("bill", money.convert(bill.amount, bill.currency, currency, rate), currency,
                              bill.description, bill.id, bill.provider_id,
                              service_start=bill.service_start, service_end=bill.service_end,
                              original_amount=bill.amount, original_currency=bill.currency,
                              fx_rate=rate))
    lines.extend(_credit_lines(credits, currency))
    return InvoiceDraft(currency, tax_rate, tuple(lines), totals((line.amount for line in lines), tax_rate, currency))
