"""Prices on usage (aggregator/catalog/pricing.py): per unit, package, graduated and volume tiers,
included units, one rounding of the total, minimum and maximum, validation and the invoice line."""
from __future__ import annotations

from fractions import Fraction as F

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from aggregator import money
from aggregator.catalog.pricing import (
    GRADUATED,
    PACKAGE,
    PER_UNIT,
    VOLUME,
    PriceModel,
    Tier,
    check,
    describe,
    price,
)

FEW = settings(max_examples=200, deadline=None)

# --- strategies --------------------------------------------------------------------------------

#: Minor units per unit, often finer than the minor unit (1/20 is EUR 0.0005).
unit_amounts = st.fractions(min_value=0, max_value=10_000, max_denominator=100)
flat_amounts = st.one_of(st.just(F(0)), st.fractions(min_value=0, max_value=10_000, max_denominator=10))
#: Quantities: whole (calls, VMs) or fractional (GiB-hours).
quantities = st.one_of(st.integers(0, 5_000).map(F), st.fractions(min_value=0, max_value=5_000, max_denominator=1000))
includeds = st.one_of(st.just(F(0)), st.integers(0, 2_000).map(F), quantities)


@st.composite
def tier_lists(draw: st.DrawFn, flat: bool = True) -> tuple[Tier, ...]:
    """1 to 5 valid tiers: strictly increasing positive bounds, the last unbounded."""
    bounds = sorted(set(draw(st.lists(st.fractions(min_value=F(1, 10), max_value=4_000, max_denominator=10),
                                      max_size=4))))
    return tuple(Tier(up_to=bound, unit_amount=draw(unit_amounts), flat_amount=draw(flat_amounts) if flat else F(0))
                 for bound in [*bounds, None])


def minimums_and_maximums(draw: st.DrawFn) -> tuple[int | None, int | None]:
    minimum = draw(st.one_of(st.none(), st.integers(0, 100_000)))
    maximum = draw(st.one_of(st.none(), st.integers(minimum or 0, 10_000_000)))
    return minimum, maximum


@st.composite
def price_models(draw: st.DrawFn, models: tuple[str, ...] = (PER_UNIT, PACKAGE, GRADUATED, VOLUME),
                 bounded: bool = True) -> PriceModel:
    """A valid price of one of `models` (with a minimum and a maximum, if `bounded`)."""
    model = draw(st.sampled_from(models))
    minimum, maximum = minimums_and_maximums(draw) if bounded else (None, None)
    common = {"included_units": draw(includeds), "minimum": minimum, "maximum": maximum}
    if model == PER_UNIT:
        return PriceModel(PER_UNIT, unit_amount=draw(unit_amounts), **common)
    if model == PACKAGE:
        return PriceModel(PACKAGE, unit_amount=draw(unit_amounts), package_size=draw(st.integers(1, 1_000)), **common)
    return PriceModel(model, tiers=draw(tier_lists()), **common)


def slice_of(tiers: tuple[Tier, ...], i: int, start: F, end: F) -> F:
    """The units of (start, end] in tier i: above the previous tier's bound, up to its own."""
    lower = F(0) if i == 0 else tiers[i - 1].up_to
    upper = end if tiers[i].up_to is None else min(tiers[i].up_to, end)
    return max(F(0), upper - max(lower, start))


# --- the properties the issue asks for -------------------------------------------------------------


@FEW
@given(tier_lists(), includeds, quantities)
def test_graduated_is_the_sum_of_its_tiers_each_priced_per_unit_over_its_slice(tiers, included, quantity):
    priced = price(PriceModel(GRADUATED, tiers=tiers, included_units=included), quantity)
    expected = F(0)
    for i, tier in enumerate(tiers):
        units = slice_of(tiers, i, min(included, quantity), quantity)
        if units:
            expected += price(PriceModel(PER_UNIT, unit_amount=tier.unit_amount), units).exact + tier.flat_amount
    assert priced.exact == expected
    assert sum(step.units for step in priced.steps) == priced.billable == max(F(0), quantity - included)


@FEW
@given(tier_lists(flat=False), includeds, quantities, quantities)
def test_graduated_included_units_take_the_start_of_the_tiers(tiers, included, quantity, other):
    """Without flat amounts: the included units cost what the first `included` units would have."""
    free = PriceModel(GRADUATED, tiers=tiers, included_units=included)
    paid = PriceModel(GRADUATED, tiers=tiers)
    assert price(free, quantity).exact == max(F(0), price(paid, quantity).exact - price(paid, included).exact)


