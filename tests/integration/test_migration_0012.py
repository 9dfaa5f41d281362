"""Migration 0012 posts the journals of what happened before the transitions posted them: the
books it writes for a tenant whose invoices, payments, refund, void and write-off have none are
the books the transitions post for the same history."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator import create_app
from aggregator.clock import FixedClock
from aggregator.config import PROJECT_ROOT, Settings
from tests.support.callers import Caller, Tenant
from tests.support.clock import START
from tests.support.database import is_postgres
from tests.support.invoicing import AFTER_END, advance, send

NEXT_END = "2026-12-26T00:00:00+00:00"  # after the end of the period that follows AFTER_END's


def _history(app, tenant: Tenant) -> None:
    """A close (a credit carried, a converted bill), a payment and an overpayment, a refund, a
    void, a write-off after a partial payment; the next close applies the credit carried to an
    invoice paid and partly refunded."""
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
    send(a, "5a", customer="c2", amount="50.00", currency="AUD")  # c2's credit carried applies to it
    advance(tenant, NEXT_END)
    second = next(i for i in admin.get("/v1/invoices").json["data"]
                  if i["customer"] == by_external["c2"] and i["status"] == "open")
    assert second["amount_due"] == "33.00"  # 50.00 less the 20.00 carried, and 10 % tax
    assert admin.post(f"/v1/invoices/{second['id']}/payments", {
        "amount": "33.00", "method": "cash", "received_on": "2026-12-26"}).status_code == 201
    assert admin.post(f"/v1/invoices/{second['id']}/refunds", {"amount": "7.00"}).status_code == 201


def _make_tenant(app, client, name: str) -> Tenant:
    from aggregator.accounts import service

    with app.app_context():
        created = service.create_tenant({"name": name, "timezone": "Australia/Sydney", "default_currency": "AUD"},
                                        START)
        tenant_id = created.tenant.id
    return Tenant(tenant_id, {m: Caller(client, k) for m, k in created.admin_keys.items()}, client)


def _names(conn, tenant_id: str) -> dict[str, str]:
    """The tenant's providers' and customers' ids -> their names (external ids)."""
    return dict(conn.execute(sa.text("SELECT id, name FROM providers WHERE tenant_id = :t UNION ALL "
                                     "SELECT id, external_id FROM customers WHERE tenant_id = :t"),
                             {"t": tenant_id}).all())


def _books(conn, tenant_id: str) -> dict[tuple[str, str], int]:
    """Balances per account and currency, the parties in the accounts named by their names
    (`provider_payable:A`, `customer_credit:c2`), which two tenants share."""
    names = _names(conn, tenant_id)
    rows = conn.execute(sa.text("SELECT account, currency, sum(amount) FROM ledger_entries WHERE tenant_id = :t "
                                "GROUP BY account, currency"), {"t": tenant_id}).all()
    return {(re.sub(r":(.+)$", lambda m: ":" + names[m.group(1)], account), currency): int(total)
            for account, currency, total in rows if total}


def _journals(conn, tenant_id: str) -> list[tuple]:
    """The tenant's journals: (kind, what it records, posted_at, memo, its entries in order), ids
    replaced by names as in _books."""
    names = _names(conn, tenant_id)
    records = dict(conn.execute(sa.text(
        "SELECT i.id, 'invoice of ' || c.external_id FROM invoices i JOIN customers c ON c.id = i.customer_id "
        "WHERE i.tenant_id = :t UNION ALL "
        "SELECT p.id, 'payment of ' || p.amount || ' on ' || c.external_id FROM payments p "
        "JOIN customers c ON c.id = p.customer_id WHERE p.tenant_id = :t UNION ALL "
        "SELECT r.id, 'refund of ' || r.amount || ' on ' || c.external_id FROM refunds r "
        "JOIN invoices i ON i.id = r.invoice_id JOIN customers c ON c.id = i.customer_id WHERE r.tenant_id = :t"),
        {"t": tenant_id}).all())
    entries: dict[str, list[tuple]] = {}
    for journal_id, account, currency, amount in conn.execute(sa.text(
            "SELECT journal_id, account, currency, amount FROM ledger_entries WHERE tenant_id = :t ORDER BY id"),
            {"t": tenant_id}):
        entries.setdefault(journal_id, []).append(
            (re.sub(r":(.+)$", lambda m: ":" + names[m.group(1)], account), currency, int(amount)))
    return [(kind, records[object_id], str(posted_at)[:19], memo, entries[journal_id])
            for journal_id, kind, object_id, posted_at, memo in conn.execute(sa.text(
                "SELECT id, kind, object_id, posted_at, memo FROM ledger_journals WHERE tenant_id = :t ORDER BY id"),
                {"t": tenant_id})]


