"""The share policies (revenue/terms.py): a bill's split by its provider's terms or its own fee,
and the grouped split (what the close and the payout build take from bills the database summed)
equal to the bill-by-bill split, exactly, for each policy."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import money
from aggregator.revenue.parts import InvoicedBill, InvoiceParts
from aggregator.revenue.shares import collected_shares
from aggregator.revenue.terms import (
    PASS_THROUGH,
    ExplicitFee,
    PassThrough,
    RevenueShare,
    SharePolicy,
    Split,
    policy,
    split,
)
from tests.support.revenue import rates

MANY = settings(max_examples=300, deadline=None)

amounts = st.lists(st.integers(-10**12, 10**12), min_size=1, max_size=60)


def grouped(policy_: SharePolicy, bills: list[int], modulus: int) -> Split:
    """Σ split_group over `bills` grouped as the database groups them (revenue_sql): by sign and
    magnitude mod `modulus` (a multiple of the policy's), summing their amounts."""
    groups: dict[tuple[bool, int], list[int]] = defaultdict(list)
    for amount in bills:
        groups[amount < 0, abs(amount) % modulus].append(amount)
    splits = [policy_.split_group(len(g), sum(g), remainder) for (_, remainder), g in groups.items()]
    return Split(sum(s.fee for s in splits), sum(s.net for s in splits))


def one_by_one(policy_: SharePolicy, bills: list[int]) -> Split:
    splits = [policy_.split(amount) for amount in bills]
    return Split(sum(s.fee for s in splits), sum(s.net for s in splits))


# --- each policy: grouped == bill by bill --------------------------------------------------------

@MANY
@given(rates, amounts, st.integers(1, 50))
def test_a_revenue_share_grouped_by_sign_and_remainder_is_each_bill_rounded_on_its_own(rate, bills, factor):
    """The group's fee is Σ apply_rate(bill), never apply_rate(Σ bills): each bill rounds half up
    on its own, as rule 1 says, whatever multiple of the rate's modulus the database grouped by
    (the payout build groups a provider's bills of several periods by their rates' common one)."""
    share = RevenueShare(rate)
    assert grouped(share, bills, share.modulus * factor) == one_by_one(share, bills)
    assert one_by_one(share, bills).fee == sum(money.apply_rate(a, rate) for a in bills)


@MANY
@given(amounts, st.integers(1, 50))
def test_pass_through_bills_grouped_are_all_the_providers(bills, modulus):
    assert grouped(PASS_THROUGH, bills, modulus) == one_by_one(PASS_THROUGH, bills) == Split(0, sum(bills))


@MANY
@given(st.lists(st.tuples(st.integers(-10**12, 10**12), st.integers(-10**12, 10**12)), min_size=1, max_size=60))
def test_bills_with_their_own_fees_grouped_are_split_by_the_sum_of_their_fees(bills):
    """A group of bills that carry their own platform fee is split by ExplicitFee(Σ fee), as the
    database sums those fees: the same as each bill by its own fee."""
    by_sign: dict[bool, list[tuple[int, int]]] = defaultdict(list)
    for amount, fee in bills:
        by_sign[amount < 0].append((amount, fee))
    group = [ExplicitFee(sum(f for _, f in g)).split_group(len(g), sum(a for a, _ in g)) for g in by_sign.values()]
    each = [ExplicitFee(fee).split(amount) for amount, fee in bills]
    assert (sum(s.fee for s in group), sum(s.net for s in group)) == \
        (sum(s.fee for s in each), sum(s.net for s in each))


@MANY
@given(st.lists(st.tuples(st.integers(-10**12, 10**12), st.booleans(), rates), min_size=1, max_size=60))
def test_a_group_of_one_bill_is_that_bills_split(bills):
    for amount, revenue_share, rate in bills:
        terms = policy(revenue_share, rate)
        assert terms.split_group(1, amount, abs(amount) % terms.modulus) == terms.split(amount) \
            == split(amount, revenue_share, rate)


# --- the policies, by example ----------------------------------------------------------------------

def test_a_bill_is_split_by_its_own_fee_else_its_providers_terms():
    assert policy(True, Decimal("0.3")) == RevenueShare(Decimal("0.3"))
    assert policy(False, Decimal("0.3")) == PassThrough()
    assert policy(True, Decimal("0.3"), fee=120) == policy(False, Decimal("0.3"), fee=120) == ExplicitFee(120)
    assert policy(True, Decimal("0.3"), fee=120).split(1000) == Split(fee=120, net=880)


def test_a_bill_priced_below_its_own_fee_leaves_the_provider_owing_the_difference():
    """A provider's plan priced below its parent plan: the platform's fee is the parent's price,
    the provider's net negative (issue 18's parent plans)."""
    assert ExplicitFee(1200).split(1000) == Split(fee=1200, net=-200)
    assert ExplicitFee(500).split(0) == Split(fee=500, net=-500)
    assert ExplicitFee(-300).split(-1000) == Split(fee=-300, net=-700)  # a credit gives the fee back


def test_a_group_rounds_each_bill_not_the_sum():
    """Two bills of 5 at 30 %: 1.5 -> 2 each, so 4, where the sum 10 would give 3."""
    share = RevenueShare(Decimal("0.3"))
    assert share.split_group(2, 10, 5) == Split(fee=4, net=6) == Split(2 * share.split(5).fee, 2 * share.split(5).net)
    assert share.split_group(2, -10, 5) == Split(fee=-4, net=-6)


def test_the_modulus_is_the_rates_denominator():
    assert [RevenueShare(Decimal(r)).modulus for r in ("0", "1", "0.3", "0.30", "0.125", "0.000001")] == \
        [1, 1, 10, 10, 8, 1_000_000]
    assert PASS_THROUGH.modulus == ExplicitFee(5).modulus == 1


def test_a_group_without_bills_or_a_bad_rate_is_refused():
    with pytest.raises(ValueError):
        RevenueShare(Decimal("0.3")).split_group(0, 0, 0)
    with pytest.raises(ValueError):
        RevenueShare(Decimal("0.3")).split_group(2, 11, 5)  # 11 is not two magnitudes ≡ 5 (mod 10)
    with pytest.raises(money.MoneyError):
        RevenueShare(Decimal("1.5"))
    with pytest.raises(money.MoneyError):
        policy(False, 0.3)  # type: ignore[arg-type]


# --- a bill's own fee through a collection (revenue/shares.py, rule 2) --------------------------------

@MANY
@given(st.integers(-10**12, 10**12).filter(bool), st.booleans(), rates, st.data())
def test_a_collected_part_is_split_as_before_when_fee_and_net_have_the_bills_sign(amount, revenue_share, rate, data):
    """Rule 2 splits a bill's collected part a of its amount A as fee = F·a/A rounded half up
    (away from zero); for a split whose fee and net have the bill's sign (every rate policy) that
    is what money.allocate(a, [|F|, |N|]) gave before bills could carry their own fee."""
    share = policy(revenue_share, rate).split(amount)
    part = data.draw(st.integers(0, abs(amount))) * (1 if amount > 0 else -1)
    before = money.allocate(part, [abs(share.fee), abs(share.net)])[0] if part else 0
    assert money.allocate(share.fee, [abs(part), abs(amount) - abs(part)])[0] == before


def test_a_bill_with_its_own_fee_above_its_amount_is_collected_pro_rata_and_settles_at_its_split():
    bill = InvoicedBill("b1", "prov_a", "USD", 1000, 1000, ExplicitFee(1200).split(1000))
    invoice = InvoiceParts("USD", (bill,), tax=0)
    half, whole = collected_shares(invoice, 500).bills[0], collected_shares(invoice, 1000).bills[0]
    assert (half.amount, half.fee, half.net) == (500, 600, -100)
    assert (whole.amount, whole.fee, whole.net) == (1000, 1200, -200)
