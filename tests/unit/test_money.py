"""Money: decimal strings <-> integer minor units, the one rounding rule, and allocation."""
from __future__ import annotations

import dataclasses
from decimal import Decimal
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator import money
from aggregator.money import (
    MAX_MAJOR,
    Money,
    MoneyError,
    allocate,
    apply_rate,
    format_amount,
    format_rate,
    parse_amount,
    parse_rate,
    round_minor,
)

#: Keeps the unit suite fast; deadline off because the first CLDR lookup loads Babel's data.
FEW = settings(max_examples=150, deadline=None)

#: Tender currencies with each ISO 4217 exponent: 0 (JPY, KRW, CLP), 2 (USD, EUR, ...), 3 (KWD, BHD, ...).
TENDER_SAMPLE = ["USD", "EUR", "GBP", "AUD", "CHF", "INR", "JPY", "KRW", "CLP", "KWD", "BHD", "TND", "OMR"]


def minor_amounts_in(currency: str) -> st.SearchStrategy[int]:
    bound = MAX_MAJOR * 10 ** money.exponent(currency)
    return st.integers(min_value=-bound, max_value=bound)


currency_and_minor = st.sampled_from(TENDER_SAMPLE).flatmap(
    lambda c: st.tuples(st.just(c), minor_amounts_in(c))
)


# --- currencies --------------------------------------------------------------------------------


@pytest.mark.parametrize(("currency", "places"), [
    ("USD", 2), ("EUR", 2), ("AUD", 2), ("JPY", 0), ("KRW", 0), ("KWD", 3), ("BHD", 3),
    # ISO 4217's minor units where CLDR's everyday digits say 0
    ("IQD", 3), ("LAK", 2), ("RSD", 2), ("IRR", 2), ("MGA", 2),
])
def test_exponent_is_the_number_of_digits_in_the_minor_unit(currency, places):
    assert money.exponent(currency) == places


def test_amounts_follow_iso_4217_where_cldr_differs():
    assert parse_amount("1.500", "IQD") == 1500 and format_amount(1500, "IQD") == "1.500"
    assert parse_amount("1.50", "LAK") == 150
    with pytest.raises(MoneyError):
        parse_amount("1.0001", "IQD")


def test_documents_show_exactly_the_iso_decimals():
    assert money.display(1500, "IQD", "en") == "IQD1.500"
    assert money.display(150, "LAK", "en") == "LAK1.50"


def test_a_currency_iso_4217_has_withdrawn_is_refused():
    assert not money.is_currency("BGN")  # Bulgaria adopted the euro on 1 January 2026


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "KWD", "AUD"])
def test_a_tender_currency_code_is_accepted_as_is(code):
    assert money.is_currency(code)
    assert money.check_currency(code) == code


@pytest.mark.parametrize("code", [
    pytest.param("ZZZ", id="not-a-code"),
    pytest.param("usd", id="lower-case"),
    pytest.param("Usd", id="mixed-case"),
    pytest.param("DEM", id="historic-deutsche-mark"),
    pytest.param("FRF", id="historic-french-franc"),
    pytest.param("HRK", id="historic-kuna"),
    pytest.param("XXX", id="no-currency"),
    pytest.param("XTS", id="testing-code"),
    pytest.param("XAU", id="gold"),
    pytest.param("XDR", id="special-drawing-right"),
    pytest.param("US", id="two-letters"),
    pytest.param("USDX", id="four-letters"),
    pytest.param(" USD", id="leading-space"),
    pytest.param("USD\n", id="trailing-newline"),
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
    pytest.param(840, id="numeric-code"),
])
def test_a_code_that_is_not_a_tender_currency_today_is_refused(code):
    assert not money.is_currency(code)
    with pytest.raises(MoneyError, match="Unknown currency code"):
        money.check_currency(code)


