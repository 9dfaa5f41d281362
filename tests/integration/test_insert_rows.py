"""db.insert_rows, the bulk INSERT of rated bills and their charges: one JSON parameter on
PostgreSQL, executemany on SQLite; each value stored as the column's type binds it, and a row
that conflicts skipped."""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone

import sqlalchemy as sa


def test_rows_are_stored_as_their_column_types_bind_them_and_a_conflict_is_skipped(app, tenant):
    from aggregator.db import db
    from aggregator.ingest.models import Bill
    from aggregator.ingest.transitions import create_bills

    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    tenant.provider()
    provider_id = admin.get("/v1/providers").json["data"][0]["id"]
    with app.app_context():
        customer_id = db.session.scalar(sa.text(
            "SELECT id FROM customers WHERE tenant_id = :t AND NOT livemode AND external_id = 'cust-1'"),
            {"t": tenant.id})

        def row(n: int, **extra) -> dict:
            key = f"sub:bulk:{n}"
            return {"id": f"bill_bulk{n}_{tenant.id[-8:]}", "tenant_id": tenant.id, "livemode": False,
                    "provider_id": provider_id, "customer_id": customer_id, "idempotency_key": key,
                    "fingerprint": hashlib.sha256(key.encode()).digest(), "amount": -12345678901 + n,
                    "currency": "AUD", "revenue_share": True, "description": f"Hosting — Plan «{n}»\ttab",
                    "service_period_start": date(2026, 10, 25), "service_period_end": None,
                    "metadata": extra.pop("metadata", {}), "period_start": date(2026, 10, 25),
                    "received_at": datetime(2026, 11, 25, 13, 0, tzinfo=timezone.utc), "source": "subscription",
                    "platform_fee": extra.pop("platform_fee", None), **extra}

        ids = [row(n)["id"] for n in (1, 2, 3)]
        assert create_bills([row(1), row(2, platform_fee=250, metadata={"plan": "p", "n": [1, 2]})]) == set(ids[:2])
        assert create_bills([row(2, id="bill_other"), row(3)]) == {ids[2]}  # key 2 already stored
        db.session.commit()
        bills = {b.id: b for b in db.session.scalars(sa.select(Bill).where(Bill.tenant_id == tenant.id,
                                                                            Bill.source == "subscription"))}
        assert sorted(bills) == ids
        two = bills[ids[1]]
        assert (two.amount, two.platform_fee, two.metadata_, two.status, two.source) == (
            -12345678899, 250, {"plan": "p", "n": [1, 2]}, "pending", "subscription")
        assert two.fingerprint == hashlib.sha256(b"sub:bulk:2").digest()
        assert two.description == "Hosting — Plan «2»\ttab"
        assert (two.service_period_start, two.service_period_end) == (date(2026, 10, 25), None)
        assert two.received_at == datetime(2026, 11, 25, 13, 0, tzinfo=timezone.utc)
        assert bills[ids[0]].platform_fee is None and bills[ids[0]].metadata_ == {}
