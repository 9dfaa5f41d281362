"""Money: exact integer minor units next to an ISO 4217 currency code. The only place that turns
decimal strings into amounts and back, and the only place that rounds (half up, away from zero, on
the minor unit). The rules, and why: docs/money.md."""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction
from functools import lru_cache
from typing import Iterable, Sequence

from babel import Locale
from babel.numbers import NumberPattern

ROUNDING = ROUND_HALF_UP

#: The largest magnitude, in major units, that an amount may have (a trillion).
MAX_MAJOR = 10**12

#: The largest magnitude, in minor units, that a stored sum may have (a signed 64-bit integer).
MAX_STORED_MINOR = 2**63 - 1

_DECIMAL_RE = re.compile(r"^-?(0|[1-9][0-9]*)(?:\.([0-9]+))?$")


class MoneyError(ValueError):
    """An amount, currency or rate that cannot be accepted. The message is user-facing."""


@lru_cache(maxsize=1)
def _exponents() -> dict[str, int]:
    """ISO 4217 minor units of the codes that are legal tender in at least one territory today
    (CLDR) and current in ISO 4217 with a number of minor units."""
    import iso4217
    from babel.core import get_global

    today = date.today()
    exponents: dict[str, int] = {}
    for entries in get_global("territory_currencies").values():
        for code, start, end, tender in entries:
            if not tender or not ((start is None or date(*start) <= today) and (end is None or today <= date(*end))):
                continue
            minor_units = (iso4217.raw_table.get(code) or {}).get("CcyMnrUnts")
            if isinstance(minor_units, str) and minor_units.isdigit():
                exponents[code] = int(minor_units)
    return exponents


def currencies() -> dict[str, int]:
    """Every currency code accepted, with its exponent (the OpenAPI document lists them)."""
    return dict(_exponents())


def is_currency(code: object) -> bool:
    return isinstance(code, str) and code in _exponents()  # each is three letters A-Z


def check_currency(code: object) -> str:
    if not is_currency(code):
        raise MoneyError(f"Unknown currency code {code!r}: expected an ISO 4217 code such as 'USD'.")
    return code  # type: ignore[return-value]


def exponent(currency: str) -> int:
    """Digits after the decimal point of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return _exponents()[check_currency(currency)]


def check_storable(minor: int, currency: str) -> int:
    """`minor`, if a 64-bit column can hold it (sums of many bills can exceed any one amount)."""
    if abs(minor) > MAX_STORED_MINOR:
        raise MoneyError(f"A total of {format_amount(minor, currency)} {currency} is beyond what can be stored.")
    return minor


def _max_minor(currency: str) -> int:
    scale: int = 10 ** exponent(currency)
    return MAX_MAJOR * scale


def parse_amount(text: object, currency: str) -> int:
    """A decimal string such as "12.50" in `currency` -> integer minor units (1250).

    Refuses anything but a plain decimal string: JSON numbers, exponents, NaN/Infinity,
    a value finer than the currency's minor unit ("1.005" USD, "1.5" JPY; trailing zeros
    such as "19.990" are exact and accepted), and magnitudes beyond MAX_MAJOR.
    """
    exp = exponent(currency)
    if not isinstance(text, str):
        raise MoneyError("Amounts are decimal strings such as \"12.50\", not numbers.")
    match = _DECIMAL_RE.fullmatch(text) if len(text) <= 40 else None
    if match is None:
        raise MoneyError(f"{text[:40]!r} is not a decimal amount such as \"12.50\".")
    # Exact in integers: the whole part, and the fraction without its trailing zeros ("19.990"
    # is exactly 19.99; "19.995" is finer than a cent).
    whole, fraction = int(match[1]), (match[2] or "").rstrip("0")
    if whole > MAX_MAJOR or (whole == MAX_MAJOR and fraction):
        raise MoneyError(f"The amount's magnitude must not exceed {MAX_MAJOR:,}.")
    if len(fraction) > exp:
        raise MoneyError(
            f"{currency} amounts have at most {exp} decimal place{'s' if exp != 1 else ''}."
            if exp
            else f"{currency} amounts have no decimal places."
        )
    minor: int = whole * 10**exp + (int(fraction) * 10 ** (exp - len(fraction)) if fraction else 0)
    return -minor if text[0] == "-" else minor


def format_amount(minor: int, currency: str) -> str:
    """Integer minor units -> the API's decimal string (1250, "USD" -> "12.50")."""
    exp = exponent(currency)
    if not exp:
        return str(minor)
    whole, fraction = divmod(abs(minor), 10**exp)
    return f"{'-' if minor < 0 else ''}{whole}.{fraction:0{exp}d}"


