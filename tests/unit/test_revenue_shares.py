"""Revenue shares and what an invoice's collection pays each bill (pure): revenue/."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import money
from aggregator.consolidate.invoices import CreditItem
from aggregator.money import MoneyError
from aggregator.revenue.parts import InvoicedBill, InvoiceParts
from aggregator.revenue.shares import (
    Collection,
    Payout,
    clawback,
    collected_shares,
    fx_difference,
    payment_lines,
    payout,
)
from aggregator.revenue.terms import Split, split
from tests.support.revenue import CURRENCIES, bill, invoices, parts_of, rates

#: Deadline off: the first currency lookup loads Babel's data.
FEW = settings(max_examples=150, deadline=None)


def usd(text: str) -> int:
    return money.parse_amount(text, "USD")


# --- the split, by example ---------------------------------------------------------------------

def test_a_30_percent_share_of_49_usd_is_a_14_70_fee_and_34_30_net():
    assert split(usd("49.00"), True, Decimal("0.30")) == Split(fee=usd("14.70"), net=usd("34.30"))


def test_a_jpy_fee_rounds_half_up_to_whole_yen():
    assert split(1999, True, Decimal("0.30")) == Split(fee=600, net=1399)  # 599.7 -> 600
    assert split(5, True, Decimal("0.5")) == Split(fee=3, net=2)  # 2.5 -> 3


def test_a_kwd_fee_is_exact_to_the_fils():
    kwd = money.parse_amount("12.345", "KWD")
    assert split(kwd, True, Decimal("0.15")) == Split(fee=1852, net=10493)  # 1851.75 fils -> 1852


def test_a_pass_through_bill_is_all_the_providers():
    assert split(usd("49.00"), False, Decimal("0.30")) == Split(fee=0, net=usd("49.00"))


def test_a_negative_bill_gives_the_fee_back_rounding_away_from_zero():
    assert split(-usd("49.00"), True, Decimal("0.30")) == Split(fee=-usd("14.70"), net=-usd("34.30"))
    assert split(-5, True, Decimal("0.3")) == Split(fee=-2, net=-3)  # -1.5 -> -2


@pytest.mark.parametrize("rate", [Decimal("1.000001"), Decimal("-0.1"), Decimal("NaN"), Decimal("Infinity"), 0.3])
def test_a_rate_outside_0_to_1_or_not_a_decimal_is_refused(rate):
    with pytest.raises(MoneyError):
        split(100, True, rate)


# --- the split, for any bills ------------------------------------------------------------------

bills_strategy = st.lists(st.tuples(st.sampled_from(CURRENCIES), st.integers(-10**12, 10**12), st.booleans(), rates),
                          min_size=1, max_size=30)


@FEW
@given(bills_strategy)
def test_net_plus_fee_is_every_bill_exactly_per_currency(bills):
    fees, nets, billed = Counter(), Counter(), Counter()
    for currency, amount, revenue_share, rate in bills:
        share = split(amount, revenue_share, rate)
        assert share.fee + share.net == amount
        assert abs(share.fee) <= abs(amount) and share.fee * amount >= 0 and share.net * amount >= 0
        if not revenue_share:
            assert share.fee == 0
        fees[currency] += share.fee
        nets[currency] += share.net
        billed[currency] += amount
    for currency in billed:
        assert nets[currency] + fees[currency] == billed[currency]


# --- invoices for the collection properties ----------------------------------------------------

def collectable_invoices():
    return invoices().filter(lambda invoice: invoice.total > 0)


def assert_adds_up(collection: Collection) -> None:
    assert sum(b.collected for b in collection.bills) + collection.tax + collection.credit + collection.carried \
        == collection.collected
    for share in collection.bills:
        assert share.fee + share.net == share.amount


def by_bill(*collections: Collection) -> dict[str, tuple[int, int, int, int]]:
    """Per bill, the sum of (collected, amount, fee, net) over the collections."""
    totals: dict[str, tuple[int, int, int, int]] = {}
    for collection in collections:
        for b in collection.bills:
            before = totals.get(b.bill_id, (0, 0, 0, 0))
            totals[b.bill_id] = tuple(x + y for x, y in zip(before, (b.collected, b.amount, b.fee, b.net)))
    return totals


# --- pro rata collection -----------------------------------------------------------------------

@FEW
@given(invoices())
def test_a_fully_collected_invoice_pays_each_bill_its_whole_split(invoice):
    settled = collected_shares(invoice, invoice.total)
    assert_adds_up(settled)
    assert settled.tax == invoice.tax and settled.credit == invoice.credit
    fees, nets, billed = Counter(), Counter(), Counter()
    for share, invoiced in zip(settled.bills, invoice.bills):
        assert (share.collected, share.amount, share.fee, share.net) == (
            invoiced.invoiced_amount, invoiced.amount, invoiced.share.fee, invoiced.share.net)
        fees[share.currency] += share.fee
        nets[share.currency] += share.net
        billed[invoiced.currency] += invoiced.amount
    assert all(nets[c] + fees[c] == billed[c] for c in billed)


@FEW
@given(collectable_invoices(), st.data())
def test_a_partial_collection_is_attributed_pro_rata_and_adds_up_exactly(invoice, data):
    collected = data.draw(st.integers(0, invoice.total))
    collection = collected_shares(invoice, collected)
    assert_adds_up(collection)
    fraction = Fraction(collected, invoice.total)
    parts = [(s.collected, b.invoiced_amount) for s, b in zip(collection.bills, invoice.bills)]
    for part, whole in [*parts, (collection.tax, invoice.tax), (collection.credit, invoice.credit)]:
        assert 0 <= part * (1 if whole >= 0 else -1) <= abs(whole)  # between nothing and all of it
        assert abs(part - whole * fraction) < Fraction(3, 2)  # the bound rule 2 states
    for share, invoiced in zip(collection.bills, invoice.bills):
        assert 0 <= share.amount * (1 if invoiced.amount >= 0 else -1) <= abs(invoiced.amount)
        assert share.fee * invoiced.share.fee >= 0 and share.net * invoiced.share.net >= 0


@FEW
@given(collectable_invoices(), st.data())
def test_two_partial_payments_attribute_exactly_what_one_payment_does(invoice, data):
    first = data.draw(st.integers(0, invoice.total))
    second = data.draw(st.integers(0, invoice.total - first))
    in_two = by_bill(payment_lines(invoice, 0, first), payment_lines(invoice, first, second))
    at_once = by_bill(payment_lines(invoice, 0, first + second))
    assert in_two == at_once
    rest = payment_lines(invoice, first + second, invoice.total - first - second)
    assert by_bill(payment_lines(invoice, 0, first), payment_lines(invoice, first, second), rest) == {
        b.bill_id: (b.invoiced_amount, b.amount, b.share.fee, b.share.net) for b in invoice.bills}


@FEW
@given(collectable_invoices(), st.data())
def test_a_refund_claws_back_pro_rata_and_later_payments_still_settle_exactly(invoice, data):
    paid = data.draw(st.integers(0, invoice.total))
    refunded = data.draw(st.integers(0, paid))
    back = clawback(refunded, invoice, paid)
    assert_adds_up(back)
    assert back.collected == -refunded
    assert sum(b.collected for b in back.bills) + back.tax + back.credit == -refunded
    after = by_bill(payment_lines(invoice, 0, paid), back)
    assert after == by_bill(collected_shares(invoice, paid - refunded))
    repaid = payment_lines(invoice, paid - refunded, invoice.total - paid + refunded)
    assert by_bill(payment_lines(invoice, 0, paid), back, repaid) == by_bill(collected_shares(invoice, invoice.total))


def test_largest_remainder_can_take_a_minor_unit_back_from_a_bill_on_a_later_payment():
    """Rule 3's price (the Alabama paradox): 3 of 7 collected gives the bills of 1, 3 and 3 one
    each; 4 of 7 gives 0, 2 and 2. The cumulative shares stay exact and in bounds."""
    invoice = InvoiceParts("USD", tuple(InvoicedBill(f"b{i}", "p", "USD", x, x, split(x, False, Decimal(0)))
                                        for i, x in enumerate((1, 3, 3))), tax=0)
    assert [b.collected for b in collected_shares(invoice, 3).bills] == [1, 1, 1]
    assert [b.collected for b in payment_lines(invoice, 3, 1).bills] == [-1, 1, 1]
    assert [b.collected for b in collected_shares(invoice, 4).bills] == [0, 2, 2]


@FEW
@given(collectable_invoices(), st.data())
def test_a_line_of_a_partial_payment_or_refund_goes_the_wrong_way_by_at_most_2_minor_units(invoice, data):
    before = data.draw(st.integers(0, invoice.total))
    paid = data.draw(st.integers(0, invoice.total - before))
    for line, invoiced in zip(payment_lines(invoice, before, paid).bills, invoice.bills):
        assert line.collected * (1 if invoiced.invoiced_amount >= 0 else -1) >= -2
    for line, invoiced in zip(clawback(paid, invoice, before + paid).bills, invoice.bills):
        assert line.collected * (1 if invoiced.invoiced_amount >= 0 else -1) <= 2


def test_a_providers_credit_reduces_its_own_share_as_the_invoice_is_paid():
    invoice = parts_of([bill("a", usd("100.00"), provider="prov_a"), bill("b", -usd("10.00"), provider="prov_b")],
                       {"a": (True, Decimal("0.3")), "b": (False, Decimal("0.3"))}, tax_rate="0.1")
    assert invoice.total == usd("99.00")
    half = collected_shares(invoice, usd("49.50"))
    assert [(b.provider_id, b.collected, b.fee, b.net) for b in half.bills] == [
        ("prov_a", usd("50.00"), usd("15.00"), usd("35.00")), ("prov_b", -usd("5.00"), 0, -usd("5.00"))]
    assert half.tax == usd("4.50")
    full = collected_shares(invoice, usd("99.00"))
    assert [(b.fee, b.net) for b in full.bills] == [(usd("30.00"), usd("70.00")), (0, -usd("10.00"))]
    assert full.tax == usd("9.00")


def test_a_carried_credit_is_the_platforms_and_is_applied_pro_rata():
    invoice = parts_of([bill("a", usd("100.00"))], {"a": (False, Decimal(0))}, tax_rate="0.1",
                       credits=[CreditItem("cred", usd("50.00"), "USD", "credit")])
    assert (invoice.tax, invoice.total) == (usd("5.00"), usd("55.00"))
    half = collected_shares(invoice, usd("27.50"))
    assert (half.bills[0].net, half.tax, half.credit) == (usd("50.00"), usd("2.50"), -usd("25.00"))


def test_an_invoice_its_credits_cover_is_settled_in_full_and_the_platform_keeps_the_rest_for_the_customer():
    invoice = parts_of([bill("a", usd("100.00"), provider="prov_a"), bill("b", -usd("150.00"), provider="prov_b")],
                       {"a": (True, Decimal("0.2")), "b": (True, Decimal("0.2"))}, tax_rate="0.1")
    assert (invoice.total, invoice.tax, invoice.carried) == (0, 0, usd("50.00"))
    settled = collected_shares(invoice, 0)
    assert_adds_up(settled)
    assert [(b.fee, b.net) for b in settled.bills] == [(usd("20.00"), usd("80.00")), (-usd("30.00"), -usd("120.00"))]
    assert settled.carried == usd("50.00")


def test_collecting_more_than_the_total_or_refunding_more_than_collected_is_refused():
    invoice = parts_of([bill("a", 1000)], {"a": (True, Decimal("0.3"))})
    with pytest.raises(ValueError):
        collected_shares(invoice, 1001)
    with pytest.raises(ValueError):
        clawback(600, invoice, 500)


def test_inconsistent_invoice_parts_are_refused():
    bill_ = InvoicedBill("b", "p", "USD", -100, -100, split(-100, False, Decimal(0)))
    with pytest.raises(ValueError):
        InvoiceParts("USD", (bill_,), tax=10)  # tax on a negative subtotal


# --- FX ----------------------------------------------------------------------------------------

def test_a_converted_bill_is_paid_in_its_own_currency_and_the_platform_bears_the_difference():
    invoice = parts_of([bill("a", usd("10.00"))], {"a": (True, Decimal("0.3"))}, currency="AUD",
                       fx={("USD", "AUD"): Decimal("1.52345")})
    settled = collected_shares(invoice, invoice.total).bills[0]
    assert (settled.currency, settled.collected, settled.amount, settled.fee, settled.net) == (
        "USD", 1523, usd("10.00"), usd("3.00"), usd("7.00"))
    assert fx_difference(settled.collected, "AUD", settled.amount, "USD", Decimal("1.52345")) == 0
    assert fx_difference(settled.collected, "AUD", settled.amount, "USD", Decimal("1.60")) == 1523 - 1600  # a loss
    half = collected_shares(invoice, 761).bills[0]  # 761/1523 of 10.00 USD = 4.9967... -> 5.00
    assert (half.amount, half.fee, half.net) == (usd("5.00"), usd("1.50"), usd("3.50"))
    assert fx_difference(half.collected, "AUD", half.amount, "USD", Decimal("1.52345")) == 761 - 762


@FEW
@given(collectable_invoices(), st.data(), st.decimals(min_value=Decimal("0.0001"), max_value=1000, places=6))
def test_each_currency_balances_on_its_own_through_the_fx_difference(invoice, data, rate):
    collection = collected_shares(invoice, data.draw(st.integers(0, invoice.total)))
    in_invoice_currency = collection.tax + collection.credit
    for share in collection.bills:
        if share.currency == invoice.currency:
            assert share.collected == share.amount
            in_invoice_currency += share.amount
        else:
            in_invoice_currency += money.convert(share.amount, share.currency, invoice.currency, rate) + \
                fx_difference(share.collected, invoice.currency, share.amount, share.currency, rate)
    assert in_invoice_currency == collection.collected


@FEW
@given(invoices())
def test_a_fully_collected_converted_bill_has_no_fx_difference_at_its_invoice_rate(invoice):
    for share, invoiced in zip(collected_shares(invoice, invoice.total).bills, invoice.bills):
        if invoiced.fx_rate is not None:
            assert fx_difference(share.collected, invoice.currency, share.amount, share.currency,
                                 invoiced.fx_rate) == 0


# --- payouts -----------------------------------------------------------------------------------

def test_a_negative_net_is_carried_never_transferred():
    assert payout([usd("30.00"), -usd("50.00")], 0) == Payout(transfer=0, carry=-usd("20.00"))
    assert payout([usd("35.00")], -usd("20.00")) == Payout(transfer=usd("15.00"), carry=0)


def test_a_positive_carried_balance_is_refused():
    with pytest.raises(ValueError):
        payout([100], 1)


@FEW
@given(st.lists(st.integers(-10**12, 10**12), max_size=50), st.integers(-10**12, 0))
def test_a_payout_is_never_negative_and_loses_nothing(lines, carried):
    result = payout(lines, carried)
    assert result.transfer >= 0 and result.carry <= 0
    assert result.transfer * result.carry == 0
    assert result.transfer + result.carry == sum(lines) + carried


@FEW
@given(st.lists(collectable_invoices(), min_size=1, max_size=3), st.data())
def test_providers_and_platform_share_exactly_what_was_collected_over_payments_and_refunds(invoices_, data):
    """Per bill currency: the providers' nets and the platform's fees over every payment and refund
    line add up to what is collected of the bills there; each provider's payout loses nothing."""
    nets, fees, collected = Counter(), Counter(), Counter()
    for invoice in invoices_:
        paid = data.draw(st.integers(0, invoice.total))
        refunded = data.draw(st.integers(0, paid))
        for lines in (payment_lines(invoice, 0, paid), clawback(refunded, invoice, paid)):
            for line in lines.bills:
                nets[(line.provider_id, line.currency)] += line.net
                fees[line.currency] += line.fee
        for share in collected_shares(invoice, paid - refunded).bills:
            collected[share.currency] += share.amount
    for currency in collected:
        assert sum(v for (_, c), v in nets.items() if c == currency) + fees[currency] == collected[currency]
    for net in nets.values():
        result = payout([net], 0)
        assert result.transfer + result.carry == net and result.transfer >= 0