def test_every_operation_that_needs_an_exponent_refuses_an_unknown_currency():
    for operation in (lambda: money.exponent("ZZZ"), lambda: parse_amount("1.00", "ZZZ"),
                      lambda: format_amount(100, "ZZZ"), lambda: money.to_decimal(100, "ZZZ")):
        with pytest.raises(MoneyError, match="Unknown currency code"):
            operation()


# --- parsing and formatting amounts ------------------------------------------------------------


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("12.50", "USD", 1250),
    ("12.5", "USD", 1250),
    ("12", "USD", 1200),
    ("0.01", "USD", 1),
    ("0", "USD", 0),
    ("0.00", "USD", 0),
    ("19.99", "USD", 1999),
    ("1500", "JPY", 1500),
    ("0", "JPY", 0),
    ("1.234", "KWD", 1234),
    ("1.2", "KWD", 1200),
    ("0.001", "KWD", 1),
    ("7", "KWD", 7000),
])
def test_a_decimal_string_becomes_integer_minor_units_of_its_currency(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("-12.50", "USD", -1250),
    ("-0.01", "USD", -1),
    ("-1500", "JPY", -1500),
    ("-0.001", "KWD", -1),
])
def test_negative_amounts_are_accepted_for_credits(text, currency, minor):
    assert parse_amount(text, currency) == minor


def test_negative_zero_is_plain_zero():
    assert parse_amount("-0", "USD") == 0
    assert parse_amount("-0.00", "USD") == 0


@pytest.mark.parametrize(("minor", "currency", "text"), [
    (1250, "USD", "12.50"),
    (1, "USD", "0.01"),
    (0, "USD", "0.00"),
    (-5, "USD", "-0.05"),
    (-1250, "USD", "-12.50"),
    (1500, "JPY", "1500"),
    (0, "JPY", "0"),
    (-7, "JPY", "-7"),
    (1234, "KWD", "1.234"),
    (1, "KWD", "0.001"),
    (7000, "KWD", "7.000"),
    (MAX_MAJOR * 1000, "KWD", "1000000000000.000"),
])
def test_minor_units_format_as_the_apis_decimal_string(minor, currency, text):
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("number", [
    pytest.param(12, id="int"),
    pytest.param(12.5, id="float"),
    pytest.param(Decimal("12.50"), id="decimal"),
    pytest.param(None, id="none"),
    pytest.param(True, id="bool"),
    pytest.param(b"12.50", id="bytes"),
])
def test_an_amount_that_is_not_a_string_is_refused(number):
    with pytest.raises(MoneyError, match="not numbers"):
        parse_amount(number, "USD")


@pytest.mark.parametrize(("text", "currency"), [
    ("1.005", "USD"),
    ("0.001", "USD"),
    ("1.50", "JPY"),
    ("1.5", "JPY"),
    ("1.01", "JPY"),
    ("1.2345", "KWD"),
    ("19.9901", "USD"),
])
def test_amount_with_more_decimals_than_the_currency_is_refused(text, currency):
    with pytest.raises(MoneyError, match="decimal place"):
        parse_amount(text, currency)


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("19.990", "USD", 1999),
    ("19.9900000", "USD", 1999),
    ("1.0", "JPY", 1),
    ("1.00", "JPY", 1),
    ("1.2340", "KWD", 1234),
    ("-0.010", "USD", -1),
])
def test_trailing_zeros_beyond_the_currencys_decimals_are_exact_and_accepted(text, currency, minor):
    assert parse_amount(text, currency) == minor


def test_the_refusal_says_how_many_decimals_the_currency_has():
    with pytest.raises(MoneyError, match="^USD amounts have at most 2 decimal places"):
        parse_amount("1.005", "USD")
    with pytest.raises(MoneyError, match="^JPY amounts have no decimal places"):
        parse_amount("1.5", "JPY")
    with pytest.raises(MoneyError, match="^KWD amounts have at most 3 decimal places"):
        parse_amount("1.0005", "KWD")


