"""Migration 0003 keeps what invoices closed before it show: their lines become derived."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings

NOW = "2026-11-25 00:00:00.000000"


def _rows(conn, statement: str, **params):
    return conn.execute(sa.text(statement), params).all()


def _insert(conn, table: str, **values):
    columns = ", ".join(f'"{c}"' for c in values)
    conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(':' + c for c in values)})"), values)


def _closed_the_0002_way(conn) -> None:
    """A tenant with one open invoice (a converted bill line and a credit line) and one voided
    invoice whose bill was released, as the close and void of 0002 left them."""
    _insert(conn, "tenants", id="ten_1", name="T", timezone="UTC", default_currency="AUD", period_anchor_day=25,
            charge_day=2, default_tax_rate="0", invoice_prefix="INV", created_at=NOW)
    _insert(conn, "providers", id="prov_1", tenant_id="ten_1", livemode=False, name="App",
            revenue_share_rate="0.3", created_at=NOW)
    for customer in ("cus_1", "cus_2"):
        _insert(conn, "customers", id=customer, tenant_id="ten_1", livemode=False, external_id=customer,
                currency="AUD", tax_exempt=False, created_at=NOW)
    for invoice, customer, status in (("inv_1", "cus_1", "open"), ("inv_2", "cus_2", "void")):
        _insert(conn, "invoices", id=invoice, tenant_id="ten_1", livemode=False, customer_id=customer,
                period_start="2026-10-25", period_end="2026-11-24", status=status, currency="AUD", tax_rate="0",
                subtotal=1400, tax=0, total=1400, amount_due=1400, carried_credit=0, due_date="2026-12-02",
                created_at=NOW, template="invoice_v1.html", number=None, finalized_at=None)
    for bill, customer, currency, amount, status, invoice, period in (
            ("bill_1", "cus_1", "AUD", 500, "invoiced", "inv_1", "2026-10-25"),
            ("bill_2", "cus_1", "USD", 1000, "invoiced", "inv_1", "2026-10-25"),
            ("bill_3", "cus_2", "AUD", 1400, "pending", None, "2026-11-25")):  # released by the void
        _insert(conn, "bills", id=bill, tenant_id="ten_1", livemode=False, provider_id="prov_1",
                customer_id=customer, idempotency_key=bill, fingerprint=b"\0", amount=amount, currency=currency,
                revenue_share=True, description=f"{bill} text", metadata="{}", status=status, received_at=NOW,
                period_start=period, invoice_id=invoice)
    for invoice, position, kind, bill, amount, original, currency, rate in (
            ("inv_1", 0, "bill", "bill_1", 500, None, None, None),
            ("inv_1", 1, "bill", "bill_2", 1500, 1000, "USD", "1.5"),
            ("inv_1", 2, "credit", None, -600, None, None, None),
            ("inv_2", 0, "bill", "bill_3", 1400, None, None, None)):
        _insert(conn, "invoice_lines", invoice_id=invoice, position=position, kind=kind, bill_id=bill,
                provider_id="prov_1" if bill else None, credit_id="cred_1" if kind == "credit" else None,
                description=f"{bill or 'credit'} text", amount=amount, original_amount=original,
                original_currency=currency, fx_rate=rate)


def test_invoices_closed_before_0003_show_the_same_lines_after_it(tmp_path: Path):
    import flask_migrate

    from aggregator.consolidate import invoice_service as service
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db

    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                           storage_dir=tmp_path), "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(revision="0002")
        with db.engine.begin() as conn:
            _closed_the_0002_way(conn)
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            assert _rows(conn, "SELECT id, fx_rates FROM invoices ORDER BY id") == [
                ("inv_1", '{"USD": "1.5"}'), ("inv_2", None)]
            assert _rows(conn, "SELECT invoice_id, kind FROM invoice_lines ORDER BY invoice_id, position") == [
                ("inv_1", "credit"), ("inv_2", "bill")]  # a live invoice's bill lines are derived now
            assert _rows(conn, "SELECT id, status FROM bills ORDER BY id") == [
                ("bill_1", "pending"), ("bill_2", "pending"), ("bill_3", "pending")]
            assert "invoice_id" not in {c["name"] for c in sa.inspect(conn).get_columns("bills")}
        invoices = db.session.scalars(sa.select(Invoice).order_by(Invoice.id)).all()
        lines = service.invoice_lines(list(invoices))
        assert [(line.kind, line.bill_id, line.amount, line.original_amount, line.fx_rate)
                for line in lines["inv_1"]] == [
            ("bill", "bill_1", 500, None, None), ("bill", "bill_2", 1500, 1000, Decimal("1.5")),
            ("credit", None, -600, None, None)]
        assert [(line.kind, line.bill_id, line.amount) for line in lines["inv_2"]] == [("bill", "bill_3", 1400)]
        db.session.rollback()
        db.engine.dispose()
