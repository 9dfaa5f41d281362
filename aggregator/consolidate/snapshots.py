"""What events show of invoices: the invoice as GET /v1/invoices/{id} shows it, without its
lines (they are derived from the bills, can be thousands, and are one request away). Built
from plain values, so the close can make two events per invoice without the schema machinery;
a test holds it equal to InvoiceSchema's dump."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Mapping

from .. import money
from ..accounts.tax_ids import recorded_treatment


def _day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _instant(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def invoice_snapshot(invoice: Mapping[str, Any], customer_external_id: str) -> dict[str, Any]:
    """`invoice`: the invoice's columns by name (an invoices row)."""
    currency = invoice["currency"]

    def amount(name: str) -> str:
        return money.format_amount(invoice.get(name) or 0, currency)  # a new row: 0 paid, 0 refunded

    return {
        "id": invoice["id"], "object": "invoice", "number": invoice["number"],
        "customer": invoice["customer_id"], "customer_external_id": customer_external_id,
        "period": {"start": _day(invoice["period_start"]), "end": _day(invoice["period_end"])},
        "status": invoice["status"], "currency": currency, "subtotal": amount("subtotal"),
        "tax_rate": invoice["tax_rate"], "tax": amount("tax"), "total": amount("total"),
        "tax_treatment": recorded_treatment(invoice.get("tax_treatment"), Decimal(invoice["tax_rate"])),
        "parties": invoice.get("parties"),
        "amount_due": amount("amount_due"), "carried_credit": amount("carried_credit"),
        "due_date": _day(invoice["due_date"]),
        "amount_paid": amount("amount_paid"), "amount_remaining": money.format_amount(
            max(invoice["amount_due"] - (invoice.get("amount_paid") or 0), 0), currency),
        "amount_refunded": amount("amount_refunded"), "paid_at": _instant(invoice.get("paid_at")),
        "collection": invoice.get("collection"), "next_charge_at": _instant(invoice.get("next_charge_at")),
        "attempt_count": invoice.get("attempt_count") or 0, "disputed": bool(invoice.get("disputed")),
        "overdue": invoice["status"] == "open" and invoice.get("overdue_at") is not None,
        "overdue_at": _instant(invoice.get("overdue_at")),
        "pdf_url": f"/v1/invoices/{invoice['id']}/pdf" if invoice.get("pdf_path") else None,
        "pdf_sha256": invoice.get("pdf_sha256"), "created_at": _instant(invoice["created_at"]),
        "finalized_at": _instant(invoice.get("finalized_at")), "voided_at": _instant(invoice.get("voided_at")),
        "void_reason": invoice.get("void_reason"), "livemode": invoice["livemode"],
    }


def columns(obj) -> dict[str, Any]:
    """An ORM object's column values by name."""
    return {c.key: getattr(obj, c.key) for c in obj.__table__.columns}