@pytest.mark.parametrize("text", [
    pytest.param("1e3", id="exponent"),
    pytest.param("1E3", id="upper-exponent"),
    pytest.param("1.5e-1", id="fraction-with-exponent"),
    pytest.param(" 1.00", id="leading-space"),
    pytest.param("1.00 ", id="trailing-space"),
    pytest.param("\t1.00", id="leading-tab"),
    pytest.param("+1", id="plus-sign"),
    pytest.param("--1", id="double-minus"),
    pytest.param("01.00", id="leading-zero"),
    pytest.param("00", id="double-zero"),
    pytest.param("-01", id="negative-leading-zero"),
    pytest.param("NaN", id="nan"),
    pytest.param("nan", id="lower-nan"),
    pytest.param("sNaN", id="signalling-nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("-Infinity", id="negative-infinity"),
    pytest.param("inf", id="inf"),
    pytest.param("-", id="lone-minus"),
    pytest.param("", id="empty"),
    pytest.param("1.", id="trailing-point"),
    pytest.param(".5", id="leading-point"),
    pytest.param(".", id="lone-point"),
    pytest.param("1,00", id="decimal-comma"),
    pytest.param("1,000.00", id="thousands-separator"),
    pytest.param("1_000", id="underscore"),
    pytest.param("0x10", id="hexadecimal"),
    pytest.param("١٢", id="arabic-indic-digits"),
    pytest.param("１２", id="fullwidth-digits"),
    pytest.param("$12", id="currency-symbol"),
    pytest.param("12 USD", id="code-suffix"),
])
def test_anything_but_a_plain_decimal_string_is_refused(text):
    with pytest.raises(MoneyError, match="is not a decimal amount"):
        parse_amount(text, "USD")


def test_an_amount_with_a_trailing_newline_is_refused():
    with pytest.raises(MoneyError):
        parse_amount("1.00\n", "USD")


@pytest.mark.parametrize("text", [
    pytest.param("1" * 41, id="41-digits"),
    pytest.param("0." + "0" * 39, id="41-chars-of-zero"),
    pytest.param("9" * 10_000, id="ten-thousand-digits"),
])
def test_a_string_longer_than_40_characters_is_refused_without_echoing_it_whole(text):
    with pytest.raises(MoneyError, match="is not a decimal amount") as refused:
        parse_amount(text, "USD")
    assert len(str(refused.value)) < 100


@pytest.mark.parametrize(("text", "currency", "minor"), [
    ("1000000000000", "USD", MAX_MAJOR * 100),
    ("1000000000000.00", "USD", MAX_MAJOR * 100),
    ("-1000000000000", "USD", -MAX_MAJOR * 100),
    ("1000000000000", "JPY", MAX_MAJOR),
    ("1000000000000.000", "KWD", MAX_MAJOR * 1000),
    ("999999999999.99", "USD", MAX_MAJOR * 100 - 1),
])
def test_the_largest_magnitude_is_max_major_inclusive(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(("text", "currency"), [
    ("1000000000000.01", "USD"),
    ("-1000000000000.01", "USD"),
    ("1000000000001", "JPY"),
    ("1000000000000.001", "KWD"),
    ("10000000000000", "USD"),
    ("1" + "0" * 25, "USD"),
    ("1" + "0" * 24, "KWD"),
    ("1" + "0" * 27, "JPY"),
])
def test_a_magnitude_above_max_major_is_refused(text, currency):
    with pytest.raises(MoneyError, match="must not exceed"):
        parse_amount(text, currency)


@pytest.mark.parametrize(("text", "currency"), [
    ("1" + "0" * 26, "USD"),
    ("1" + "0" * 25, "KWD"),
    ("1" + "0" * 28, "JPY"),
    ("99999999999999999999999999999999999999", "USD"),
    ("-" + "9" * 39, "USD"),
])
def test_a_magnitude_far_above_max_major_is_refused_as_a_money_error(text, currency):
    with pytest.raises(MoneyError, match="must not exceed"):
        parse_amount(text, currency)


@FEW
@given(st.sampled_from(TENDER_SAMPLE),
       st.from_regex(r"\A-?[1-9][0-9]{24,38}(\.[0-9]{1,3})?\Z").filter(lambda t: len(t) <= 40))
def test_every_well_formed_amount_of_up_to_40_characters_parses_or_is_a_money_error(currency, text):
    try:
        parse_amount(text, currency)
    except MoneyError:
        pass


@FEW
@given(st.sampled_from(TENDER_SAMPLE), st.text(alphabet="0123456789.-+eE \t", max_size=24))
def test_any_short_text_is_either_an_amount_or_a_money_error(currency, text):
    try:
        minor = parse_amount(text, currency)
    except MoneyError:
        return
    assert isinstance(minor, int)
    assert abs(minor) <= MAX_MAJOR * 10 ** money.exponent(currency)


def _parse_by_decimal(text: str, currency: str) -> int | None:
    """parse_amount's definition, in decimal arithmetic: the minor units, or None if refused."""
    exp = money.exponent(currency)
    value = Decimal(text)
    if abs(value) > MAX_MAJOR or value != value.quantize(Decimal(1).scaleb(-exp)):
        return None
    return int(value.scaleb(exp))


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(TENDER_SAMPLE),
       st.from_regex(r"\A-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,6})?\Z")
       | st.from_regex(r"\A-?1000000000000(\.0{0,3}[0-9])?\Z"))
@example("USD", "1000000000000.00")
@example("USD", "1000000000000.001")
@example("JPY", "-0.0")
@example("KWD", "0.1230")
def test_parsing_in_integers_is_exactly_the_decimal_definition(currency, text):
    expected = _parse_by_decimal(text, currency)
    if expected is None:
        with pytest.raises(MoneyError):
            parse_amount(text, currency)
    else:
        assert parse_amount(text, currency) == expected


@FEW
@given(currency_and_minor)
@example(("USD", -5))
@example(("KWD", -1))
@example(("JPY", -MAX_MAJOR))
def test_formatting_in_integers_is_exactly_the_decimal_definition(case):
    currency, minor = case
    exp = money.exponent(currency)
    assert format_amount(minor, currency) == str(Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp)))


