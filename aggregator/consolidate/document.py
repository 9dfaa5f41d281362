"""What an invoice document shows: a pure function from invoice data to template values.

All amounts are formatted here (Babel, the tenant's locale) so the template holds no logic.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from itertools import groupby
from typing import Any, Mapping, Sequence

from babel.dates import format_date

from .. import money

# The template new invoices are issued with. An invoice records its template, and a template
# version is never changed visibly once used: a new look is a new version. v2 (shipped fonts,
# fixed column widths) renders in about 70 % of v1's time.
INVOICE_TEMPLATE = "invoice_v2.html"


@dataclass(frozen=True)
class DocumentLine:
    kind: str
    provider_id: str | None
    description: str
    service_start: date | None
    service_end: date | None
    amount: int
    original_amount: int | None
    original_currency: str | None
    fx_rate: str | None


def invoice_document(*, invoice: Mapping[str, Any], lines: Sequence[DocumentLine],
                     provider_names: Mapping[str, str], tenant: Mapping[str, Any],
                     customer: Mapping[str, Any], locale: str) -> dict[str, Any]:
    currency = invoice["currency"]

    def amount(minor: int, cur: str = currency) -> str:
        return money.display(minor, cur, locale)

    def day(value: date | None) -> str:
        return format_date(value, "medium", locale=locale) if value else ""

    groups = []
    bill_lines = [line for line in lines if line.kind == "bill"]
    for provider_id, items in groupby(bill_lines, key=lambda line: line.provider_id):
        items = list(items)
        groups.append({
            "app": provider_names.get(provider_id, provider_id),
            "lines": [{
                "description": line.description or "—",
                "service_period": f"{day(line.service_start)} – {day(line.service_end)}" if line.service_start else "",
                "amount": amount(line.amount),
                "original": (f"{amount(line.original_amount, line.original_currency)} at {line.fx_rate}"
                             if line.original_currency else ""),
            } for line in items],
            "subtotal": amount(sum(line.amount for line in items)),
        })
    credits = [{"description": line.description, "amount": amount(line.amount)}
                for line in lines if line.kind == "credit"]
    return {
        "tenant": tenant,
        "customer": customer,
        "number": invoice["number"] or "DRAFT",
        "issue_date": day(invoice["issue_date"]),
        "period": f"{day(invoice['period_start'])} – {day(invoice['period_end'])}",
        "due_date": day(invoice["due_date"]),
        "currency": currency,
        "groups": groups,
        "credits": credits,
        "subtotal": amount(invoice["subtotal"]),
        "tax_rate": _percent(invoice["tax_rate"]),
        "tax": amount(invoice["tax"]),
        "total": amount(invoice["total"]),
        "amount_due": amount(invoice["amount_due"]),
        "carried_credit": amount(invoice["carried_credit"]) if invoice["carried_credit"] else "",
    }


def _percent(rate: str) -> str:
    from decimal import Decimal

    return f"{(Decimal(rate) * 100).normalize():f}%"
