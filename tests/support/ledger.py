"""Journals posted directly to a tenant's books: an invoice finalized and its payment received;
a journal of every kind (the ledger export's tests)."""
from __future__ import annotations

from datetime import datetime, timezone

from aggregator.db import db
from aggregator.ledger import journal as books
from aggregator.ledger import service
from aggregator.revenue.shares import Share

AT = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def post_invoice_and_payment(app, tenant_id: str, livemode: bool = False, suffix: str = "1") -> list[str]:
    with app.app_context():
        ids = service.post_many(tenant_id, livemode, [
            books.invoice_finalized(f"inv_{suffix}", "AUD", 11000, 1000, [Share("prov_a", "AUD", 7000, 3000, 10000)]),
            books.payment_received(f"pay_{suffix}", "AUD", 12000, 11000, customer_id="cus_c1"),
        ], AT)
        db.session.commit()
    return ids


def at(day: int, hour: int = 1) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=timezone.utc)


def post_every_kind(app, tenant_id: str, customer_id: str = "cus_c1") -> dict[str, str]:
    """One journal of each kind (two invoice_finalized), as the transitions post them (in AUD,
    with a USD bill converted onto an AUD invoice through fx). -> kind: its (last) journal id;
    "all": every id, space-separated."""
    owed = {("prov_a", "AUD"): 10_000_000}
    finalized = books.invoice_finalized("inv_1", "AUD", 14000, 1000, [
        Share("prov_a", "AUD", 7000, 3000, 10000), Share("prov_b", "USD", 1400, 600, 3000)], memo='Nov "hosting"')
    voided_first = books.invoice_finalized("inv_3", "AUD", 1100, 100, [Share("prov_c", "AUD", 700, 300, 1000)])
    payment = books.payment_received("pay_1", "AUD", 15000, 14000, customer_id=customer_id)
    journals = [
        (at(2), finalized),
        (at(3), books.invoices_finalized("inv_2", [(customer_id, "AUD", 5500, 500, 0, 0)],
                                         [Share("prov_a", "AUD", 3500, 1500, 5000)], {}, "1 invoice at the close")),
        (at(3, 2), voided_first),
        (at(4), books.invoice_voided("inv_3", voided_first, "voided")),
        (at(5), payment),
        (at(6), books.refund("re_1", "AUD", 1100, 100, [Share("prov_a", "AUD", 700, 300, 1000)], owed)),
        (at(7), books.credit_granted("cr_1", customer_id, "AUD", 1100, 100, [Share("prov_a", "AUD", 700, 300, 1000)],
                                     owed)),
        (at(8), books.write_off("inv_2", "AUD", 5500, 500, [Share("prov_a", "AUD", 3500, 1500, 5000)], 0, owed)),
        (at(9), books.payout_sent("po_1", "prov_a", "AUD", 2000)),
        (at(10), books.credit_note("cn_1", "AUD", 1100, 100, [Share("prov_a", "AUD", 700, 300, 1000)], 0, owed)),
    ]
    ids = {}
    with app.app_context():
        for posted_at, journal in journals:
            ids[journal.kind] = service.post(tenant_id, False, journal, posted_at)
            ids.setdefault("first", ids[journal.kind])
            ids["all"] = f"{ids.get('all', '')} {ids[journal.kind]}".strip()
        ids["reversal"] = service.post(tenant_id, False, books.reversal(ids["payment_received"], payment, "mistake"),
                                       at(30, 14))  # Dec 1 in Sydney
        ids["all"] += f" {ids['reversal']}"
        db.session.commit()
    return ids
