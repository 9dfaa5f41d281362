"""Building one consolidated invoice from a customer's bills (pure)."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.consolidate.invoices import (
    BillItem,
    BillTotal,
    CreditItem,
    MissingRates,
    build_invoice,
    summarize_invoice,
    tax_rate_for,
    totals,
)


def bill(id, amount, currency="AUD", provider="prov_b"):
    return BillItem(id, provider, amount, currency, f"bill {id}")


def test_lines_are_grouped_by_provider_and_totalled_with_tax():
    draft = build_invoice("AUD", Decimal("0.1"), [bill("b2", 550, provider="prov_z"), bill("b1", 10000)], [], {})
    assert [(line.provider_id, line.amount) for line in draft.lines] == [("prov_b", 10000), ("prov_z", 550)]
    assert (draft.totals.subtotal, draft.totals.tax, draft.totals.total) == (10550, 1055, 11605)


def test_tax_rounds_half_up_on_the_subtotal():
    assert totals([5], Decimal("0.1"), "AUD").tax == 1  # 0.5 cent -> 1
    assert totals([4], Decimal("0.1"), "AUD").tax == 0


def test_foreign_bills_are_converted_at_the_rate_and_keep_their_original():
    draft = build_invoice("AUD", Decimal(0), [bill("b1", 1000, "USD")], [], {("USD", "AUD"): Decimal("1.52345")})
    line = draft.lines[0]
    assert (line.amount, line.original_amount, line.original_currency, line.fx_rate) == (
        1523, 1000, "USD", Decimal("1.52345"))


def test_conversion_respects_each_currency_exponent():
    draft = build_invoice("JPY", Decimal(0), [bill("b1", 1999, "USD")], [], {("USD", "JPY"): Decimal("151.5")})
    assert draft.lines[0].amount == 3028  # 19.99 * 151.5 = 3028.485 -> 3028


def test_every_missing_rate_is_named():
    with pytest.raises(MissingRates) as missing:
        build_invoice("AUD", Decimal(0), [bill("a", 1, "USD"), bill("b", 1, "EUR"), bill("c", 1)], [], {})
    assert missing.value.pairs == {("USD", "AUD"), ("EUR", "AUD")}


def test_a_negative_sum_is_invoiced_at_zero_and_carried():
    result = totals([-3000, 1000], Decimal("0.1"), "AUD")
    assert (result.subtotal, result.tax, result.total, result.carried_credit) == (-2000, 0, 0, 2000)


def test_carried_credits_reduce_the_next_invoice_before_tax():
    draft = build_invoice("AUD", Decimal("0.1"), [bill("b", 5000)], [CreditItem("cred_1", 2000, "AUD", "Credit")], {})
    assert [line.kind for line in draft.lines] == ["bill", "credit"]
    assert (draft.totals.subtotal, draft.totals.tax, draft.totals.total) == (3000, 300, 3300)


def test_credits_in_another_currency_wait():
    draft = build_invoice("AUD", Decimal(0), [bill("b", 5000)], [CreditItem("cred_1", 2000, "USD", "Credit")], {})
    assert [line.kind for line in draft.lines] == ["bill"]


def test_exempt_customers_pay_no_tax_and_overrides_win():
    assert tax_rate_for(Decimal("0.1"), Decimal("0.05"), exempt=True) == 0
    assert tax_rate_for(Decimal("0.1"), Decimal("0.05"), exempt=False) == Decimal("0.05")
    assert tax_rate_for(Decimal("0.1"), None, exempt=False) == Decimal("0.1")


@settings(max_examples=200)
@given(st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=30),
       st.decimals(min_value=0, max_value=1, places=4))
def test_totals_are_consistent(amounts, rate):
    result = totals(amounts, rate, "AUD")
    assert result.subtotal == sum(amounts)
    assert result.total >= 0 and result.carried_credit >= 0
    assert result.total - result.carried_credit == result.subtotal + result.tax


def test_a_conversion_beyond_any_storable_amount_is_a_money_error():
    from aggregator.money import MoneyError, convert

    with pytest.raises(MoneyError):
        convert(10**14, "USD", "KWD", Decimal(1_000_000))


def grouped_as_the_close_reads_them(bills, currency):
    """Per currency; bills in another currency also per amount (the close's GROUP BY)."""
    groups: dict[tuple[str, int | None], list[int]] = {}
    for b in bills:
        groups.setdefault((b.currency, None if b.currency == currency else b.amount), []).append(b.amount)
    return [BillTotal(c, sum(amounts), len(amounts)) for (c, _), amounts in groups.items()]


CURRENCIES = ["AUD", "USD", "JPY", "KWD"]


@settings(max_examples=300)
@given(st.sampled_from(CURRENCIES),
       st.lists(st.tuples(st.sampled_from(CURRENCIES), st.integers(-10**7, 10**7) | st.sampled_from([1, 5, -5, 995])),
                min_size=1, max_size=40),
       st.lists(st.tuples(st.integers(1, 10**6), st.sampled_from(CURRENCIES)), max_size=3),
       st.dictionaries(st.tuples(st.sampled_from(CURRENCIES), st.sampled_from(CURRENCIES)),
                       st.decimals(min_value=Decimal("0.000001"), max_value=1000, places=6), max_size=16),
       st.decimals(min_value=0, max_value=Decimal("0.3"), places=4))
def test_the_close_totals_from_sums_equal_the_invoice_built_line_by_line(currency, raw, raw_credits, rates, tax):
    bills = [BillItem(f"b{i}", f"prov_{i % 3}", amount, cur, "x") for i, (cur, amount) in enumerate(raw)]
    credits = [CreditItem(f"cred_{i}", amount, cur, "Credit") for i, (amount, cur) in enumerate(raw_credits)]
    from aggregator.money import MoneyError

    grouped = grouped_as_the_close_reads_them(bills, currency)
    try:
        draft = build_invoice(currency, tax, bills, credits, rates)
    except MoneyError:  # a conversion beyond any storable amount
        with pytest.raises(MoneyError):
            summarize_invoice(currency, tax, grouped, credits, rates)
        return
    except MissingRates as missing:
        with pytest.raises(MissingRates) as same:
            summarize_invoice(currency, tax, grouped, credits, rates)
        assert same.value.pairs == missing.pairs
        return
    summary = summarize_invoice(currency, tax, grouped, credits, rates)
    assert summary.totals == draft.totals
    assert summary.credit_lines == tuple(line for line in draft.lines if line.kind == "credit")
    assert summary.rates == {line.original_currency: line.fx_rate for line in draft.lines if line.original_currency}
    # the lines derived on read with the recorded rates are the ones the totals came from
    recorded = {(base, currency): rate for base, rate in summary.rates.items()}
    assert build_invoice(currency, tax, bills, credits, recorded) == draft


def test_totals_beyond_what_can_be_stored_are_a_money_error_not_a_failed_close():
    from aggregator.consolidate.invoices import BillTotal, summarize_invoice
    from aggregator.money import MoneyError

    with pytest.raises(MoneyError, match="beyond what can be stored"):
        totals([2**62, 2**62], Decimal("0"), "AUD")
    with pytest.raises(MoneyError, match="beyond what can be stored"):
        totals([2**62 + 2**61], Decimal("0.5"), "AUD")  # the subtotal fits, the total with tax does not
    with pytest.raises(MoneyError):
        summarize_invoice("AUD", Decimal("0"), [BillTotal("AUD", 92_300 * 10**14, 92_300)], [], {})
