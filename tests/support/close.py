"""A period's bills seeded directly in the database (fast), closed by the close service, and checked
to be invoiced exactly once: for the close, charge and worker tests on PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from tests.support.database import _sql

PERIOD = "2026-10-25"  # Sydney, anchor 25: ends 2026-11-24T13:00Z
AFTER_END = datetime(2026, 11, 25, tzinfo=timezone.utc)


def _seed(app, tenant_id: str, customers: int, bills_each: int, provider: str | None = None) -> str:
    """Customers and pending test-mode bills in the period, written directly (fast)."""
    from aggregator.db import db, new_id

    with app.app_context():
        if provider is None:
            provider = new_id("prov")
            db.session.execute(sa.text(
                "INSERT INTO providers (id, tenant_id, livemode, name, revenue_share_rate, created_at) "
                "VALUES (:id, :t, false, 'Seeded app', '0.3', now())"), {"id": provider, "t": tenant_id})
        rows, bills = [], []
        for c in range(customers):
            cid = new_id("cus")
            rows.append({"id": cid, "t": tenant_id, "ext": f"seed-{c:05}"})
            for b in range(bills_each):
                bills.append({"id": new_id("bill"), "t": tenant_id, "p": provider, "c": cid,
                              "k": f"{c}-{b}", "a": 100 + b})
        db.session.execute(sa.text(
            "INSERT INTO customers (id, tenant_id, livemode, external_id, currency, tax_exempt, created_at) "
            "VALUES (:id, :t, false, :ext, 'AUD', false, now())"), rows)
        db.session.execute(sa.text(
            "INSERT INTO bills (id, tenant_id, livemode, provider_id, customer_id, idempotency_key, fingerprint, "
            "amount, currency, revenue_share, description, metadata, status, received_at, period_start) "
            "VALUES (:id, :t, false, :p, :c, :k, '\\x00', :a, 'AUD', true, 'seeded', '{}', 'pending', "
            "'2026-11-10T00:00:00Z', '2026-10-25')"), bills)
        db.session.execute(sa.text(
            "INSERT INTO test_clocks (tenant_id, now) VALUES (:t, :now) "
            "ON CONFLICT (tenant_id) DO UPDATE SET now = excluded.now"), {"t": tenant_id, "now": AFTER_END})
        db.session.commit()
    return provider


INVOICED_BILLS = (  # a bill's invoice: the live one of its customer and period (derived lines)
    "SELECT b.id, b.amount, i.id AS invoice_id FROM bills b JOIN invoices i ON i.tenant_id = b.tenant_id "
    "AND i.livemode = b.livemode AND i.customer_id = b.customer_id AND i.period_start = b.period_start "
    "AND i.status <> 'void' WHERE b.tenant_id = :t AND b.status = 'pending'")


def _assert_exactly_once(app, tenant_id: str, customers: int, bills: int) -> None:
    invoices = _sql(app, "SELECT count(*), count(DISTINCT customer_id) FROM invoices WHERE tenant_id = :t",
                    t=tenant_id)[0]
    assert tuple(invoices) == (customers, customers)
    invoiced = _sql(app, f"SELECT count(*), count(DISTINCT id) FROM ({INVOICED_BILLS}) x", t=tenant_id)[0]
    assert tuple(invoiced) == (bills, bills)
    assert _sql(app, "SELECT count(*) FROM bills WHERE tenant_id = :t", t=tenant_id)[0][0] == bills
    wrong_totals = _sql(app, f"SELECT count(*) FROM invoices i JOIN (SELECT invoice_id, sum(amount) AS s "
                             f"FROM ({INVOICED_BILLS}) x GROUP BY invoice_id) b ON b.invoice_id = i.id "
                             "WHERE i.subtotal <> b.s OR i.total <> b.s + i.tax", t=tenant_id)
    assert wrong_totals[0][0] == 0
    numbers = [r[0] for r in _sql(app, "SELECT number FROM invoices WHERE tenant_id = :t ORDER BY number",
                                  t=tenant_id)]
    assert numbers == [f"INV-2026-{n:06d}" for n in range(1, customers + 1)]  # gapless
    assert _sql(app, "SELECT status FROM periods WHERE tenant_id = :t AND start = :s",
                t=tenant_id, s=PERIOD)[0][0] == "closed"


def assert_invoices_are_their_bills(app, tenant_id: str) -> None:
    """Each invoice's subtotal is the sum of its customer's pending bills of its period: no bill
    invoiced twice, none left out."""
    wrong = _sql(app, "SELECT count(*) FROM invoices i WHERE i.tenant_id = :t AND i.subtotal <> ("
                      "SELECT sum(b.amount) FROM bills b WHERE b.customer_id = i.customer_id "
                      "AND b.period_start = i.period_start AND b.status = 'pending')", t=tenant_id)
    assert wrong[0][0] == 0


def _close(app, tenant_id: str, chunk: int = 500):
    from aggregator.consolidate import close_service

    with app.app_context():
        report = close_service.close_period(tenant_id, False, datetime(2026, 10, 25).date(), AFTER_END, chunk=chunk)
        return report
