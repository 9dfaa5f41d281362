"""The ledger's pure core: postings, the chart of accounts and the standard journals, each of
which balances per currency for any amounts."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ledger import journal as books
from aggregator.ledger.journal import Journal, LedgerError, Posting, Unbalanced
from aggregator.revenue.shares import Share

CURRENCIES = ["AUD", "USD", "JPY", "KWD"]
amounts = st.integers(min_value=0, max_value=10**12)
ids = st.from_regex(r"prov_[0-9a-z]{6}", fullmatch=True)


@st.composite
def shares(draw, invoice_currency: str):
    """Shares as revenue/shares.py makes them: net + fee is what was billed (in the bill's
    currency); a converted bill was invoiced some other amount in the invoice's currency."""
    result = []
    for _ in range(draw(st.integers(0, 6))):
        currency = draw(st.sampled_from(CURRENCIES))
        gross, fee = draw(amounts), draw(amounts)
        fee = min(fee, gross)
        invoiced = gross if currency == invoice_currency else draw(amounts)
        result.append(Share(draw(ids), currency, gross - fee, fee, invoiced))
    return result


@st.composite
def invoices(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    parts = draw(shares(currency))
    tax = draw(amounts)
    billed = tax + sum(s.invoiced for s in parts)
    credit = draw(st.integers(0, billed))
    return currency, billed - credit, tax, parts, [("cus_abc123", credit)] if credit else []


def balanced_per_currency(journal: Journal) -> bool:
    return all(total == 0 for total in books.totals(journal.postings).values())


@given(invoices())
def test_an_invoice_finalized_balances_in_each_currency(invoice):
    currency, amount_due, tax, parts, credits = invoice
    journal = books.invoice_finalized("inv_1", currency, amount_due, tax, parts, credits)
    assert balanced_per_currency(journal)
    payable = [p.amount for p in journal.postings if books.is_provider_payable(p.account)]
    assert sum(payable) == -sum(s.net for s in parts)
    assert all(p.amount for p in journal.postings)  # no zero postings


@given(invoices())
def test_a_void_is_the_exact_reversal_of_the_finalized_journal(invoice):
    currency, amount_due, tax, parts, credits = invoice
    finalized = books.invoice_finalized("inv_1", currency, amount_due, tax, parts, credits)
    voided = books.invoice_voided("inv_1", finalized)
    assert balanced_per_currency(voided)
    assert books.totals(finalized.postings + voided.postings) == {c: 0 for c in books.totals(finalized.postings)}
    assert [(p.account, p.currency, -p.amount) for p in voided.postings] == [
        (p.account, p.currency, p.amount) for p in finalized.postings]


@given(st.sampled_from(CURRENCIES), amounts, amounts)
def test_a_payment_balances_and_an_overpayment_is_the_customers_credit(currency, amount, applied):
    applied = min(applied, amount)
    journal = books.payment_received("pay_1", currency, amount, applied, customer_id="cus_abc123")
    assert balanced_per_currency(journal)
    credit = sum(p.amount for p in journal.postings if p.account == "customer_credit:cus_abc123")
    assert credit == -(amount - applied)


@given(invoices())
def test_a_refund_and_a_credit_balance_for_any_tax_and_shares(invoice):
    currency, _, tax, parts, _ = invoice
    amount = tax + sum(s.invoiced for s in parts)
    refund = books.refund("re_1", currency, amount, tax, parts)
    credit = books.credit_granted("cred_1", "cus_abc123", currency, amount, tax, parts)
    assert balanced_per_currency(refund) and balanced_per_currency(credit)
    clawed = sum(p.amount for p in refund.postings if books.is_provider_payable(p.account))
    assert clawed == sum(s.net for s in parts)  # debited back from the providers


@given(st.sampled_from(CURRENCIES), amounts)
def test_a_payout_debits_the_providers_payable_and_credits_cash(currency, amount):
    journal = books.payout_sent("po_1", "prov_abc", currency, amount)
    assert balanced_per_currency(journal)
    assert {p.account: p.amount for p in journal.postings} == ({"provider_payable:prov_abc": amount,
                                                                 "cash": -amount} if amount else {})


def test_a_converted_bill_balances_each_currency_through_fx():
    # a USD 100.00 bill, invoiced AUD 152.00, 30% platform fee: payouts are in USD
    journal = books.invoice_finalized("inv_1", "AUD", 16720, 1520, [Share("prov_a", "USD", 7000, 3000, 15200)])
    assert sorted((p.account, p.currency, p.amount) for p in journal.postings) == [
        ("fx", "AUD", -15200), ("fx", "USD", 10000), ("platform_revenue", "USD", -3000),
        ("provider_payable:prov_a", "USD", -7000), ("receivable", "AUD", 16720), ("tax_payable", "AUD", -1520)]


def test_inconsistent_amounts_are_refused_never_plugged():
    with pytest.raises(Unbalanced):
        books.invoice_finalized("inv_1", "AUD", 1000, 100, [Share("prov_a", "AUD", 700, 300, 1000)])  # due 1100
    with pytest.raises(Unbalanced):
        books.refund("re_1", "AUD", 500, 0, [Share("prov_a", "AUD", 300, 100, 400)])
    with pytest.raises(Unbalanced):
        Journal("payment_received", "pay_1", (Posting("cash", "AUD", 100), Posting("receivable", "USD", -100)))


def test_balance_is_per_currency_not_across_currencies():
    with pytest.raises(Unbalanced, match="AUD 1.00, USD -1.00"):
        books.check_balanced([Posting("cash", "AUD", 100), Posting("cash", "USD", -100)])


@pytest.mark.parametrize("account", ["bank", "provider_payable", "provider_payable:", "cash:prov_a",
                                     "customer_credit:Robert'); DROP", "receivable:cus_1"])
def test_accounts_outside_the_chart_are_refused(account):
    with pytest.raises(LedgerError):
        Posting(account, "AUD", 1)


def test_every_account_has_a_type_and_a_normal_side():
    assert books.account_type("cash").normal == "debit"
    assert books.account_type("provider_payable:prov_a").normal == "credit"
    assert books.account_type("customer_credit:cus_a").name == "liability"
    assert books.account_type("refunds").name == "contra_revenue"
    with pytest.raises(LedgerError):
        Posting("cash", "XXX", 1)
    with pytest.raises(LedgerError):
        Posting("cash", "AUD", 1.5)


@given(invoices(), st.lists(st.integers(-10**6, 10**12), min_size=1))
def test_a_refund_claws_back_from_the_payable_only_what_the_provider_is_owed(invoice, owed_amounts):
    currency, _, tax, parts, _ = invoice
    amount = tax + sum(s.invoiced for s in parts)
    keys = sorted({(s.provider_id, s.currency) for s in parts})
    owed = {key: owed_amounts[i % len(owed_amounts)] for i, key in enumerate(keys)}
    journal = books.refund("re_1", currency, amount, tax, parts, owed=owed)
    assert balanced_per_currency(journal)
    for provider_id, share_currency in keys:
        def on(code, provider_id=provider_id, share_currency=share_currency):
            return sum(p.amount for p in journal.postings
                       if p.account == f"{code}:{provider_id}" and p.currency == share_currency)
        net = sum(s.net for s in parts if (s.provider_id, s.currency) == (provider_id, share_currency))
        assert 0 <= on("provider_payable") <= max(owed[provider_id, share_currency], 0)
        assert on("provider_payable") + on("provider_clawback") == net


def test_a_payout_recovers_what_the_provider_owes_back():
    journal = books.payout_sent("po_1", "prov_a", "AUD", 5000, recovered=2000)
    assert sorted((p.account, p.amount) for p in journal.postings) == [
        ("cash", -5000), ("provider_clawback:prov_a", -2000), ("provider_payable:prov_a", 7000)]


def test_a_journal_fits_its_table():
    with pytest.raises(LedgerError):
        books.payment_received("pay_" + "x" * 40, "AUD", 100)
    with pytest.raises(LedgerError):
        books.payment_received("pay_1", "AUD", 100, memo="m" * 501)
