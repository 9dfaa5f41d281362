"""Journals posted directly to a tenant's books: an invoice finalized and its payment received."""
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