#: Unit prices may be finer than the minor unit (EUR 0.0005 a call), to this many places.
UNIT_PRICE_PLACES = 9


def parse_unit_amount(text: object, currency: str) -> Fraction:
    """A unit price as a decimal string in `currency` ("0.0005" EUR) -> exact minor units as a
    Fraction (1/20 of a cent). Up to UNIT_PRICE_PLACES decimal places, never negative, never a
    JSON number: what is billed is rounded once, on the total (`round_exact`)."""
    if not isinstance(text, str):
        raise MoneyError("Unit prices are decimal strings such as \"0.05\", not numbers.")
    match = _DECIMAL_RE.fullmatch(text) if len(text) <= 40 else None
    if match is None or text.startswith("-"):
        raise MoneyError(f"{text[:40]!r} is not a unit price such as \"0.05\" (not negative).")
    whole, fraction = int(match[1]), (match[2] or "").rstrip("0")
    if whole > MAX_MAJOR:
        raise MoneyError(f"The price's magnitude must not exceed {MAX_MAJOR:,}.")
    if len(fraction) > UNIT_PRICE_PLACES:
        raise MoneyError(f"Unit prices have at most {UNIT_PRICE_PLACES} decimal places.")
    scale: int = 10 ** exponent(currency)
    return Fraction(whole * 10**len(fraction) + int(fraction or 0), 10**len(fraction)) * scale


@lru_cache(maxsize=4096)  # pure; rating prints the same few prices and tiers per line
def format_unit_amount(minor: Fraction, currency: str) -> str:
    """Exact minor units (a Fraction with a power-of-ten denominator, as parse_unit_amount
    makes) -> the API's decimal string in major units, with as many places as it needs and at
    least the currency's ("0.0005", "0.05", "79.99")."""
    major = Fraction(minor) / 10 ** exponent(currency)
    places = exponent(currency)
    while (major * 10**places).denominator != 1 and places < UNIT_PRICE_PLACES + 4:
        places += 1
    scaled = major * 10**places
    whole = scaled.numerator // scaled.denominator
    digits = str(abs(whole)).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}" if places else digits
    return ("-" if major < 0 else "") + text


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def display(minor: int, currency: str, locale: str | Locale = "en") -> str:
    """Human formatting for documents, e.g. 'A$1,234.50' or '¥1,235': the locale's conventions
    (Babel, CLDR) with exactly the currency's ISO 4217 decimals."""
    locale = Locale.parse(locale)
    text: str = _currency_pattern(locale, exponent(currency)).apply(
        to_decimal(minor, currency), locale, currency=currency, currency_digits=False)
    return text


@lru_cache(maxsize=4096)  # pure; rating prints the same few prices and tiers per line
def display_precise(minor: Fraction, currency: str, locale: str | Locale = "en", max_decimals: int = 6) -> str:
    """A price finer than the minor unit, as display() would print it but with the decimals it
    has ('€0.0005' for Fraction(1, 20) euro cents; '€0.05' for 5): at least the currency's, at
    most `max_decimals` (beyond them rounded by the one rule, for display only)."""
    exp = exponent(currency)
    major = Fraction(minor) / 10**exp
    decimals = exp
    while decimals < max_decimals and (major * 10**decimals).denominator != 1:
        decimals += 1
    locale = Locale.parse(locale)
    value = Decimal(round_exact(major * 10**decimals)).scaleb(-decimals)
    text: str = _currency_pattern(locale, decimals).apply(value, locale, currency=currency, currency_digits=False)
    return text