@FEW
@given(tier_lists(), includeds, quantities)
def test_volume_prices_every_billable_unit_at_the_tier_of_the_whole_quantity(tiers, included, quantity):
    priced = price(PriceModel(VOLUME, tiers=tiers, included_units=included), quantity)
    # the tier holding the whole quantity, included units counted: lower bound < quantity ≤ up_to
    whole = next(t for i, t in enumerate(tiers)
                 if (i == 0 or tiers[i - 1].up_to < quantity) and (t.up_to is None or quantity <= t.up_to))
    billable = max(F(0), quantity - included)
    assert priced.exact == (billable * whole.unit_amount + whole.flat_amount if billable else 0)
    assert all(step.unit_amount == whole.unit_amount for step in priced.steps)


@FEW
@given(price_models(bounded=False), quantities, st.fractions(min_value=0, max_value=1))
def test_included_units_are_never_billed(model, quantity, share):
    within = model.included_units * share  # anything up to the allowance
    assert price(model, within).exact == 0 and price(model, within).amount == 0
    assert price(model, within).steps == ()
    priced = price(model, quantity)
    assert priced.included + priced.billable == quantity
    assert priced.included == min(quantity, model.included_units)


@FEW
@given(price_models(models=(PER_UNIT, PACKAGE), bounded=False), quantities)
def test_included_units_come_off_the_quantity_for_per_unit_and_package(model, quantity):
    without = PriceModel(model.model, unit_amount=model.unit_amount, package_size=model.package_size)
    assert price(model, quantity).exact == price(without, max(F(0), quantity - model.included_units)).exact


@FEW
@given(price_models(), quantities)
def test_the_total_is_rounded_once_then_clamped(model, quantity):
    priced = price(model, quantity)
    assert priced.exact == sum(step.amount for step in priced.steps)
    rounded = money.round_exact(priced.exact)
    if model.minimum is not None and rounded < model.minimum:
        assert (priced.amount, priced.clamped) == (model.minimum, "minimum")
    elif model.maximum is not None and rounded > model.maximum:
        assert (priced.amount, priced.clamped) == (model.maximum, "maximum")
    else:
        assert (priced.amount, priced.clamped) == (rounded, None)


def test_rounding_once_differs_from_rounding_each_tier():
    # half a cent a unit in each of three tiers: 0.5 + 0.5 + 0.5 = 1.5 cents -> 2; per tier 1 + 1 + 1
    half = F(1, 2)
    tiers = (Tier(F(1), half), Tier(F(2), half), Tier(None, half))
    priced = price(PriceModel(GRADUATED, tiers=tiers), F(3))
    assert [step.amount for step in priced.steps] == [half, half, half]
    assert priced.amount == 2
    assert sum(money.round_exact(step.amount) for step in priced.steps) == 3


@FEW
@given(price_models(models=(PER_UNIT, PACKAGE, GRADUATED)), quantities, quantities)
def test_more_usage_never_costs_less(model, a, b):
    model = PriceModel(model.model, model.unit_amount, model.package_size, model.tiers, model.included_units,
                       model.minimum)  # no maximum: a cap is flat, not decreasing, but keep the claim plain
    low, high = sorted((a, b))
    assert price(model, low).amount <= price(model, high).amount
    assert price(model, low).exact <= price(model, high).exact


def test_volume_pricing_may_cost_less_for_more_as_stripe_does():
    vms = PriceModel(VOLUME, tiers=(Tier(F(10), F(7999)), Tier(None, F(6999))))
    assert price(vms, F(10)).amount == 79990 > price(vms, F(11)).amount == 76989


@FEW
@given(price_models(), quantities)
def test_every_generated_price_is_valid_and_its_steps_bill_only_billable_units(model, quantity):
    assert check(model) == []
    priced = price(model, quantity)
    assert all(step.units > 0 for step in priced.steps)
    assert sum(step.units for step in priced.steps) == priced.billable


# --- package -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("calls", "packages", "amount"), [
    (F(0), None, 0), (F(1), 1, 500), (F(1000), 1, 500), (F(1001), 2, 1000), (F(2500), 3, 1500),
    (F(3000), 3, 1500), (F(1, 2), 1, 500),
])
def test_a_package_price_charges_whole_packages_rounded_up(calls, packages, amount):
    priced = price(PriceModel(PACKAGE, unit_amount=F(500), package_size=1000), calls)
    assert priced.amount == amount
    assert (priced.steps[0].packages if priced.steps else None) == packages


