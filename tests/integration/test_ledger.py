"""The ledger in the database: posting writes a journal and its entries; the database itself
refuses an UPDATE or DELETE of a posted journal or entry (both databases), an unbalanced journal
at COMMIT (PostgreSQL), a second journal of a kind for one object, and an entry that crosses
tenants; a provider's payable never goes negative."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from aggregator.accounts.service import operator
from aggregator.db import db
from aggregator.ledger import journal as books
from aggregator.ledger import service
from aggregator.revenue.shares import Share

AT = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)


def _finalized(invoice_id="inv_1", provider="prov_a"):
    return books.invoice_finalized(invoice_id, "AUD", 11000, 1000, [Share(provider, "AUD", 7000, 3000, 10000)])


@pytest.fixture
def posted(app, tenant):
    """A tenant's test mode with one finalized invoice and its payment posted."""
    with app.app_context():
        ids = service.post_many(tenant.id, False, [_finalized(), books.payment_received("pay_1", "AUD", 11000)], AT)
        db.session.commit()
    return tenant, ids


def test_posting_writes_the_journal_and_its_entries(app, posted):
    tenant, (finalized_id, payment_id) = posted
    with app.app_context():
        principal = operator(tenant.id, False)
        page = service.list_journals(principal, 10)
        assert [j.id for j in page.data] == [payment_id, finalized_id]  # newest first
        finalized = page.data[1]
        assert (finalized.kind, finalized.object_type, finalized.object_id, finalized.posted_at) == (
            "invoice_finalized", "invoice", "inv_1", AT)
        assert sorted((e.account, e.currency, e.amount) for e in finalized.entries) == [
            ("platform_revenue", "AUD", -3000), ("provider_payable:prov_a", "AUD", -7000),
            ("receivable", "AUD", 11000), ("tax_payable", "AUD", -1000)]
        assert {(b.account, b.balance) for b in service.balances(principal)} == {
            ("cash", 11000), ("platform_revenue", -3000), ("provider_payable:prov_a", -7000), ("receivable", 0),
            ("tax_payable", -1000)}
        receivable = service.balances(principal, account="receivable")[0]
        assert (receivable.debits, receivable.credits) == (11000, 11000)
        assert [b.account for b in service.balances(principal, account="provider_payable")] == [
            "provider_payable:prov_a"]
        trial = service.trial_balance(principal)
        assert trial.balanced and [(t.currency, t.debits, t.credits) for t in trial.totals] == [
            ("AUD", 22000, 22000)]
        assert service.balances(operator(tenant.id, True)) == []  # the other mode's books are its own
        assert [j.id for j in service.list_journals(principal, 10, account="cash").data] == [payment_id]
        assert [j.id for j in service.list_journals(principal, 10, object="inv_1").data] == [finalized_id]


def _raw(app, sql: str, **params):
    with app.app_context():
        try:
            db.session.execute(sa.text(sql), params)
            db.session.commit()
        finally:
            db.session.rollback()


@pytest.mark.parametrize("sql", [
    "UPDATE ledger_entries SET amount = amount + 1 WHERE journal_id = :journal",
    "DELETE FROM ledger_entries WHERE journal_id = :journal",
    "UPDATE ledger_journals SET memo = 'edited' WHERE id = :journal",
    "DELETE FROM ledger_journals WHERE id = :journal",
])
def test_the_database_refuses_to_change_or_delete_what_was_posted(app, posted, sql):
    _, (journal_id, _) = posted
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        _raw(app, sql, journal=journal_id)
    with app.app_context():
        assert db.session.scalar(sa.text("SELECT count(*) FROM ledger_entries WHERE journal_id = :j"),
                                 {"j": journal_id}) == 4


def test_the_database_refuses_a_truncate(app, posted, postgres_only):
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        _raw(app, "TRUNCATE ledger_entries, ledger_journals")


def _insert_journal(tenant_id: str, journal_id: str, entries: list[tuple[str, str, int]], livemode=False,
                    entry_tenant: str | None = None):
    db.session.execute(sa.text(
        "INSERT INTO ledger_journals (id, tenant_id, livemode, kind, object_type, object_id, posted_at)"
        " VALUES (:id, :tenant, :livemode, 'payment_received', 'payment', :id, :at)"),
        {"id": journal_id, "tenant": tenant_id, "livemode": livemode, "at": AT.replace(tzinfo=None)})
    # one statement: the database checks each statement's entries (per journal and currency)
    values = ", ".join(f"(:journal, :tenant, :livemode, :account{n}, :currency{n}, :amount{n})"
                       for n in range(len(entries)))
    params = {"journal": journal_id, "tenant": entry_tenant or tenant_id, "livemode": livemode}
    for n, (account, currency, amount) in enumerate(entries):
        params.update({f"account{n}": account, f"currency{n}": currency, f"amount{n}": amount})
    db.session.execute(sa.text(
        f"INSERT INTO ledger_entries (journal_id, tenant_id, livemode, account, currency, amount) VALUES {values}"),
        params)