def test_the_backfill_is_frozen_in_the_migration():
    """It calls no service code that may change: of the package, only money's rounding rule and
    db's id and column helpers."""
    source = (PROJECT_ROOT / "migrations" / "versions" / "0012_ledger_backfill.py").read_text()
    assert set(re.findall(r"^\s*from (aggregator\S*) import (.+)$", source, re.M)) == {
        ("aggregator", "money"), ("aggregator.db", "UTCDateTime, new_ordered_id")}
    assert not re.search(r"^\s*import aggregator", source, re.M)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of its own: a SQLite file, or on PostgreSQL (when the tests
    run there) a database made for this test beside the session's, dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    session_url = request.getfixturevalue("database_url")
    if not is_postgres(session_url):
        pytest.skip("needs PostgreSQL (set AGGREGATOR_TEST_DATABASE_URL); bin/test runs it there")
    url = sa.engine.make_url(session_url)
    url = url.set(database=f"{url.database}_m0012")
    admin = sa.create_engine(session_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        admin.dispose()


def test_the_backfill_posts_the_books_the_transitions_post(empty_database: str, tmp_path: Path):
    import flask_migrate

    from aggregator import bus
    from aggregator.db import db
    from aggregator.ledger import handlers

    app = create_app({"SETTINGS": Settings(database_url=empty_database, storage_dir=tmp_path,
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
            assert sorted(_journals(conn, unposted.id), key=repr) == JOURNALS
        assert 0 < expected[("fx", "USD")] < 5000  # 50.00 USD billed, a part of it refunded
        assert expected[("receivable", "AUD")] == 1100  # all paid, void or written off but c3's bill invoiced anew
        db.session.remove()
        db.engine.dispose()


#: The journals the backfill posted for _history when it called the live bookkeeping code (as of
#: 2026-12-07), ordered by repr (invoices made in one close may be posted in any order): the
#: migration's frozen copy of that code must keep posting exactly these.
JOURNALS = [
    ('invoice_finalized', 'invoice of c1', '2026-11-24 13:00:00', None, [
        ('receivable', 'AUD', 19360), ('tax_payable', 'AUD', -1760), ('provider_payable:A', 'AUD', -7000),
        ('platform_revenue', 'AUD', -3000), ('provider_payable:B', 'USD', -4000), ('platform_revenue', 'USD', -1000),
        ('fx', 'USD', 5000), ('fx', 'AUD', -7600)]),
    ('invoice_finalized', 'invoice of c2', '2026-11-24 13:00:00', None, [
        ('customer_credit:c2', 'AUD', -2000), ('provider_payable:A', 'AUD', -2800),
        ('provider_clawback:B', 'AUD', 4800)]),
    ('invoice_finalized', 'invoice of c2', '2026-12-24 13:00:00', None, [
        ('receivable', 'AUD', 3300), ('tax_payable', 'AUD', -300), ('customer_credit:c2', 'AUD', 2000),
        ('provider_payable:A', 'AUD', -3500), ('platform_revenue', 'AUD', -1500)]),
    ('invoice_finalized', 'invoice of c3', '2026-11-24 13:00:00', None, [
        ('receivable', 'AUD', 1100), ('tax_payable', 'AUD', -100), ('provider_payable:A', 'AUD', -700),
        ('platform_revenue', 'AUD', -300)]),
    ('invoice_finalized', 'invoice of c3', '2026-12-24 13:00:00', None, [
        ('receivable', 'AUD', 1100), ('tax_payable', 'AUD', -100), ('provider_payable:A', 'AUD', -700),
        ('platform_revenue', 'AUD', -300)]),
    ('invoice_finalized', 'invoice of c4', '2026-11-24 13:00:00', None, [
        ('receivable', 'AUD', 22000), ('tax_payable', 'AUD', -2000), ('provider_payable:A', 'AUD', -14000),
        ('platform_revenue', 'AUD', -6000)]),
    ('invoice_voided', 'invoice of c3', '2026-11-25 00:00:00', None, [
        ('receivable', 'AUD', -1100), ('tax_payable', 'AUD', 100), ('provider_payable:A', 'AUD', 700),
        ('platform_revenue', 'AUD', 300)]),
    ('payment_received', 'payment of 10000 on c1', '2026-11-25 00:00:00', None, [
        ('cash', 'AUD', 10000), ('receivable', 'AUD', -10000)]),
    ('payment_received', 'payment of 3300 on c2', '2026-12-26 00:00:00', None, [
        ('cash', 'AUD', 3300), ('receivable', 'AUD', -3300)]),
    ('payment_received', 'payment of 5500 on c4', '2026-11-25 00:00:00', None, [
        ('cash', 'AUD', 5500), ('receivable', 'AUD', -5500)]),
    ('payment_received', 'payment of 9900 on c1', '2026-11-25 00:00:00', None, [
        ('cash', 'AUD', 9900), ('receivable', 'AUD', -9360), ('customer_credit:c1', 'AUD', -540)]),
    ('refund', 'refund of 3300 on c1', '2026-11-25 00:00:00', None, [
        ('cash', 'AUD', -3300), ('tax_payable', 'AUD', 300), ('provider_payable:A', 'AUD', 1194),
        ('refunds', 'AUD', 511), ('provider_payable:B', 'USD', 682), ('refunds', 'USD', 170), ('fx', 'USD', -852),
        ('fx', 'AUD', 1295)]),
    ('refund', 'refund of 700 on c2', '2026-12-26 00:00:00', None, [
        ('cash', 'AUD', -700), ('tax_payable', 'AUD', 64), ('provider_payable:A', 'AUD', 742),
        ('refunds', 'AUD', -106)]),
    ('write_off', 'invoice of c4', '2026-11-24 13:00:00', None, [
        ('receivable', 'AUD', -16500), ('tax_payable', 'AUD', 1500), ('provider_payable:A', 'AUD', 10500),
        ('refunds', 'AUD', 4500)]),
]
