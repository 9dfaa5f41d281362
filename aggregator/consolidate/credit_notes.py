"""What a credit note takes back of an invoice: pure, no database.

A credit note credits parts of an invoice's lines (`invoice_line`: the bill the line shows,
`amount` before tax) or an amount of the invoice as a whole (tax included). Never more than is
left to credit, per line and per invoice; the tax follows the invoice's:

- lines: tax = money.apply_rate(their sum, the invoice's rate) when the invoice charged tax, at
  most the tax left; the note that credits the last of the invoice's subtotal takes exactly the
  tax left, so crediting an invoice whole, in one note or many, gives back exactly its tax;
- an amount: split between subtotal and tax in the proportions of what is left of them
  (money.allocate), so crediting all that is left gives back exactly both.

Numbers: `{prefix}-CN-{YYYY}-{000123}`, from a sequence per tenant, mode and year, taken under a
row lock (gapless, as invoice numbers are)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Mapping, Sequence

from babel.dates import format_date

from .. import money
from ..accounts.tax_ids import in_eu
from ..errors import Conflict, InvalidInput

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory", "requested_by_customer", "other")


class NotCreditable(Conflict):
    code = "invoice_not_creditable"


class CreditExceedsInvoice(Conflict):
    code = "credit_exceeds_invoice"


class CreditExceedsLine(Conflict):
    code = "credit_exceeds_line"


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-CN-{year}-{sequence:06d}"


@dataclass(frozen=True, slots=True)
class CreditableLine:
    """An invoice line as a credit note sees it: the bill it shows, its amount (in the invoice's
    currency, before tax) and what earlier credit notes credited of it."""

    bill_id: str
    provider_id: str
    description: str
    amount: int
    credited: int = 0

    @property
    def left(self) -> int:
        return max(self.amount - self.credited, 0)


@dataclass(frozen=True, slots=True)
class Creditable:
    """What is left to credit of an invoice: its subtotal (> 0 part) and tax, less what earlier
    credit notes took."""

    currency: str
    tax_rate: Decimal
    subtotal: int
    tax: int
    credited_subtotal: int = 0
    credited_tax: int = 0

    @property
    def subtotal_left(self) -> int:
        return max(self.subtotal, 0) - self.credited_subtotal

    @property
    def tax_left(self) -> int:
        return self.tax - self.credited_tax

    @property
    def total_left(self) -> int:
        return self.subtotal_left + self.tax_left


@dataclass(frozen=True, slots=True)
class NoteLine:
    bill_id: str | None
    provider_id: str | None
    description: str
    amount: int


@dataclass(frozen=True, slots=True)
class NoteAmounts:
    lines: tuple[NoteLine, ...]
    subtotal: int
    tax: int

    @property
    def total(self) -> int:
        return self.subtotal + self.tax


def _money(text: str, currency: str, field: str) -> int:
    try:
        amount = money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise InvalidInput.on(field, str(exc)) from exc
    if amount <= 0:
        raise InvalidInput.on(field, "A credit is more than zero.")
    return amount


def credit_of_lines(invoice: Creditable, lines: Mapping[str, CreditableLine],
                    requested: Sequence[tuple[str, str | None]], fmt: str = "lines") -> NoteAmounts:
    """The amounts of a credit note crediting `requested` (bill id of the line, amount text
    before tax or None: all that is left of the line)."""
    seen: set[str] = set()
    out: list[NoteLine] = []
    for n, (bill_id, text) in enumerate(requested):
        line = lines.get(bill_id)
        if line is None:
            raise InvalidInput.on(f"{fmt}.{n}.invoice_line", f"The invoice has no line for {bill_id!r}.")
        if bill_id in seen:
            raise InvalidInput.on(f"{fmt}.{n}.invoice_line", f"The line {bill_id} is named twice.")
        seen.add(bill_id)
        amount = line.left if text is None else _money(text, invoice.currency, f"{fmt}.{n}.amount")
        if amount > line.left or amount == 0:
            raise CreditExceedsLine(
                f"The line {bill_id} has {money.format_amount(line.left, invoice.currency)} {invoice.currency} "
                "left to credit.", fields={f"{fmt}.{n}.amount": ["More than is left to credit of the line."]})
        out.append(NoteLine(line.bill_id, line.provider_id, line.description, amount))
    subtotal = sum(line.amount for line in out)
    if subtotal > invoice.subtotal_left:
        raise CreditExceedsInvoice(
            f"The invoice has {money.format_amount(invoice.subtotal_left, invoice.currency)} {invoice.currency} "
            "left to credit before tax.", fields={fmt: ["More than is left to credit of the invoice."]})
    if subtotal == invoice.subtotal_left:
        tax = invoice.tax_left
    else:
        tax = min(money.apply_rate(subtotal, invoice.tax_rate), invoice.tax_left) if invoice.tax else 0
    return NoteAmounts(tuple(out), subtotal, tax)


def credit_of_amount(invoice: Creditable, text: str, description: str) -> NoteAmounts:
    """The amounts of a credit note of `text` (tax included) of the invoice as a whole."""
    total = _money(text, invoice.currency, "amount")
    if total > invoice.total_left:
        raise CreditExceedsInvoice(
            f"The invoice has {money.format_amount(invoice.total_left, invoice.currency)} {invoice.currency} "
            "left to credit.", fields={"amount": ["More than is left to credit of the invoice."]})
    return amount_split(invoice, total, description)


def amount_split(invoice: Creditable, total: int, description: str) -> NoteAmounts:
    """`total` (0 < total <= total_left) split into subtotal and tax as what is left of them."""
    subtotal, tax = money.allocate(total, [invoice.subtotal_left, invoice.tax_left])
    return NoteAmounts((NoteLine(None, None, description, subtotal),) if subtotal else (), subtotal, tax)


def void_allowed(void_finalized: bool | None, country: str | None) -> bool:
    """Whether a finalized invoice may be voided: the tenant's setting, else by its country (not
    in the EU, whose VAT rules require correcting an issued invoice by a credit note)."""
    if void_finalized is not None:
        return void_finalized
    return not in_eu(country)


# --- the document ------------------------------------------------------------------------------

SETTLEMENT_WORDS = {
    "refund": "Refunded to the payment method the invoice was paid with.",
    "customer_balance": "Credited to your account balance: taken off your next invoice.",
    "reduce_due": "Deducted from the amount due on the invoice.",
}

REASON_WORDS = {
    "duplicate": "Duplicate charge", "fraudulent": "Fraudulent charge", "order_change": "Order change",
    "product_unsatisfactory": "Product unsatisfactory", "requested_by_customer": "Requested by the customer",
    "other": "Other",
}


def credit_note_document(*, note: Mapping[str, Any], lines: Sequence[Mapping[str, Any]],
                         provider_names: Mapping[str, str], tenant: Mapping[str, Any],
                         customer: Mapping[str, Any], locale: str) -> dict[str, Any]:
    """The template values of a credit note: every amount and date formatted (Babel, the
    tenant's locale). `note`: number, currency, issue_date, invoice_number, invoice_date,
    reason, memo, settlement, subtotal, tax, tax_rate, tax_name, total; `lines`: description,
    provider_id, amount."""
    currency = note["currency"]

    def amount(minor: int) -> str:
        return money.display(minor, currency, locale)

    def day(value: date | None) -> str:
        return format_date(value, "medium", locale=locale) if value else ""

    return {
        "title": "Credit note",
        "tenant": tenant,
        "customer": customer,
        "number": note["number"],
        "issue_date": day(note["issue_date"]),
        "invoice_number": note["invoice_number"],
        "invoice_date": day(note["invoice_date"]),
        "reason": REASON_WORDS.get(note["reason"], note["reason"]),
        "memo": note["memo"] or "",
        "settlement": SETTLEMENT_WORDS[note["settlement"]],
        "lines": [{"description": line["description"] or "—",
                   "app": provider_names.get(line["provider_id"], "") if line["provider_id"] else "",
                   "amount": amount(line["amount"])} for line in lines],
        "subtotal": amount(note["subtotal"]),
        "tax_name": note["tax_name"],
        "tax_rate": _percent(note["tax_rate"]),
        "tax": amount(note["tax"]),
        "total": amount(note["total"]),
        "currency": currency,
    }


def _percent(rate: str) -> str:
    value = Decimal(rate) * 100
    return f"{value.normalize():f}%" if value else "0%"
