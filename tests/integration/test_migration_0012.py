"""Migration 0012 posts the journals of what happened before the transitions posted them: the
books it writes for a tenant whose invoices, payments, refund, void and write-off have none are
the books the transitions post for the same history."""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from aggregator import create_app
from aggregator.clock import FixedClock
from aggregator.config import Settings
from tests.support.callers import Caller, Tenant
from tests.support.clock import START
from tests.support.invoicing import AFTER_END, advance, send


def _history(app, tenant: Tenant) -> None:
    """A close (a credit carried, a converted bill), a payment and an overpayment, a refund, a
    void, and a write-off after a partial payment."""
    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate import transitions as invoice_transitions
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db

    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"default_tax_rate": "0.10"})
    admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.52", "effective_date": "2026-11-01"})
    a, b = tenant.provider(name="A", rate="0.30"), tenant.provider(name="B", rate="0.20")
    for n in range(1, 5):
        tenant.customer(f"c{n}")
    for key, provider, customer, amount, currency in [
            ("1a", a, "c1", "100.00", "AUD"), ("1b", b, "c1", "50.00", "USD"), ("2a", a, "c2", "40.00", "AUD"),
            ("2b", b, "c2", "-60.00", "AUD"), ("3a", a, "c3", "10.00", "AUD"), ("4a", a, "c4", "200.00", "AUD")]:
        send(provider, key, customer=customer, amount=amount, currency=currency)
    advance(tenant, AFTER_END)
    invoices = {i["customer"]: i for i in admin.get("/v1/invoices").json["data"]}
    by_external = {c["external_id"]: c["id"] for c in admin.get("/v1/customers").json["data"]}
    c1, c3, c4 = (invoices[by_external[c]] for c in ("c1", "c3", "c4"))
    for invoice_id, amount in [(c1["id"], "100.00"), (c1["id"], "99.00"), (c4["id"], "55.00")]:
        assert admin.post(f"/v1/invoices/{invoice_id}/payments", {
            "amount": amount, "method": "cash", "received_on": "2026-11-25"}).status_code == 201
    assert admin.post(f"/v1/invoices/{c1['id']}/refunds", {"amount": "33.00"}).status_code == 201
    assert admin.post(f"/v1/invoices/{c3['id']}/void", {"reason": "mistake"}).status_code == 200
    with app.app_context():
        settings = tenant_settings(tenant.id, False)
        invoice_transitions.mark_uncollectible(settings, c4["id"], db.session.get(Invoice, c4["id"]).finalized_at)
        db.session.commit()


def _make_tenant(app, client, name: str) -> Tenant:
    from aggregator.accounts import service

    with app.app_context():
        created = service.create_tenant({"name": name, "timezone": "Australia/Sydney", "default_currency": "AUD"},
                                        START)
        tenant_id = created.tenant.id
    return Tenant(tenant_id, {m: Caller(client, k) for m, k in created.admin_keys.items()}, client)


def _books(conn, tenant_id: str) -> dict[tuple[str, str], int]:
    """Balances per account and currency, the parties in the accounts named by their names
    (`provider_payable:A`, `customer_credit:c2`), which two tenants share."""
    names = dict(conn.execute(sa.text("SELECT id, name FROM providers WHERE tenant_id = :t UNION ALL "
                                      "SELECT id, external_id FROM customers WHERE tenant_id = :t"), {"t": tenant_id}).all())
    rows = conn.execute(sa.text("SELECT account, currency, sum(amount) FROM ledger_entries WHERE tenant_id = :t "
                                "GROUP BY account, currency"), {"t": tenant_id}).all()
    return {(re.sub(r":(.+)$", lambda m: ":" + names[m.group(1)], account), currency): int(total)
            for account, currency, total in rows if total}


def test_the_backfill_posts_the_books_the_transitions_post(tmp_path: Path):
    import flask_migrate

    from aggregator import bus
    from aggregator.db import db
    from aggregator.ledger import handlers

    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}", storage_dir=tmp_path,
                                           secret_key_file=tmp_path / "secret.key"),
                      "CLOCK": FixedClock(START), "TESTING": True})
    client = app.test_client()
    with app.app_context():
        flask_migrate.upgrade()
    posted = _make_tenant(app, client, "Posted")
    _history(app, posted)
    unposted = _make_tenant(app, client, "Before the ledger")
    with bus.subscriptions({bus.Fact: [lambda fact: None]},  # before the ledger, the facts went unheard
                           without=[handlers.post_finalized, handlers.post_close_chunk, handlers.post_voided,
                                    handlers.post_write_off, handlers.post_payments, handlers.post_refund]):
        _history(app, unposted)
    with app.app_context():
        with db.engine.begin() as conn:  # before the ledger, no invoice named its close's journal
            conn.execute(sa.text("UPDATE invoices SET finalized_journal_id = NULL WHERE tenant_id = :t"),
                         {"t": unposted.id})
        with db.engine.connect() as conn:
            assert _books(conn, unposted.id) == {}
            expected = _books(conn, posted.id)
        flask_migrate.downgrade(revision="0011")
        flask_migrate.upgrade(revision="0012")
        with db.engine.connect() as conn:
            assert _books(conn, unposted.id) == expected
            assert _books(conn, posted.id) == expected  # nothing posted twice
            kinds = conn.execute(sa.text("SELECT kind, count(*) FROM ledger_journals WHERE tenant_id = :t "
                                         "GROUP BY kind ORDER BY kind"), {"t": unposted.id}).all()
        assert [tuple(k) for k in kinds] == [("invoice_finalized", 4), ("invoice_voided", 1),
                                             ("payment_received", 3), ("refund", 1), ("write_off", 1)]
        assert 0 < expected[("fx", "USD")] < 5000  # 50.00 USD billed, a part of it refunded
        assert ("receivable", "AUD") not in expected  # nothing left receivable: paid, void or written off
        db.session.remove()
        db.engine.dispose()