@FEW
@given(currency_and_minor)
@example(("USD", 0))
@example(("KWD", MAX_MAJOR * 1000))
@example(("JPY", -MAX_MAJOR))
def test_parsing_a_formatted_amount_gives_back_the_same_minor_units(case):
    currency, minor = case
    assert parse_amount(format_amount(minor, currency), currency) == minor


@FEW
@given(currency_and_minor)
def test_a_formatted_amount_has_exactly_as_many_decimals_as_the_currency(case):
    currency, minor = case
    text = format_amount(minor, currency)
    places = money.exponent(currency)
    whole, point, fraction = text.lstrip("-").partition(".")
    assert whole.isdigit() and (whole == "0" or not whole.startswith("0"))
    if places == 0:
        assert point == ""
    else:
        assert point == "." and len(fraction) == places and fraction.isdigit()
    assert text.startswith("-") == (minor < 0)


@FEW
@given(currency_and_minor)
def test_trailing_zeros_do_not_change_the_parsed_amount(case):
    currency, minor = case
    canonical = format_amount(minor, currency)
    shortened = canonical.rstrip("0").rstrip(".") if "." in canonical else canonical
    assert parse_amount(shortened, currency) == minor


@FEW
@given(currency_and_minor)
def test_to_decimal_is_the_exact_value_in_major_units(case):
    currency, minor = case
    assert money.to_decimal(minor, currency) == Decimal(minor) / 10 ** money.exponent(currency)


@pytest.mark.parametrize(("minor", "currency", "locale", "shown"), [
    (123450, "USD", "en_US", "$1,234.50"),
    (1235, "JPY", "en", "¥1,235"),
])
def test_display_formats_for_people_with_the_locales_conventions(minor, currency, locale, shown):
    assert money.display(minor, currency, locale) == shown