def test_an_unbalanced_journal_written_with_raw_sql_is_refused(app, tenant, postgres_only):
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError, match="does not balance"):
            _insert_journal(tenant.id, "jrn_raw_unbalanced", [("cash", "AUD", 100), ("receivable", "AUD", -99)])
        db.session.rollback()
        # balanced in total but not per currency: refused too
        with pytest.raises(sa.exc.IntegrityError, match="does not balance"):
            _insert_journal(tenant.id, "jrn_raw_currencies", [("cash", "AUD", 100), ("receivable", "USD", -100)])
        db.session.rollback()
        # each statement is checked: half of a journal now, the other half later, is refused too
        with pytest.raises(sa.exc.IntegrityError, match="does not balance"):
            _insert_journal(tenant.id, "jrn_raw_halves", [("cash", "AUD", 100)])
        db.session.rollback()
        _insert_journal(tenant.id, "jrn_raw_balanced", [("cash", "AUD", 100), ("receivable", "AUD", -100)])
        db.session.commit()
        assert db.session.scalar(sa.text("SELECT count(*) FROM ledger_journals WHERE id LIKE 'jrn_raw_%'")) == 1


def test_an_entry_cannot_cross_tenants_and_a_journal_is_posted_once_per_object(app, tenant, make_tenant):
    other = make_tenant(name="Other")
    with app.app_context():
        with pytest.raises(sa.exc.IntegrityError):
            _insert_journal(tenant.id, "jrn_cross", [("cash", "AUD", 100), ("receivable", "AUD", -100)],
                            entry_tenant=other.id)
            db.session.commit()
        db.session.rollback()
        service.post(tenant.id, False, books.payment_received("pay_once", "AUD", 100), AT)
        db.session.commit()
        with pytest.raises(sa.exc.IntegrityError):
            service.post(tenant.id, False, books.payment_received("pay_once", "AUD", 100), AT)
            db.session.commit()
        db.session.rollback()


def test_a_providers_payable_never_goes_negative(app, posted):
    tenant, _ = posted  # the platform owes prov_a AUD 70.00
    with app.app_context():
        with pytest.raises(service.ProviderPayableNegative, match="provider_payable:prov_a"):
            service.post(tenant.id, False, books.payout_sent("po_1", "prov_a", "AUD", 7001), AT)
        db.session.rollback()
        with pytest.raises(service.ProviderPayableNegative):  # nothing owed in USD
            service.post(tenant.id, False, books.payout_sent("po_2", "prov_a", "USD", 1), AT)
        db.session.rollback()
        service.post(tenant.id, False, books.payout_sent("po_3", "prov_a", "AUD", 7000), AT)
        db.session.commit()
        principal = operator(tenant.id, False)
        assert service.balances(principal, account="provider_payable:prov_a")[0].balance == 0
        assert service.trial_balance(principal).balanced


def test_a_refund_after_the_payout_claws_back_through_the_clawback_account(app, posted):
    tenant, _ = posted  # the platform owes prov_a AUD 70.00; it is paid out, then the invoice refunded
    share = Share("prov_a", "AUD", 7000, 3000, 10000)
    with app.app_context():
        service.post(tenant.id, False, books.payout_sent("po_all", "prov_a", "AUD", 7000), AT)
        db.session.commit()
        with pytest.raises(service.ProviderPayableNegative):  # nothing is owed to it any more
            service.post(tenant.id, False, books.refund("re_1", "AUD", 11000, 1000, [share]), AT)
        db.session.rollback()
        owed = service.lock_provider_payables(tenant.id, False, [("prov_a", "AUD")])
        assert owed == {("prov_a", "AUD"): 0}
        service.post(tenant.id, False, books.refund("re_1", "AUD", 11000, 1000, [share], owed=owed), AT)
        db.session.commit()
        # its next invoice earns it 70.00 again, of which 70.00 recover what it owed back
        service.post(tenant.id, False, _finalized("inv_2"), AT)
        service.post(tenant.id, False, books.payout_sent("po_next", "prov_a", "AUD", 0, recovered=7000), AT)
        db.session.commit()
        balances = {b.account: b.balance
                    for b in service.balances(operator(tenant.id, False), account="provider_payable")
                    + service.balances(operator(tenant.id, False), account="provider_clawback")}
        assert balances == {"provider_payable:prov_a": 0, "provider_clawback:prov_a": 0}
        assert service.trial_balance(operator(tenant.id, False)).balanced


def test_two_payouts_at_once_cannot_both_take_what_a_provider_is_owed(app, posted, postgres_only):
    """Each posting that debits a payable locks it first: the second waits for the first to
    commit, then sees it, and is refused."""
    import threading

    tenant, _ = posted  # owed AUD 70.00
    first_locked, results = threading.Event(), {}

    def pay(name: str, hold: bool):
        with app.app_context():
            try:
                service.post(tenant.id, False, books.payout_sent(f"po_{name}", "prov_a", "AUD", 7000), AT)
                if hold:
                    first_locked.set()
                    threading.Event().wait(0.5)  # the other posting waits on the lock meanwhile
                db.session.commit()
                results[name] = "paid"
            except service.ProviderPayableNegative:
                db.session.rollback()
                results[name] = "refused"

    first = threading.Thread(target=pay, args=("first", True))
    first.start()
    assert first_locked.wait(10)
    pay("second", False)
    first.join()
    assert results == {"first": "paid", "second": "refused"}
