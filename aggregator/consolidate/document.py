"""What an invoice document shows: a pure function from invoice data to template values.

All amounts and dates are formatted here (Babel, the tenant's locale) so the template holds no
logic. One document serves every template version an invoice may carry: v1 and v2 read the
keys they always had; v3 (issue 20) also reads the parties, the tax summary, the payment
section, the summary per provider and, for a very large invoice, the summarized detail.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from itertools import groupby
from typing import Any, Mapping, Sequence

from babel.dates import format_date
from babel.numbers import format_decimal

from .. import money

# The template new invoices are issued with. An invoice records its template, and a template
# version is never changed visibly once used: a new look is a new version. v2 (shipped fonts,
# fixed column widths) renders in about 70 % of v1's time; v3 shows who issues the invoice to
# whom with their tax ids, a tax summary, how to pay, and a summary per provider before the
# detail (summarized past the tenant's line limit, the full list attached as CSV).
INVOICE_TEMPLATE = "invoice_v3.html"

#: A detail longer than this starts on a page of its own, after the summary page.
DETAIL_ON_NEXT_PAGE = 25
#: In a summarized detail (past the line limit), the rows shown per provider: its lines grouped
#: by description, the largest first, the rest added up in one row.
SUMMARY_ROWS_PER_PROVIDER = 10

#: How a tax id of each type (Stripe's names) is labelled on the document.
TAX_ID_LABELS = {
    "eu_vat": "VAT", "gb_vat": "VAT", "ch_vat": "VAT", "no_vat": "VAT", "au_abn": "ABN", "au_arn": "ARN",
    "nz_gst": "GST", "us_ein": "EIN", "ca_bn": "BN", "ca_gst_hst": "GST/HST", "in_gst": "GSTIN",
    "sg_gst": "GST", "sg_uen": "UEN", "za_vat": "VAT", "jp_cn": "Corporate number", "br_cnpj": "CNPJ",
}
#: The tax ids that prove a buyer's VAT registration (what a reverse-charged invoice quotes).
VAT_ID_TYPES = ("eu_vat", "gb_vat", "ch_vat", "no_vat")


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
    #: How the line was rated, in words, one item each (a plan fee's proration and quantity, a
    #: usage charge's quantity, included units and tiers); empty for a bill sent as it is.
    details: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Payment:
    """How the invoice is paid, decided by the caller from the tenant's and customer's state:
    "card" (the tenant has Stripe and the customer a card: charged on the due date),
    "transfer" (the tenant's bank details, `instructions`), or "due" (neither: when it is due)."""

    method: str
    instructions: Mapping[str, Any] | None = None


def tax_id_text(tax_id: Mapping[str, str]) -> str:
    """"VAT DE123456789", "ABN 51824753556": the label of its type, then its value."""
    label = TAX_ID_LABELS.get(tax_id.get("type", ""), tax_id.get("type", "").upper().replace("_", " "))
    return f"{label} {tax_id.get('value', '')}".strip()


def address_lines(address: Mapping[str, Any] | None) -> list[str]:
    if not address:
        return []
    city = " ".join(filter(None, [address.get("city"), address.get("state"), address.get("postal_code")]))
    return [line for line in (address.get("line1"), address.get("line2"), city, address.get("country")) if line]


def plan_fee_details(kind: str, days: int, period_days: int, quantity: int) -> tuple[str, ...]:
    """A plan fee's rating in words: when it is billed, its proration, its quantity."""
    timing = {"in_advance": "Billed in advance", "in_arrears": "Billed in arrears",
              "adjustment": "Adjusts a fee billed in advance"}.get(kind, "")
    items = [timing] if timing else []
    if days != period_days:
        items.append(f"Prorated: {days} of {period_days} days")
    if quantity != 1:
        items.append(f"Quantity {quantity}")
    return tuple(items)


def usage_details(description: str) -> tuple[str, tuple[str, ...]]:
    """A usage line's words as catalog.pricing.describe writes them ("Bandwidth — 1,340 GB:
    100 GB included, 900 × €0.05, 340 × €0.03 = €55.20"), split into the head and one item per
    part (included units, each tier, a minimum applied); a one-price line stays whole."""
    head, colon, tail = description.partition(": ")
    body, equals, total = tail.rpartition(" = ")
    if not colon or not equals:
        return description, ()
    items = body.split(", ")
    _, comma, clamp = total.partition(", ")
    if comma:
        items.append(clamp)
    return head, tuple(items)


def percent(rate: str) -> str:
    return f"{(Decimal(rate) * 100).normalize():f}%"


def invoice_document(*, invoice: Mapping[str, Any], lines: Sequence[DocumentLine],
                     provider_names: Mapping[str, str], tenant: Mapping[str, Any],
                     customer: Mapping[str, Any], locale: str,
                     parties: Mapping[str, Any] | None = None, tax_treatment: str = "standard",
                     payment: Payment | None = None, line_limit: int | None = None,
                     lines_file: str | None = None) -> dict[str, Any]:
    """The template values of an invoice. `parties` is invoices.parties' shape ({"seller":
    {legal_name, address, country, tax_ids, tax_name, title}, "buyer": {name, address, country,
    tax_ids}}; None: built from `tenant` and `customer`); past `line_limit` bill lines the detail
    is summarized and `lines_file` names the attached CSV of every line."""
    currency = invoice["currency"]

    def amount(minor: int, cur: str = currency) -> str:
        return money.display(minor, cur, locale)

    def day(value: date | None) -> str:
        return format_date(value, "medium", locale=locale) if value else ""

    def span(start: date | None, end: date | None) -> str:
        return f"{day(start)} – {day(end)}" if start else ""

    number = invoice["number"] or "DRAFT"
    groups = []
    bill_lines = [line for line in lines if line.kind == "bill"]
    summarized = line_limit is not None and len(bill_lines) > line_limit  # the detail's lines are not shown
    for provider_id, items in groupby(bill_lines, key=lambda line: line.provider_id):
        items = list(items)
        groups.append({
            "app": provider_names.get(provider_id, provider_id),
            "lines": [{
                "description": line.description or "—",
                "details": list(line.details),
                "service_period": span(line.service_start, line.service_end),
                "amount": amount(line.amount),
                "original": (f"{amount(line.original_amount, line.original_currency)} at {line.fx_rate}"
                             if line.original_currency else ""),
            } for line in ([] if summarized else items)],
            "count": len(items),
            "total": sum(line.amount for line in items),
            "subtotal": amount(sum(line.amount for line in items)),
        })
    credits = [{"description": line.description, "amount": amount(line.amount)}
                for line in lines if line.kind == "credit"]

    seller, buyer = _parties(parties, tenant, customer)
    tax_name = seller.get("tax_name") or "Tax"
    rate_text = percent(invoice["tax_rate"]) if tax_treatment == "standard" else "0%"
    tax_label = {"standard": f"{tax_name} {rate_text}", "reverse_charge": f"{tax_name} 0% (reverse charge)",
                 "exempt": f"{tax_name} exempt"}[tax_treatment]
    return {
        # v1 and v2
        "tenant": tenant,
        "customer": customer,
        "number": number,
        "issue_date": day(invoice["issue_date"]),
        "period": span(invoice["period_start"], invoice["period_end"]),
        "due_date": day(invoice["due_date"]),
        "currency": currency,
        "groups": groups,
        "credits": credits,
        "subtotal": amount(invoice["subtotal"]),
        "tax_rate": percent(invoice["tax_rate"]),
        "tax": amount(invoice["tax"]),
        "total": amount(invoice["total"]),
        "amount_due": amount(invoice["amount_due"]),
        "carried_credit": amount(invoice["carried_credit"]) if invoice["carried_credit"] else "",
        # v3
        "title": seller.get("title") or "Invoice",
        "seller": {"name": seller.get("legal_name") or tenant.get("legal_name") or "",
                   "logo": tenant.get("logo"),
                   "address_lines": address_lines(seller.get("address")) or list(tenant.get("address_lines") or ()),
                   "tax_ids": [tax_id_text(t) for t in seller.get("tax_ids") or ()]},
        "buyer": {"name": buyer.get("name") or customer.get("name") or "", "email": customer.get("email"),
                  "external_id": customer.get("external_id"),
                  "address_lines": address_lines(buyer.get("address")) or list(customer.get("address_lines") or ()),
                  "tax_ids": [tax_id_text(t) for t in buyer.get("tax_ids") or ()]},
        "tax_name": tax_name,
        "tax_label": tax_label,
        "tax_summary": [{"label": tax_label, "base": amount(max(invoice["subtotal"], 0)),
                         "tax": amount(invoice["tax"])}],
        "tax_note": _tax_note(tax_treatment, buyer),
        "summary": [{"app": g["app"], "count": format_decimal(g["count"], locale=locale), "subtotal": g["subtotal"],
                     "tax_label": tax_label}
                    for g in groups],
        "line_count": len(bill_lines),
        "line_count_text": format_decimal(len(bill_lines), locale=locale),
        "line_limit_text": format_decimal(line_limit, locale=locale) if line_limit is not None else "",
        "detail_on_next_page": len(bill_lines) > DETAIL_ON_NEXT_PAGE,
        "summarized": _summarized(bill_lines, provider_names, amount) if summarized else None,
        "line_limit": line_limit,
        "lines_file": lines_file if summarized else None,
        "payment": _payment_section(payment, invoice, number, amount, day),
    }


def _parties(parties: Mapping[str, Any] | None, tenant: Mapping[str, Any],
             customer: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    if parties:
        return parties.get("seller") or {}, parties.get("buyer") or {}
    return ({"legal_name": tenant.get("legal_name"), "address": tenant.get("address"),
             "tax_ids": tenant.get("tax_ids"), "tax_name": tenant.get("tax_name"), "title": tenant.get("title")},
            {"name": customer.get("name"), "address": customer.get("address"), "tax_ids": customer.get("tax_ids")})


def _tax_note(treatment: str, buyer: Mapping[str, Any]) -> str:
    if treatment == "reverse_charge":
        vat_ids = [t["value"] for t in buyer.get("tax_ids") or () if t.get("type") in VAT_ID_TYPES]
        quoted = f" Customer's VAT number: {', '.join(vat_ids)}." if vat_ids else ""
        return ("VAT reverse charged: the customer accounts for the VAT (Article 196, Council Directive "
                f"2006/112/EC).{quoted}")
    if treatment == "exempt":
        return "The customer is exempt from tax: no tax is charged."
    return ""


def _summarized(bill_lines: Sequence[DocumentLine], provider_names: Mapping[str, str], amount) -> list[dict]:
    """Per provider, its lines grouped by description (how many, their sum), the largest sums
    first; past SUMMARY_ROWS_PER_PROVIDER rows, the rest added up in one row."""
    out = []
    for provider_id, items in groupby(bill_lines, key=lambda line: line.provider_id):
        by_description: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for line in items:
            row = by_description[line.description or "—"]
            row[0] += 1
            row[1] += line.amount
        ranked = sorted(by_description.items(), key=lambda item: (-abs(item[1][1]), item[0]))
        shown, rest = ranked[:SUMMARY_ROWS_PER_PROVIDER], ranked[SUMMARY_ROWS_PER_PROVIDER:]
        rows = [{"description": text, "count": count, "amount": amount(total)} for text, (count, total) in shown]
        if rest:
            other = f"{len(rest)} other description{'s' if len(rest) > 1 else ''}"
            rows.append({"description": other, "count": sum(r[1][0] for r in rest),
                         "amount": amount(sum(r[1][1] for r in rest))})
        out.append({"app": provider_names.get(provider_id, provider_id), "rows": rows})
    return out


def _payment_section(payment: Payment | None, invoice: Mapping[str, Any], number: str, amount, day) -> dict:
    due = day(invoice["due_date"])
    if invoice["amount_due"] <= 0:
        return {"method": "none", "text": "Nothing is due on this invoice.", "details": []}
    if payment is not None and payment.method == "card":
        return {"method": "card", "text": f"{amount(invoice['amount_due'])} will be charged to your card on file "
                                          f"on {due}.", "details": []}
    if payment is not None and payment.method == "transfer" and payment.instructions:
        bank = payment.instructions
        reference = " ".join(filter(None, [bank.get("reference"), number]))
        details = [(label, bank[key]) for key, label in (
            ("account_holder", "Account holder"), ("bank_name", "Bank"), ("iban", "IBAN"), ("bic", "BIC"),
            ("bsb", "BSB"), ("account_number", "Account number")) if bank.get(key)]
        details.append(("Reference", reference))
        return {"method": "transfer",
                "text": f"Please pay {amount(invoice['amount_due'])} by bank transfer by {due}, quoting the "
                        f"reference {reference}.",
                "details": [{"label": label, "value": _grouped(label, value)} for label, value in details]}
    return {"method": "due", "text": f"Payment of {amount(invoice['amount_due'])} is due on {due}.", "details": []}


def _grouped(label: str, value: str) -> str:
    """An IBAN printed in groups of four, as banks print it."""
    if label == "IBAN":
        compact = value.replace(" ", "")
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    return value