# --- the one rounding rule ---------------------------------------------------------------------


@pytest.mark.parametrize(("value", "rounded"), [
    ("2.5", 3), ("-2.5", -3),
    ("0.5", 1), ("-0.5", -1),
    ("1.5", 2), ("-1.5", -2),
    ("2.4999", 2), ("-2.4999", -2),
    ("2.5001", 3), ("-2.5001", -3),
    ("0.4999999999", 0), ("-0.4999999999", 0),
    ("7", 7), ("-7", -7), ("0", 0),
])
def test_round_minor_rounds_halves_away_from_zero(value, rounded):
    assert round_minor(Decimal(value)) == rounded


decimals = st.decimals(min_value=-10**15, max_value=10**15, places=4, allow_nan=False, allow_infinity=False)


@FEW
@given(decimals)
def test_round_minor_is_never_more_than_half_a_unit_off(value):
    assert abs(round_minor(value) - value) <= Decimal("0.5")


@FEW
@given(decimals)
def test_round_minor_is_symmetric_about_zero(value):
    assert round_minor(-value) == -round_minor(value)


@FEW
@given(st.integers(min_value=-10**12, max_value=10**12))
def test_an_exact_half_always_rounds_away_from_zero(n):
    half = Decimal(n) + Decimal("0.5") if n >= 0 else Decimal(n) - Decimal("0.5")
    assert round_minor(half) == (n + 1 if n >= 0 else n - 1)


@FEW
@given(st.decimals(min_value=-10**15, max_value=10**15, places=8, allow_nan=False, allow_infinity=False))
@example(Decimal("2.5")).via("a half")
@example(Decimal("-2.5")).via("a negative half")
@example(Decimal("-0.4999999")).via("just under a half")
def test_round_exact_agrees_with_round_minor_on_decimals(value):
    assert money.round_exact(Fraction(value)) == round_minor(value)


@FEW
@given(st.fractions(min_value=-10**9, max_value=10**9, max_denominator=10**6))
def test_round_exact_is_the_nearest_whole_with_halves_away_from_zero(value):
    rounded = money.round_exact(value)
    assert abs(rounded - value) <= Fraction(1, 2)
    if abs(rounded - value) == Fraction(1, 2):
        assert abs(rounded) > abs(value)
    assert money.round_exact(-value) == -rounded


@pytest.mark.parametrize(("minor", "currency", "locale", "text"), [
    (Fraction(1, 20), "EUR", "en", "€0.0005"),       # EUR 0.0005: a twentieth of a cent
    (Fraction(5), "EUR", "en", "€0.05"),             # never fewer decimals than the currency's
    (Fraction(7999), "EUR", "de", "79,99\xa0€"),
    (Fraction(1, 2), "JPY", "en", "¥0.5"),
    (Fraction(1, 3), "USD", "en", "$0.003333"),      # beyond 6 decimals: rounded for display
    (Fraction(123456789, 10), "USD", "en", "$123,456.789"),
    (Fraction(1, 8), "KWD", "en", "KWD0.000125"),
])
def test_display_precise_shows_every_decimal_a_price_has(minor, currency, locale, text):
    assert money.display_precise(minor, currency, locale) == text


def test_display_precise_agrees_with_display_on_whole_minor_units():
    for minor, currency in ((123456, "EUR"), (0, "USD"), (1235, "JPY"), (1235, "KWD")):
        assert money.display_precise(Fraction(minor), currency) == money.display(minor, currency)


@pytest.mark.parametrize(("value", "locale", "decimals", "text"), [
    (Fraction(1340), "en", 0, "1,340"),
    (Fraction(1340), "de", 0, "1.340"),
    (Fraction(123456789, 1000), "en", 2, "123,456.79"),   # rounded for display only
    (Fraction(5, 2), "en", 0, "3"),
    (Fraction(5, 2), "en", 3, "2.5"),                    # at most `decimals`: no trailing zeros
    (Fraction(0), "en", 2, "0"),
])
def test_display_quantity_groups_and_rounds_for_display(value, locale, decimals, text):
    assert money.display_quantity(value, locale, decimals) == text