@lru_cache(maxsize=4096)  # pure; rating prints the same few prices and tiers per line
def display_quantity(value: Fraction, locale: str | Locale = "en", decimals: int = 0) -> str:
    """A quantity printed beside amounts (an invoice line's '1,340' GB): the locale's grouping and
    decimal sign, with the decimals it has up to `decimals` (beyond them rounded by the one rule,
    for display only)."""
    locale = Locale.parse(locale)
    value = Fraction(round_exact(Fraction(value) * 10**decimals), 10**decimals)
    shown = 0
    while (value * 10**shown).denominator != 1:
        shown += 1
    number = Decimal(value.numerator * 10**shown // value.denominator).scaleb(-shown)
    text: str = _decimal_pattern(locale, shown).apply(number, locale)
    return text


@lru_cache(maxsize=256)
def _decimal_pattern(locale: Locale, decimals: int) -> NumberPattern:
    """The locale's decimal format (grouping) showing exactly `decimals` decimals."""
    pattern: NumberPattern = copy.copy(locale.decimal_formats[None])
    pattern.frac_prec = (decimals, decimals)
    return pattern


@lru_cache(maxsize=256)
def _currency_pattern(locale: Locale, decimals: int) -> NumberPattern:
    """The locale's currency format showing exactly `decimals` decimals."""
    pattern: NumberPattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (decimals, decimals)
    return pattern


def round_minor(value: Decimal) -> int:
    """The one rounding rule: half up (away from zero) to a whole minor unit."""
    return int(value.quantize(Decimal(1), rounding=ROUNDING))


def round_exact(value: Fraction) -> int:
    """`value` (minor units, an exact fraction such as a usage total at EUR 0.0005 a call) rounded
    by the one rule, as round_minor: half up, away from zero. Integer arithmetic only."""
    quotient, remainder = divmod(abs(value.numerator), value.denominator)
    if 2 * remainder >= value.denominator:
        quotient += 1
    return -quotient if value < 0 else quotient


def apply_rate(minor: int, rate: Decimal) -> int:
    """`minor * rate`, rounded by the one rule (tax, platform cut, FX conversion)."""
    return round_minor(Decimal(minor) * rate)


def prorate(minor: int, units: int, whole: int) -> int:
    """`minor * units / whole` (a price for `units` of a `whole`: days of a period, each times a
    quantity), rounded once by the one rule. Exact: a fraction of integers, never a float."""
    if whole <= 0:
        raise ValueError(f"prorating needs a positive whole, not {whole}")
    numerator = minor * units
    quotient, remainder = divmod(abs(numerator), whole)
    if 2 * remainder >= whole:  # half up, away from zero, as round_minor
        quotient += 1
    return -quotient if numerator < 0 else quotient


def rate_modulus(rates: Iterable[Decimal]) -> int:
    """The least common multiple of the denominators of `rates` as reduced fractions (0.30 -> 10,
    0.125 -> 8; both -> 40): the modulus apply_rate_to_many groups amounts by."""
    return math.lcm(1, *(rate.as_integer_ratio()[1] for rate in rates))


def apply_rate_to_many(count: int, magnitudes: int, remainder: int, negative: bool, rate: Decimal,
                       modulus: int) -> int:
    """Σ apply_rate(a, rate) over `count` amounts of one sign whose magnitudes add up to
    `magnitudes` and are each ≡ `remainder` (mod `modulus`, a multiple of rate's denominator: see
    rate_modulus): what a database can group amounts by (their sign and magnitude mod the
    modulus) and sum, with integer arithmetic only, leaving the rounding here. Exact: each
    magnitude is q·m + remainder, and q·m·rate is whole, so rounding half up away from zero
    gives q·m·rate + apply_rate(remainder, rate); Σ q = (magnitudes - count·remainder) / m."""
    whole = rate * modulus
    if whole != whole.to_integral_value():
        raise ValueError(f"{modulus} is not a multiple of the denominator of {rate}")
    quotients, left = divmod(magnitudes - count * remainder, modulus)
    if left:
        raise ValueError("the magnitudes are not all ≡ the remainder")
    total = int(whole) * quotients + count * apply_rate(remainder, rate)
    return -total if negative else total


def convert(minor: int, source: str, target: str, rate: Decimal) -> int:
    """`minor` units of `source` in `target` at `rate` (target per one source), by the one rule."""
    result = round_minor(Decimal(minor) * rate * Decimal(10) ** (exponent(target) - exponent(source)))
    if abs(result) > _max_minor(target):
        raise MoneyError(f"{format_amount(minor, source)} {source} at {rate} exceeds the largest "
                         f"{target} amount.")
    return result


def allocate(minor: int, weights: Sequence[int]) -> list[int]:
    """Split `minor` in proportion to integer `weights`, exactly (largest remainder).

    The parts always sum to `minor`; ties in the remainder go to the earliest weights.
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("allocate needs non-negative weights with a positive sum")
    total = sum(weights)
    sign = -1 if minor < 0 else 1
    magnitude = abs(minor)
    parts = [magnitude * w // total for w in weights]
    remainders = sorted(
        range(len(weights)), key=lambda i: (-(magnitude * weights[i] % total), i)
    )
    for i in remainders[: magnitude - sum(parts)]:
        parts[i] += 1
    return [sign * p for p in parts]


_RATE_RE = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]+)?$")


def parse_rate(text: object, *, maximum: Decimal | None = Decimal(1), places: int = 6) -> Decimal:
    """A non-negative decimal-string rate ("0.30" = 30%) with at most `places` decimals."""
    if not isinstance(text, str):
        raise MoneyError("Rates are decimal strings such as \"0.30\", not numbers.")
    if len(text) > 32 or not _RATE_RE.fullmatch(text):
        raise MoneyError(f"{text[:32]!r} is not a decimal rate such as \"0.30\".")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise MoneyError(f"{text!r} is not a decimal rate.") from exc
    if -value.as_tuple().exponent > places:  # type: ignore[operator]
        raise MoneyError(f"Rates have at most {places} decimal places.")
    if maximum is not None and value > maximum:
        raise MoneyError(f"The rate must be between 0 and {maximum}.")
    return value


def format_rate(rate: Decimal) -> str:
    """Canonical string for a rate: no exponent, no trailing zeros ("0.3", "1", "0")."""
    return format(rate.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __add__(self, other: "Money") -> "Money":
        if other.currency != self.currency:
            raise MoneyError(f"Cannot add {other.currency} to {self.currency}.")
        return Money(self.minor + other.minor, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.minor, self.currency)

    def __str__(self) -> str:
        return f"{format_amount(self.minor, self.currency)} {self.currency}"

    @classmethod
    def zero(cls, currency: str) -> "Money":
        return cls(0, currency)

    @classmethod
    def total(cls, amounts: Iterable["Money"], currency: str) -> "Money":
        result = cls.zero(currency)
        for amount in amounts:
            result = result + amount
        return result


# --- Stripe's units ---------------------------------------------------------------------------
# Stripe takes amounts as integers in its own unit per currency, which is not always ISO 4217's
# minor unit (https://docs.stripe.com/currencies): zero-decimal currencies in whole units; ISK in
# hundredths although it has none (amounts a multiple of 100); the three-decimal currencies in
# thousandths whose last digit must be 0. HUF and TWD charge in hundredths like ISO (their
# payouts must be whole units: the payouts' concern). An amount Stripe cannot take exactly is
# refused, never rounded away.

STRIPE_ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX",
                                 "VND", "VUV", "XAF", "XOF", "XPF"})
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _stripe_exponent(currency: str) -> int:
    """Stripe's decimal places for `currency` (ISK: 2, ISO's 0 sent ×100)."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    return 3 if currency in STRIPE_THREE_DECIMAL else 2