def test_package_included_units_come_off_before_packing():
    priced = price(PriceModel(PACKAGE, unit_amount=F(500), package_size=1000, included_units=F(500)), F(2500))
    assert priced.billable == 2000 and priced.steps[0].packages == 2 and priced.amount == 1000


# --- flat amounts, minimum, maximum ----------------------------------------------------------------


def test_a_graduated_flat_amount_is_charged_only_for_a_tier_with_billable_units():
    tiers = (Tier(F(100), F(0), flat_amount=F(999)), Tier(F(1000), F(5), flat_amount=F(200)), Tier(None, F(3)))
    model = PriceModel(GRADUATED, tiers=tiers, included_units=F(100))
    assert price(model, F(100)).amount == 0  # the first tier is all included: no flat amount
    assert price(model, F(101)).exact == 5 + 200
    assert price(PriceModel(GRADUATED, tiers=tiers), F(1)).exact == 999


def test_a_volume_flat_amount_is_charged_with_any_billable_unit():
    tiers = (Tier(F(10), F(100), flat_amount=F(1000)), Tier(None, F(90), flat_amount=F(500)))
    assert price(PriceModel(VOLUME, tiers=tiers), F(0)).amount == 0
    assert price(PriceModel(VOLUME, tiers=tiers), F(12)).amount == 12 * 90 + 500
    assert price(PriceModel(VOLUME, tiers=tiers, included_units=F(12)), F(12)).amount == 0


def test_the_minimum_applies_even_to_no_usage():
    priced = price(PriceModel(PER_UNIT, unit_amount=F(5), minimum=1000), F(0))
    assert (priced.exact, priced.amount, priced.clamped) == (0, 1000, "minimum")


def test_the_maximum_caps_the_rounded_total():
    priced = price(PriceModel(PER_UNIT, unit_amount=F(5), maximum=5000), F(1340))
    assert (priced.exact, priced.amount, priced.clamped) == (6700, 5000, "maximum")


def test_a_negative_quantity_or_an_invalid_price_is_a_programming_error():
    with pytest.raises(ValueError, match="negative"):
        price(PriceModel(PER_UNIT, unit_amount=F(5)), F(-1))
    with pytest.raises(ValueError, match="tiers"):
        price(PriceModel(GRADUATED), F(1))


# --- check --------------------------------------------------------------------------------------


@FEW
@given(tier_lists(), st.data())
@example(tiers=(Tier(F(10), F(1)), Tier(None, F(1))), data=None).via("equal bounds")
def test_check_refuses_a_bound_not_above_the_previous_one(tiers, data):
    assume(len(tiers) >= 2)
    bounded = len(tiers) - 1
    if data is None:  # the explicit example: the second tier repeats the first bound
        j, bound = 1, tiers[0].up_to
        tiers = (tiers[0], Tier(bound, F(1)), Tier(None, F(1)))
    else:
        assume(bounded >= 2)
        j = data.draw(st.integers(1, bounded - 1))
        bound = data.draw(st.fractions(min_value=F(1, 10), max_value=tiers[j - 1].up_to))
        tiers = (*tiers[:j], Tier(bound, tiers[j].unit_amount), *tiers[j + 1:])
    for model in (GRADUATED, VOLUME):
        problems = check(PriceModel(model, tiers=tiers))
        assert any(field == f"tiers.{j}.up_to" and "overlap or leave a gap" in message for field, message in problems)