@pytest.mark.parametrize(("minor", "rate", "result"), [
    (1999, "0.3", 600),      # 599.7
    (1000, "0.3", 300),
    (5, "0.5", 3),           # 2.5 rounds up
    (-5, "0.5", -3),         # -2.5 rounds away from zero
    (3, "0.5", 2),           # 1.5
    (1, "0.499999", 0),
    (10000, "0.125", 1250),
    (1, "0.125", 0),
    (4, "0.125", 1),         # 0.5
    (123456, "1", 123456),
    (123456, "0", 0),
    (-123456, "0.1", -12346),  # -12345.6
])
def test_apply_rate_multiplies_and_rounds_by_the_one_rule(minor, rate, result):
    assert apply_rate(minor, Decimal(rate)) == result


@FEW
@given(st.integers(min_value=-10**15, max_value=10**15),
       st.decimals(min_value=0, max_value=1, places=6, allow_nan=False, allow_infinity=False))
def test_apply_rate_is_within_half_a_unit_of_the_exact_product(minor, rate):
    exact = Fraction(minor) * Fraction(rate)
    assert abs(apply_rate(minor, rate) - exact) <= Fraction(1, 2)


@FEW
@given(st.integers(min_value=-10**15, max_value=10**15))
def test_a_rate_of_one_keeps_the_amount_and_zero_clears_it(minor):
    assert apply_rate(minor, Decimal(1)) == minor
    assert apply_rate(minor, Decimal(0)) == 0


# --- allocation --------------------------------------------------------------------------------


@pytest.mark.parametrize(("minor", "weights", "parts"), [
    (100, [1, 1, 1], [34, 33, 33]),
    (-100, [1, 1, 1], [-34, -33, -33]),
    (1, [1, 1, 1], [1, 0, 0]),
    (2, [1, 1, 1], [1, 1, 0]),
    (-1, [1, 1], [-1, 0]),
    (5, [1, 3], [1, 4]),          # 1.25 / 3.75: the larger remainder gets the unit
    (5, [3, 1], [4, 1]),
    (10, [3, 7], [3, 7]),
    (7, [0, 1], [0, 7]),
    (0, [2, 5], [0, 0]),
    (1000, [1], [1000]),
    (1, [1, 2, 1], [0, 1, 0]),    # remainders .25/.5/.25: the middle one wins
    (3, [1, 1, 1, 1], [1, 1, 1, 0]),
])
def test_allocate_splits_in_proportion_and_gives_leftover_units_by_largest_remainder(minor, weights, parts):
    assert allocate(minor, weights) == parts


def test_allocate_gives_tied_leftover_units_to_the_earliest_weights():
    assert allocate(2, [1, 1, 1, 1]) == [1, 1, 0, 0]
    assert allocate(-2, [1, 1, 1, 1]) == [-1, -1, 0, 0]


@pytest.mark.parametrize("weights", [
    pytest.param([], id="no-weights"),
    pytest.param([0, 0], id="zero-sum"),
    pytest.param([1, -1, 1], id="negative-weight"),
])
def test_allocate_refuses_weights_that_define_no_proportion(weights):
    with pytest.raises(ValueError):
        allocate(100, weights)


allocations = st.tuples(
    st.integers(min_value=-10**15, max_value=10**15),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=10).filter(lambda w: sum(w) > 0),
)