def to_stripe_amount(minor: int, currency: str) -> int:
    """`minor` units of `currency` as Stripe's `amount`, or MoneyError if Stripe cannot charge it
    exactly (e.g. KWD 1.235: its last digit must be 0; MGA 12.50: Stripe takes whole ariary)."""
    iso, stripe_ = exponent(currency), _stripe_exponent(currency)
    if stripe_ < iso:
        step: int = 10 ** (iso - stripe_)
        if minor % step:
            raise MoneyError(f"Stripe cannot charge {format_amount(minor, currency)} {currency} exactly "
                             f"(it takes {currency} to {stripe_} decimal places).")
        units: int = minor // step
    else:
        units = minor * 10 ** (stripe_ - iso)
    if currency in STRIPE_THREE_DECIMAL and units % 10:
        raise MoneyError(f"Stripe charges {currency} in multiples of 0.010: {format_amount(minor, currency)} "
                         f"{currency} cannot be charged exactly.")
    return units


def from_stripe_amount(units: int, currency: str) -> int:
    """Stripe's `amount` in `currency` -> ISO minor units (exact: Stripe's unit is never coarser
    than what to_stripe_amount sends; a finer one, from elsewhere, is refused)."""
    iso, stripe_ = exponent(currency), _stripe_exponent(currency)
    if stripe_ <= iso:
        scale: int = 10 ** (iso - stripe_)
        return units * scale
    step: int = 10 ** (stripe_ - iso)
    if units % step:
        raise MoneyError(f"Stripe's amount {units} {currency} is finer than the currency's minor unit.")
    return units // step