@pytest.mark.parametrize(("model", "field", "words"), [
    (PriceModel("tiered"), "model", "Unknown pricing model"),
    (PriceModel(GRADUATED), "tiers", "at least one tier"),
    (PriceModel(VOLUME, tiers=()), "tiers", "at least one tier"),
    (PriceModel(GRADUATED, tiers=(Tier(F(10), F(1)),)), "tiers.0.up_to", "last tier must have no bound"),
    (PriceModel(GRADUATED, tiers=(Tier(None, F(1)), Tier(None, F(2)))), "tiers.0.up_to", "Only the last tier"),
    (PriceModel(GRADUATED, tiers=(Tier(F(0), F(1)), Tier(None, F(2)))), "tiers.0.up_to", "positive"),
    (PriceModel(GRADUATED, tiers=(Tier(F(-5), F(1)), Tier(None, F(2)))), "tiers.0.up_to", "positive"),
    (PriceModel(VOLUME, tiers=(Tier(F(10), F(1)), Tier(F(5), F(1)), Tier(None, F(2)))), "tiers.1.up_to",
     "strictly increase"),
    (PriceModel(VOLUME, tiers=(Tier(10.5, F(1)), Tier(None, F(2)))), "tiers.0.up_to", "not a float"),
    (PriceModel(GRADUATED, tiers=(Tier(None, F(-1)),)), "tiers.0.unit_amount", "negative"),
    (PriceModel(GRADUATED, tiers=(Tier(None, 0.05),)), "tiers.0.unit_amount", "not a float"),
    (PriceModel(GRADUATED, tiers=(Tier(None, F(1), F(-100)),)), "tiers.0.flat_amount", "negative"),
    (PriceModel(GRADUATED, unit_amount=F(5), tiers=(Tier(None, F(1)),)), "unit_amount", "on each tier"),
    (PriceModel(PER_UNIT, unit_amount=F(5), tiers=(Tier(None, F(1)),)), "tiers", "no tiers"),
    (PriceModel(PACKAGE, unit_amount=F(5), tiers=(Tier(None, F(1)),)), "tiers", "no tiers"),
    (PriceModel(PER_UNIT, unit_amount=F(-5)), "unit_amount", "negative"),
    (PriceModel(PER_UNIT, unit_amount=0.05), "unit_amount", "not a float"),  # type: ignore[arg-type]
    (PriceModel(PACKAGE, unit_amount=F(5), package_size=0), "package_size", "at least 1"),
    (PriceModel(PACKAGE, unit_amount=F(5), package_size=2.5), "package_size", "at least 1"),  # type: ignore
    (PriceModel(PER_UNIT, unit_amount=F(5), package_size=100), "package_size", "Only package prices"),
    (PriceModel(PER_UNIT, unit_amount=F(5), included_units=F(-1)), "included_units", "negative"),
    (PriceModel(PER_UNIT, unit_amount=F(5), minimum=-1), "minimum", "non-negative"),
    (PriceModel(PER_UNIT, unit_amount=F(5), maximum=-1), "maximum", "non-negative"),
    (PriceModel(PER_UNIT, unit_amount=F(5), minimum=5000, maximum=1000), "minimum", "must not exceed"),
])
def test_check_names_the_field_of_each_problem(model, field, words):
    problems = check(model)
    assert any(f == field and words in message for f, message in problems), problems


def test_check_reports_every_problem_at_once():
    tiers = (Tier(F(10), F(-1)), Tier(F(10), F(1)), Tier(F(20), F(1)))
    fields = [field for field, _ in check(PriceModel(VOLUME, tiers=tiers, minimum=9, maximum=1))]
    assert fields == ["tiers.0.unit_amount", "tiers.1.up_to", "tiers.2.up_to", "minimum"]


# --- the examples, each with its invoice line ----------------------------------------------


def line(model: PriceModel, quantity: F, name: str, unit: str, currency: str = "EUR", **options: object) -> str:
    return describe(price(model, quantity), name, unit, currency, **options)  # type: ignore[arg-type]


BANDWIDTH_TIERS = (Tier(F(1000), F(5)), Tier(None, F(3)))  # EUR 0.05 up to 1,000 GB in all, then EUR 0.03


def test_platforma_tiers_with_100_gb_included():
    model = PriceModel(GRADUATED, tiers=BANDWIDTH_TIERS, included_units=F(100))
    assert price(model, F(1340)).amount == 5520
    assert line(model, F(1340), "Bandwidth", "GB") == \
        "Bandwidth — 1,340 GB: 100 GB included, 900 × €0.05, 340 × €0.03 = €55.20"


def test_platforma_tiers_as_configured_a_free_first_tier_costs_the_same():
    # PLATFORMA's configuration writes the allowance as a first tier at 0: the same amount
    zero_first = PriceModel(GRADUATED, tiers=(Tier(F(100), F(0)), *BANDWIDTH_TIERS))
    included = PriceModel(GRADUATED, tiers=BANDWIDTH_TIERS, included_units=F(100))
    for gb in (F(0), F(50), F(100), F(101), F(999), F(1000), F(1340), F(123456, 100)):
        assert price(zero_first, gb).amount == price(included, gb).amount
    assert line(zero_first, F(1340), "Bandwidth", "GB") == \
        "Bandwidth — 1,340 GB: 100 × €0.00, 900 × €0.05, 340 × €0.03 = €55.20"


def test_platforma_usage_based_five_cents_a_gb():
    model = PriceModel(PER_UNIT, unit_amount=F(5))
    assert line(model, F(1340), "Bandwidth", "GB") == "Bandwidth — 1,340 GB × €0.05 = €67.00"