@FEW
@given(allocations)
def test_allocated_parts_always_sum_exactly_to_the_amount(case):
    minor, weights = case
    parts = allocate(minor, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == minor


@FEW
@given(allocations)
def test_each_allocated_part_is_its_exact_share_rounded_down_or_up(case):
    minor, weights = case
    total = sum(weights)
    for part, weight in zip(allocate(minor, weights), weights):
        share = Fraction(minor * weight, total)
        assert part in (floor(share), ceil(share))
        assert abs(part - share) < 1


@FEW
@given(allocations)
def test_allocated_parts_carry_the_sign_of_the_amount_and_mirror_it(case):
    minor, weights = case
    parts = allocate(minor, weights)
    assert all(p >= 0 for p in parts) if minor >= 0 else all(p <= 0 for p in parts)
    assert allocate(-minor, weights) == [-p for p in parts]


@FEW
@given(allocations)
def test_a_zero_weight_gets_nothing(case):
    minor, weights = case
    for part, weight in zip(allocate(minor, weights), weights):
        if weight == 0:
            assert part == 0


# --- rates -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    ("0.3", "0.3"),
    ("0.30", "0.3"),
    ("0.300000", "0.3"),
    ("1", "1"),
    ("1.0", "1"),
    ("1.000000", "1"),
    ("0", "0"),
    ("0.0", "0"),
    ("0.000000", "0"),
    ("0.000001", "0.000001"),
    ("0.125", "0.125"),
])
def test_a_rate_is_kept_as_its_canonical_string(text, canonical):
    assert format_rate(parse_rate(text)) == canonical


def test_a_parsed_rate_is_the_exact_decimal():
    assert parse_rate("0.30") == Decimal("0.3")
    assert parse_rate("0.000001") == Decimal("0.000001")


@pytest.mark.parametrize("text", [
    pytest.param("1.5", id="above-one"),
    pytest.param("1.000001", id="just-above-one"),
    pytest.param("2", id="two"),
])
def test_a_rate_above_the_maximum_is_refused(text):
    with pytest.raises(MoneyError, match="between 0 and 1"):
        parse_rate(text)


def test_the_maximum_can_be_raised_or_lifted():
    assert parse_rate("1.5", maximum=Decimal(2)) == Decimal("1.5")
    assert format_rate(parse_rate("100", maximum=None)) == "100"
    with pytest.raises(MoneyError, match="between 0 and 2"):
        parse_rate("2.5", maximum=Decimal(2))


@pytest.mark.parametrize("text", ["0.1234567", "0.0000001", "1.0000000"])
def test_a_rate_with_more_than_six_decimal_places_is_refused(text):
    with pytest.raises(MoneyError, match="at most 6 decimal places"):
        parse_rate(text)


def test_the_number_of_rate_places_can_be_narrowed():
    assert parse_rate("0.25", places=2) == Decimal("0.25")
    with pytest.raises(MoneyError, match="at most 2 decimal places"):
        parse_rate("0.125", places=2)


