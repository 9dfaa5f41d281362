"""The ledger export's Beancount text, without a database: every account of the chart has a valid
Beancount name, one to one; memos of any text survive the quoting; a transaction parses back
with its postings, ids and link."""
from __future__ import annotations

from datetime import date, datetime, timezone

from beancount.core import account as bean_account
from beancount.core import data
from beancount.parser import parser
from hypothesis import given
from hypothesis import strategies as st

from aggregator.ledger import journal as books
from aggregator.ledger.export import ExportedJournal, beancount_account, beancount_text

party_ids = st.from_regex(r"[a-z]{1,6}_[0-9a-z]{1,36}", fullmatch=True)


def test_every_account_code_of_the_chart_maps_to_a_beancount_account_under_its_root():
    names = {code: beancount_account(code if code not in books.PER_PARTY else f"{code}:prov_01jd")
             for code in books.CHART}
    assert names == {
        "receivable": "Assets:Receivable", "cash": "Assets:Cash", "tax_payable": "Liabilities:TaxPayable",
        "provider_payable": "Liabilities:ProviderPayable:Prov-01jd",
        "provider_clawback": "Assets:ProviderClawback:Prov-01jd",
        "customer_credit": "Liabilities:CustomerCredit:Prov-01jd", "platform_revenue": "Income:PlatformRevenue",
        "refunds": "Income:Refunds", "fx": "Equity:Fx"}
    assert all(bean_account.is_valid(name) for name in names.values())


@given(first=party_ids, second=party_ids)
def test_party_accounts_are_valid_and_one_to_one(first, second):
    one, other = (beancount_account(books.provider_payable(p)) for p in (first, second))
    assert bean_account.is_valid(one) and bean_account.is_valid(other)
    assert (one == other) == (first == second)


@given(memo=st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=60))
def test_a_memo_of_any_text_parses_back_as_the_narration(memo):
    journal = ExportedJournal("jrn_1", "payment_received", "payment", "pay_1", memo or None,
                              datetime(2026, 11, 2, 1, tzinfo=timezone.utc), date(2026, 11, 2),
                              (("cash", "JPY", 1200), ("receivable", "JPY", -1200)))
    entries, errors, _ = parser.parse_string(beancount_text("A \"title\"", "JPY", [journal]))
    assert not errors
    [txn] = [e for e in entries if isinstance(e, data.Transaction)]
    assert txn.narration == "Payment received pay_1" + (f": {' '.join(memo.split())}" if memo.split() else "")
    assert [(p.account, str(p.units)) for p in txn.postings] == [("Assets:Cash", "1200 JPY"),
                                                                 ("Assets:Receivable", "-1200 JPY")]
    assert (txn.meta["journal_id"], txn.links, txn.tags) == ("jrn_1", {"pay_1"}, {"payment_received"})