def test_platforma_hybrid_five_cents_a_gb_over_100_gb():
    # the EUR 49.99 a month is the plan's recurring fee (plans), this is its usage component
    model = PriceModel(PER_UNIT, unit_amount=F(5), included_units=F(100))
    assert line(model, F(1340), "Bandwidth", "GB") == "Bandwidth — 1,340 GB: 100 GB included, 1,240 × €0.05 = €62.00"
    assert line(model, F(80), "Bandwidth", "GB") == "Bandwidth — 80 GB: 80 GB included = €0.00"


VM_TIERS = (Tier(F(10), F(7999)), Tier(None, F(6999)))  # 1–10 VMs at EUR 79.99, 11+ at EUR 69.99


def test_platforma_vms_volume_all_at_the_tier_of_the_count():
    model = PriceModel(VOLUME, tiers=VM_TIERS)
    assert line(model, F(12), "Virtual machines", "VMs") == "Virtual machines — 12 VMs × €69.99 = €839.88"
    assert line(model, F(10), "Virtual machines", "VMs") == "Virtual machines — 10 VMs × €79.99 = €799.90"


def test_platforma_vms_graduated_each_vm_at_its_own_tier():
    model = PriceModel(GRADUATED, tiers=VM_TIERS)
    assert line(model, F(12), "Virtual machines", "VMs") == \
        "Virtual machines — 12 VMs: 10 × €79.99, 2 × €69.99 = €939.88"


def test_omnistrate_per_dimension_prices_at_hourly_maxima():
    # a month of hourly maxima summed: 4 cores, 16 GiB (resized once), 100 GiB of storage
    cpu = PriceModel(PER_UNIT, unit_amount=F(4))  # USD 0.04 a core-hour
    memory = PriceModel(PER_UNIT, unit_amount=F(1, 2))  # USD 0.005 a GiB-hour
    storage = PriceModel(PER_UNIT, unit_amount=F(1, 50))  # USD 0.0002 a GiB-hour
    assert line(cpu, F(2880), "CPU", "core-hours", "USD") == "CPU — 2,880 core-hours × $0.04 = $115.20"
    assert line(memory, F(4608003, 400), "Memory", "GiB-hours", "USD", decimals=2) == \
        "Memory — 11,520.01 GiB-hours × $0.005 = $57.60"
    assert line(storage, F(72000), "Storage", "GiB-hours", "USD") == "Storage — 72,000 GiB-hours × $0.0002 = $14.40"


def test_a_twentieth_of_a_cent_a_call_is_rounded_once_on_the_total():
    model = PriceModel(PER_UNIT, unit_amount=F(1, 20))  # EUR 0.0005
    priced = price(model, F(12345))
    assert (priced.exact, priced.amount) == (F(61725, 100), 617)  # 617.25 cents
    assert describe(priced, "API calls", "calls", "EUR") == "API calls — 12,345 calls × €0.0005 = €6.17"


def test_package_line():
    model = PriceModel(PACKAGE, unit_amount=F(500), package_size=1000)
    assert line(model, F(2500), "API calls", "calls") == "API calls — 2,500 calls: 3 × 1,000 calls at €5.00 = €15.00"


def test_minimum_and_maximum_lines():
    minimum = PriceModel(PER_UNIT, unit_amount=F(1, 20), minimum=1000)
    assert line(minimum, F(12345), "API calls", "calls") == \
        "API calls — 12,345 calls × €0.0005 = €6.17, minimum €10.00"
    assert line(minimum, F(0), "API calls", "calls") == "API calls — 0 calls = €0.00, minimum €10.00"
    maximum = PriceModel(PER_UNIT, unit_amount=F(5), maximum=5000)
    assert line(maximum, F(1340), "Bandwidth", "GB") == "Bandwidth — 1,340 GB × €0.05 = €67.00, maximum €50.00"


def test_flat_amounts_in_the_line():
    volume = PriceModel(VOLUME, tiers=(Tier(F(10), F(7999)), Tier(None, F(6999), flat_amount=F(1000))))
    assert line(volume, F(12), "Virtual machines", "VMs") == "Virtual machines — 12 VMs × €69.99 + €10.00 = €849.88"


def test_the_line_follows_the_locale():
    model = PriceModel(GRADUATED, tiers=BANDWIDTH_TIERS, included_units=F(100))
    assert line(model, F(1340), "Bandbreite", "GB", locale="de") == \
        "Bandbreite — 1.340 GB: 100 GB included, 900 × 0,05\xa0€, 340 × 0,03\xa0€ = 55,20\xa0€"