@pytest.mark.parametrize("text", [
    pytest.param("-0.1", id="negative"),
    pytest.param("-0", id="negative-zero"),
    pytest.param("1e-1", id="exponent"),
    pytest.param(".3", id="leading-point"),
    pytest.param("0.", id="trailing-point"),
    pytest.param("00.3", id="leading-zero"),
    pytest.param(" 0.3", id="leading-space"),
    pytest.param("+0.3", id="plus-sign"),
    pytest.param("30%", id="percent"),
    pytest.param("NaN", id="nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("", id="empty"),
    pytest.param("0." + "0" * 40, id="too-long"),
])
def test_a_rate_that_is_not_a_plain_non_negative_decimal_string_is_refused(text):
    with pytest.raises(MoneyError, match="is not a decimal rate"):
        parse_rate(text)


@pytest.mark.parametrize("number", [
    pytest.param(0.3, id="float"),
    pytest.param(1, id="int"),
    pytest.param(Decimal("0.3"), id="decimal"),
    pytest.param(None, id="none"),
    pytest.param(True, id="bool"),
])
def test_a_rate_that_is_not_a_string_is_refused(number):
    with pytest.raises(MoneyError, match="not numbers"):
        parse_rate(number)


def test_a_rate_with_a_trailing_newline_is_refused():
    with pytest.raises(MoneyError):
        parse_rate("0.3\n")


rates = st.decimals(min_value=0, max_value=1, places=6, allow_nan=False, allow_infinity=False)


@FEW
@given(rates)
def test_a_formatted_rate_parses_back_to_the_same_value_and_string(rate):
    text = format_rate(rate)
    assert parse_rate(text) == rate
    assert format_rate(parse_rate(text)) == text


@FEW
@given(st.decimals(min_value=0, max_value=10**6, places=6, allow_nan=False, allow_infinity=False))
def test_a_formatted_rate_has_no_exponent_and_no_trailing_zeros(rate):
    text = format_rate(rate)
    assert "E" not in text.upper()
    assert not text.endswith(".")
    if "." in text:
        assert not text.endswith("0")
    assert Decimal(text) == rate


# --- the Money value ---------------------------------------------------------------------------


def test_money_of_one_currency_adds_up():
    assert Money(1250, "USD") + Money(-250, "USD") == Money(1000, "USD")


def test_negating_money_flips_the_sign_and_keeps_the_currency():
    assert -Money(1250, "USD") == Money(-1250, "USD")
    assert -Money(0, "JPY") == Money(0, "JPY")


def test_adding_money_in_different_currencies_is_refused():
    with pytest.raises(MoneyError, match="Cannot add EUR to USD"):
        Money(100, "USD") + Money(100, "EUR")


def test_the_total_of_nothing_is_zero_in_the_given_currency():
    assert Money.total([], "AUD") == Money.zero("AUD") == Money(0, "AUD")


def test_the_total_adds_every_amount():
    amounts = [Money(100, "USD"), Money(250, "USD"), Money(-50, "USD")]
    assert Money.total(amounts, "USD") == Money(300, "USD")


def test_the_total_refuses_an_amount_in_another_currency():
    with pytest.raises(MoneyError):
        Money.total([Money(100, "USD"), Money(100, "EUR")], "USD")
    with pytest.raises(MoneyError):
        Money.total([Money(100, "USD")], "EUR")


@FEW
@given(st.lists(st.integers(min_value=-10**15, max_value=10**15), max_size=20))
def test_the_total_is_the_sum_of_the_minor_units(minors):
    assert Money.total([Money(m, "KWD") for m in minors], "KWD") == Money(sum(minors), "KWD")


def test_money_reads_as_the_api_amount_and_its_code():
    assert str(Money(1250, "USD")) == "12.50 USD"
    assert str(Money(-1500, "JPY")) == "-1500 JPY"
    assert str(Money(1, "KWD")) == "0.001 KWD"


def test_money_is_an_immutable_value():
    amount = Money(100, "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        amount.minor = 200  # type: ignore[misc]
    assert amount == Money(100, "USD")
    assert len({amount, Money(100, "USD"), Money(100, "EUR")}) == 2


@given(rates=st.lists(st.decimals(min_value=0, max_value=1, places=6, allow_nan=False), min_size=1, max_size=4),
       amounts=st.lists(st.integers(1, 10**15), min_size=1, max_size=20), negative=st.booleans())
def test_a_rate_applied_to_many_amounts_grouped_by_remainder_is_the_sum_of_each(rates, amounts, negative):
    """What the SQL of the close and of the payouts groups by (sign, magnitude mod the rates'
    common modulus) and sums (magnitudes) gives, rounded here, exactly Σ apply_rate of each."""
    modulus = money.rate_modulus(rates)
    assert all(modulus % r.as_integer_ratio()[1] == 0 for r in rates)
    groups: dict[int, list[int]] = {}
    for a in amounts:
        groups.setdefault(a % modulus, []).append(a)
    sign = -1 if negative else 1
    for rate in rates:
        assert sum(money.apply_rate_to_many(len(m), sum(m), r, negative, rate, modulus) for r, m in groups.items()) \
            == sum(money.apply_rate(sign * a, rate) for a in amounts)
