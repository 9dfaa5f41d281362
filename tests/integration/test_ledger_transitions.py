"""The books kept by the transitions: after a close, payments, an overpayment, a refund, a void,
a write-off and a payment on an uncollectible invoice, the trial balance is zero in each
currency and each account holds what the invoices, payments and refunds tables say."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa

from aggregator.accounts.service import operator, tenant_settings
from aggregator.consolidate import transitions as invoice_transitions
from aggregator.consolidate.facts import FinalizedInvoice
from aggregator.consolidate.lines import invoice_parts_of
from aggregator.consolidate.models import Credit, Invoice
from aggregator.db import db
from aggregator.ledger import handlers
from aggregator.ledger import journal as books
from aggregator.ledger import service as ledger
from aggregator.payments import transitions as payment_transitions
from aggregator.payments.models import Payment, Refund
from tests.support.invoicing import AFTER_END, advance, send

LATER = datetime(2026, 11, 26, tzinfo=timezone.utc)


def _balances(app, tenant) -> dict[tuple[str, str], int]:
    with app.app_context():
        principal = operator(tenant.id, False)
        assert ledger.trial_balance(principal).balanced
        return {(b.account, b.currency): b.balance for b in ledger.balances(principal) if b.balance}


def _invoices(app, tenant) -> dict[str, Invoice]:
    """customer external id -> its invoice."""
    with app.app_context():
        rows = db.session.scalars(sa.select(Invoice).where(Invoice.tenant_id == tenant.id)).unique().all()
        db.session.expunge_all()
        return {i.customer.external_id: i for i in rows}


def _pay(app, tenant, invoice_id: str, amount: str) -> dict:
    response = tenant.admin["test"].post(f"/v1/invoices/{invoice_id}/payments", {
        "amount": amount, "method": "bank_transfer", "received_on": "2026-11-25"})
    assert response.status_code == 201, response.json
    return response.json


def _received(app, invoice_id: str, amount: int) -> None:
    """Money arriving on an invoice that is not open (a card payment its customer authenticated
    late): the transition the webhook runs, then the invoice paid."""
    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        payment_transitions.record_received({
            "tenant_id": invoice.tenant_id, "livemode": False, "invoice_id": invoice.id,
            "customer_id": invoice.customer_id, "gateway": "manual", "method": "bank_transfer",
            "trigger": "recorded", "amount": amount, "currency": invoice.currency, "received_on": date(2026, 11, 26),
            "created_at": LATER, "requests": 0, "hard_decline": False, "amount_refunded": 0}, LATER)
        db.session.execute(sa.update(Invoice.__table__).where(Invoice.id == invoice_id)
                           .values(amount_paid=Invoice.__table__.c.amount_paid + amount))
        db.session.commit()


@pytest.fixture
def books_of(app, tenant):
    """Two providers (30% and 20%), 10% tax; customers c1 (100 + 50), c2 (40, and a credit of
    60 from B: carried), c3 (10, voided), c4 (200, written off after a quarter is paid), c5
    (30 from B, left open); closed under automatic review."""
    tenant.admin["test"].patch("/v1/tenant", {"default_tax_rate": "0.10"})
    a, b = tenant.provider(name="A", rate="0.30"), tenant.provider(name="B", rate="0.20")
    for n in range(1, 6):
        tenant.customer(f"c{n}")
    for key, provider, customer, amount in [("1a", a, "c1", "100.00"), ("1b", b, "c1", "50.00"),
                                            ("2a", a, "c2", "40.00"), ("2b", b, "c2", "-60.00"),
                                            ("3a", a, "c3", "10.00"), ("4a", a, "c4", "200.00"),
                                            ("5b", b, "c5", "30.00")]:
        send(provider, key, customer=customer, amount=amount)
    advance(tenant, AFTER_END)
    tenant.a, tenant.b = a.id, b.id
    return tenant


def test_the_close_posts_each_invoice_with_its_shares_and_credits(app, books_of):
    tenant = books_of
    a, b = f"provider_payable:{tenant.a}", f"provider_payable:{tenant.b}"
    invoices = _invoices(app, tenant)
    c1, c2 = (invoices[c].customer_id for c in ("c1", "c2"))
    assert _balances(app, tenant) == {
        ("receivable", "AUD"): 16500 + 1100 + 22000 + 3300,
        ("tax_payable", "AUD"): -(1500 + 100 + 2000 + 300),
        (a, "AUD"): -(7000 + 2800 + 700 + 14000),
        # B's credit bill of c2 (net -48.00) takes what B is owed in the close (40.00 from c1 and 24.00
        # from c5): its payable is never debited beyond it
        (b, "AUD"): -(4000 - 4800 + 2400),
        ("platform_revenue", "AUD"): -(3000 + 1000 + 1200 - 1200 + 300 + 6000 + 600),
        (f"customer_credit:{c2}", "AUD"): -2000,  # carried to c2's next invoice
    }
    assert c1  # c1's own credit comes with its overpayment (below)


def test_a_draft_finalized_posts_what_the_close_would_have(app, tenant):
    """Manual review: the draft's journal is built from its parts as the invoice shows them
    (invoice_parts_of), and equals the journal the close builds from its grouped bills."""
    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"default_tax_rate": "0.10", "invoice_review": "manual"})
    assert admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.52",
                                      "effective_date": "2026-11-01"}).status_code in (200, 201)
    a, b = tenant.provider(name="A", rate="0.30"), tenant.provider(name="B", rate="0")
    tenant.customer("c1")
    for key, provider, amount, currency in [("1", a, "19.99", "AUD"), ("2", a, "19.99", "AUD"),
                                            ("3", b, "7.33", "USD"), ("4", b, "7.33", "USD"),
                                            ("5", a, "12.01", "USD")]:
        send(provider, key, customer="c1", amount=amount, currency=currency)
    advance(tenant, AFTER_END)
    invoice = _invoices(app, tenant)["c1"]
    assert invoice.status == "draft" and _balances(app, tenant) == {}
    assert admin.post(f"/v1/invoices/{invoice.id}/finalize").status_code == 200
    with app.app_context():
        posted = {(p.account, p.currency): p.amount for p in handlers._journals_of(
            tenant.id, False, invoice.id)["invoice_finalized"].postings}
        parts = invoice_parts_of(db.session.get(Invoice, invoice.id))
    converted = [bill for bill in parts.bills if bill.currency == "USD"]
    assert len(converted) == 3 and all(bill.invoiced_amount != bill.amount for bill in converted)
    usd = sum(bill.amount for bill in converted)
    assert posted[("fx", "USD")] == usd and posted[("fx", "AUD")] == -sum(b.invoiced_amount for b in converted)
    assert posted[("receivable", "AUD")] == invoice.amount_due and posted[("tax_payable", "AUD")] == -invoice.tax
    # the close's own path (bills grouped in SQL, each group's fee rounded at once) gives the same shares
    with app.app_context():
        from aggregator.accounts.service import tenant_settings
        from aggregator.consolidate import period_rates
        from aggregator.consolidate.close_service import _chunk_shares, _CloseContext
        from aggregator.consolidate.fx_service import rates_in_effect
        from aggregator.periods.service import tenant_period

        settings = tenant_settings(tenant.id, False)
        period = tenant_period(settings, invoice.period_start)
        ctx = _CloseContext(settings, period, None, rates_in_effect(tenant.id, False, period.end),
                            period_rates.rates_of(tenant.id, False, invoice.period_start))
        close_shares = tuple(_chunk_shares(ctx, "", "~", set()))
    draft_shares = FinalizedInvoice.of(invoice.id, invoice.customer_id, parts).shares
    assert [(s.provider_id, s.currency, s.net, s.fee) for s in close_shares] == \
        [(s.provider_id, s.currency, s.net, s.fee) for s in draft_shares]


def test_payments_refunds_voids_and_write_offs_keep_the_books_with_the_tables(app, books_of):
    tenant = books_of
    a, b = f"provider_payable:{tenant.a}", f"provider_payable:{tenant.b}"
    invoices = _invoices(app, tenant)
    c1, c2 = (invoices[c].customer_id for c in ("c1", "c2"))
    admin = tenant.admin["test"]

    _pay(app, tenant, invoices["c1"].id, "100.00")
    overpaid = _pay(app, tenant, invoices["c1"].id, "80.00")  # 15.00 too much: c1's credit
    assert overpaid["credit"]["amount"] == "15.00"
    refund = admin.post(f"/v1/invoices/{invoices['c1'].id}/refunds", {"amount": "33.00"})
    assert refund.status_code == 201 and refund.json["status"] == "succeeded", refund.json
    assert admin.post(f"/v1/invoices/{invoices['c3'].id}/void", {"reason": "billed by mistake"}).status_code == 200
    _pay(app, tenant, invoices["c4"].id, "55.00")
    with app.app_context():
        assert invoice_transitions.mark_uncollectible(tenant_settings(tenant.id, False), invoices["c4"].id, LATER)
        db.session.commit()
    _received(app, invoices["c4"].id, 2200)  # 10% of it arrives after all

    balances = _balances(app, tenant)
    # a fifth of c1 refunded: its tax and shares clawed back from what A and B are owed;
    # c4: 16,500 of 22,000 written off, then 2,200 recovered (a tenth: 20.00 of A's bill, 2.00 tax)
    assert balances == {
        ("cash", "AUD"): 10000 + 8000 - 3300 + 5500 + 2200,
        ("receivable", "AUD"): 3300,  # c5's, open
        ("tax_payable", "AUD"): -(1500 - 300 + 500 + 200 + 300),
        (a, "AUD"): -(7000 - 1400 + 2800 + 14000 - 10500 + 1400),
        (b, "AUD"): -(4000 - 4800 + 2400 - 800),
        ("platform_revenue", "AUD"): -(4000 + 0 + 6000 + 600 + 600),
        ("refunds", "AUD"): 800 + 4500,
        (f"customer_credit:{c1}", "AUD"): -1500,
        (f"customer_credit:{c2}", "AUD"): -2000,
    }
    with app.app_context():
        rows = db.session.scalars(sa.select(Invoice).where(Invoice.tenant_id == tenant.id)).unique().all()
        open_due = sum(i.amount_due - i.amount_paid for i in rows if i.status == "open")
        payments = db.session.scalar(sa.select(sa.func.sum(Payment.amount)).where(
            Payment.tenant_id == tenant.id, Payment.status == "succeeded"))
        refunds = db.session.scalar(sa.select(sa.func.sum(Refund.amount)).where(
            Refund.tenant_id == tenant.id, Refund.status == "succeeded"))
        credits = {c.customer_id: c.amount for c in db.session.scalars(sa.select(Credit).where(
            Credit.tenant_id == tenant.id, Credit.applied_invoice_id.is_(None)))}
        kinds = sorted(db.session.scalars(sa.text("SELECT kind FROM ledger_journals WHERE tenant_id = :t"),
                                          {"t": tenant.id}))
    assert balances[("receivable", "AUD")] == open_due
    assert balances[("cash", "AUD")] == payments - refunds
    assert {c: -balances[(f"customer_credit:{c}", "AUD")] for c in credits} == credits
    # the close's invoices are one journal (its one chunk), the rest one per movement
    assert kinds == sorted(["invoices_finalized"] + ["payment_received"] * 4 + ["refund", "invoice_voided",
                                                                                "write_off"])


def test_a_void_of_a_written_off_invoice_reverses_both(app, books_of):
    tenant = books_of
    invoice = _invoices(app, tenant)["c4"]
    before = _balances(app, tenant)
    with app.app_context():
        assert invoice_transitions.mark_uncollectible(tenant_settings(tenant.id, False), invoice.id, LATER)
        db.session.commit()
    assert tenant.admin["test"].post(f"/v1/invoices/{invoice.id}/void", {"reason": "gone"}).status_code == 200
    after = _balances(app, tenant)
    changed = {key: after.get(key, 0) - before.get(key, 0) for key in set(before) | set(after)}
    assert {k: v for k, v in changed.items() if v} == {
        ("receivable", "AUD"): -22000, ("tax_payable", "AUD"): 2000,
        (f"provider_payable:{tenant.a}", "AUD"): 14000, ("platform_revenue", "AUD"): 6000}
    with app.app_context():
        voided = handlers._journals_of(tenant.id, False, invoice.id)
    # the close finalized it in its chunk's journal: the void reverses what the invoice put in it
    assert books.totals(voided["write_off"].postings + voided["invoice_voided"].postings) == {"AUD": 0}
