"""Prices on usage: a pure function from a pricing model and a period's aggregated quantity to an
amount with its breakdown (the invoice line). No framework, no database: rating reads the
quantity and the price and hands them here.

Amounts are exact fractions of the currency's minor unit (a unit price may be finer than it:
EUR 0.0005 a call is Fraction(1, 20) cents), summed exactly and **rounded once**, on the total, by
`money.round_exact` (the one rule: half up, away from zero), never per tier. Then the total is
clamped to the period's minimum and maximum.

The models (PLATFORMA's and Stripe's):

- **per_unit**: billable units × unit_amount.
- **package**: ⌈billable / package_size⌉ packages (rounded up; none for no billable unit) ×
  unit_amount, the price of one package.
- **graduated**: each tier prices the units that fall in it. A tier's `up_to` bounds the TOTAL
  quantity, cumulatively (PLATFORMA's `{up_to: 1000}` then `{up_to: null}`): tier i holds the units
  above tier i-1's bound up to its own. A tier's flat_amount is charged when a billable unit falls
  in it.
- **volume**: one tier, the one holding the WHOLE quantity (included units counted), prices every
  billable unit; its flat_amount is charged when there is a billable unit (Stripe charges it
  when the quantity is positive; with no included units that is the same).

`included_units` are free and come first: the first `included_units` of the quantity are never
billed. In graduated tiers they use up the start of the tiers (included 100, 0–1000 at EUR 0.05,
then EUR 0.03: 1,340 GB is 900 × 0.05 + 340 × 0.03 = EUR 55.20).

`minimum` applies even to no usage (a minimum per period, as Stripe's and Lago's: the period
costs at least that much); `maximum` caps the total. `Priced.clamped` says which one applied.

A bound in `up_to` is inclusive (Stripe's): with tiers up to 10 and beyond, 10 VMs are in the
first tier, 11 in the second. As bounds are cumulative, tiers can neither overlap nor leave a gap
if the bounds strictly increase: `check` refuses a bound that does not.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from numbers import Rational

from .. import money

PER_UNIT, PACKAGE, GRADUATED, VOLUME = "per_unit", "package", "graduated", "volume"
MODELS = (PER_UNIT, PACKAGE, GRADUATED, VOLUME)
TIERED = (GRADUATED, VOLUME)


@dataclass(frozen=True, slots=True)
class Tier:
    """One tier of a graduated or volume price."""

    up_to: Fraction | None  # cumulative, inclusive bound on the TOTAL quantity; None: no bound (last tier)
    unit_amount: Fraction  # minor units per unit, may be finer than 1
    flat_amount: Fraction = Fraction(0)  # minor units, once for the tier (see the module's docstring)


@dataclass(frozen=True, slots=True)
class PriceModel:
    """How a usage quantity is priced (see the module's docstring for each model)."""

    model: str  # per_unit | package | graduated | volume
    unit_amount: Fraction = Fraction(0)  # per_unit: per unit; package: per package (minor units)
    package_size: int = 1  # package only
    tiers: tuple[Tier, ...] = ()  # graduated / volume
    included_units: Fraction = Fraction(0)  # a free first allowance
    minimum: int | None = None  # minor units per period, on the rounded total
    maximum: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the breakdown."""

    units: Fraction  # units priced at this step (package: the billable units, with `packages` set)
    unit_amount: Fraction  # minor units per unit (package: per package)
    flat_amount: Fraction
    amount: Fraction  # exact, minor units
    packages: int | None = None  # package only: how many
    package_size: int | None = None  # package only: units in a package (for the invoice line)


@dataclass(frozen=True, slots=True)
class Priced:
    """A priced quantity: the breakdown, the exact total and the amount billed."""

    quantity: Fraction  # the aggregated quantity
    included: Fraction  # included units used: min(quantity, included_units)
    billable: Fraction  # quantity - included
    steps: tuple[Step, ...]  # only steps with billable units
    exact: Fraction  # Σ step amounts (minor units, exact), before minimum and maximum
    amount: int  # exact rounded once by money.round_exact, then clamped to [minimum, maximum]
    clamped: str | None  # "minimum" | "maximum" | None


def price(model: PriceModel, quantity: Fraction) -> Priced:
    """`quantity` priced by `model`. ValueError for a model `check` refuses or a negative quantity
    (what rates usage validated both before: this is a programming error, not bad input)."""
    problems = _problems(model)
    if problems:
        raise ValueError("invalid price: " + "; ".join(f"{field}: {message}" for field, message in problems))
    quantity = Fraction(quantity)
    if quantity < 0:
        raise ValueError(f"a usage quantity is never negative, not {quantity}")
    included = min(quantity, Fraction(model.included_units))
    billable = quantity - included
    if model.model == PER_UNIT:
        steps = _per_unit(billable, Fraction(model.unit_amount))
    elif model.model == PACKAGE:
        steps = _package(billable, Fraction(model.unit_amount), model.package_size)
    elif model.model == GRADUATED:
        steps = _graduated(model.tiers, included, quantity)
    else:
        steps = _volume(model.tiers, billable, quantity)
    exact = sum((step.amount for step in steps), Fraction(0))
    amount, clamped = clamp(money.round_exact(exact), model.minimum, model.maximum)
    return Priced(quantity=quantity, included=included, billable=billable, steps=steps, exact=exact,
                  amount=amount, clamped=clamped)


@lru_cache(maxsize=1024)
def _problems(model: PriceModel) -> tuple[tuple[str, str], ...]:
    """check(model), remembered: rating prices one model for many subscriptions (a model is a
    frozen value, so equal models share the answer)."""
    return tuple(check(model))


def clamp(amount: int, minimum: int | None, maximum: int | None) -> tuple[int, str | None]:
    """The rounded total within [minimum, maximum], and which bound applied, if one did."""
    if minimum is not None and amount < minimum:
        return minimum, "minimum"
    if maximum is not None and amount > maximum:
        return maximum, "maximum"
    return amount, None


def _per_unit(billable: Fraction, unit_amount: Fraction) -> tuple[Step, ...]:
    if not billable:
        return ()
    return (Step(units=billable, unit_amount=unit_amount, flat_amount=Fraction(0), amount=billable * unit_amount),)


def packages(billable: Fraction, package_size: int) -> int:
    """Packages for `billable` units: rounded up (2,001 calls in packages of 1,000 are 3)."""
    return -((-billable.numerator) // (billable.denominator * package_size))


def _package(billable: Fraction, unit_amount: Fraction, package_size: int) -> tuple[Step, ...]:
    if not billable:
        return ()
    count = packages(billable, package_size)
    return (Step(units=billable, unit_amount=unit_amount, flat_amount=Fraction(0), amount=count * unit_amount,
                 packages=count, package_size=package_size),)


def tier_slices(tiers: tuple[Tier, ...], start: Fraction, end: Fraction) -> list[tuple[Tier, Fraction]]:
    """Each tier with the units of the quantity range (start, end] that fall in it, in order,
    tiers holding none left out: a graduated price's billable units (start: the included units)."""
    slices: list[tuple[Tier, Fraction]] = []
    lower = Fraction(0)
    for tier in tiers:
        upper = None if tier.up_to is None else Fraction(tier.up_to)
        units = (end if upper is None else min(upper, end)) - max(lower, start)
        if units > 0:
            slices.append((tier, units))
        if upper is None or upper >= end:
            break
        lower = upper
    return slices


def _graduated(tiers: tuple[Tier, ...], included: Fraction, quantity: Fraction) -> tuple[Step, ...]:
    return tuple(
        Step(units=units, unit_amount=Fraction(tier.unit_amount), flat_amount=Fraction(tier.flat_amount),
             amount=units * Fraction(tier.unit_amount) + Fraction(tier.flat_amount))
        for tier, units in tier_slices(tiers, included, quantity)
    )


def volume_tier(tiers: tuple[Tier, ...], quantity: Fraction) -> Tier:
    """The tier holding the whole quantity: the first whose bound it does not pass."""
    for tier in tiers:
        if tier.up_to is None or quantity <= tier.up_to:
            return tier
    raise ValueError("the last tier has a bound")  # check() refuses such tiers


def _volume(tiers: tuple[Tier, ...], billable: Fraction, quantity: Fraction) -> tuple[Step, ...]:
    if not billable:
        return ()
    tier = volume_tier(tiers, quantity)
    unit_amount, flat_amount = Fraction(tier.unit_amount), Fraction(tier.flat_amount)
    return (Step(units=billable, unit_amount=unit_amount, flat_amount=flat_amount,
                 amount=billable * unit_amount + flat_amount),)


# --- validation -------------------------------------------------------------------------------


def _is_rational(value: object) -> bool:
    """An exact number (int or Fraction; Decimal is not a numbers.Rational): never a float or bool."""
    return isinstance(value, Rational) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _amount_problem(label: str, value: object) -> str | None:
    if not _is_rational(value):
        return f"{label} must be an exact number (an int or a Fraction), not a {type(value).__name__}."
    if value < 0:  # type: ignore[operator]
        return f"{label} must not be negative."
    return None


def check(model: PriceModel) -> list[tuple[str, str]]:
    """Every problem with `model`, as (field, message); [] if it is valid."""
    problems: list[tuple[str, str]] = []
    if model.model not in MODELS:
        return [("model", f"Unknown pricing model {model.model!r}: expected one of {', '.join(MODELS)}.")]
    for field, label in (("unit_amount", "The unit amount"), ("included_units", "The included units")):
        problem = _amount_problem(label, getattr(model, field))
        if problem:
            problems.append((field, problem))
    if model.model in TIERED:
        if _is_rational(model.unit_amount) and model.unit_amount:
            problems.append(("unit_amount", f"A {model.model} price sets unit_amount on each tier, not on the price."))
        problems.extend(check_tiers(model.tiers))
    elif model.tiers:
        problems.append(("tiers", f"A {model.model} price has no tiers."))
    if not _is_int(model.package_size) or model.package_size < 1:
        problems.append(("package_size", "The package size must be a whole number of units, at least 1."))
    elif model.package_size != 1 and model.model != PACKAGE:
        problems.append(("package_size", f"Only package prices have a package size, not {model.model}."))
    for field in ("minimum", "maximum"):
        value = getattr(model, field)
        if value is not None and (not _is_int(value) or value < 0):
            problems.append((field, f"The {field} must be a whole, non-negative number of minor units."))
    if (_is_int(model.minimum) and _is_int(model.maximum)
            and model.minimum > model.maximum):  # type: ignore[operator]
        problems.append(("minimum", "The minimum must not exceed the maximum."))
    return problems


def check_tiers(tiers: tuple[Tier, ...]) -> list[tuple[str, str]]:
    """Tiers as graduated and volume prices need them: at least one, bounds positive and strictly
    increasing (bounds are cumulative, so a bound not above the previous one would make tiers
    overlap or leave a gap), only the last without a bound, amounts exact and non-negative."""
    if not tiers:
        return [("tiers", "A tiered price needs at least one tier (the last without an up_to bound).")]
    problems: list[tuple[str, str]] = []
    previous: Fraction | None = None
    for i, tier in enumerate(tiers):
        last = i == len(tiers) - 1
        field = f"tiers.{i}.up_to"
        if tier.up_to is None:
            if not last:
                problems.append((field, "Only the last tier may have no bound: the tiers after it could never apply."))
        elif not _is_rational(tier.up_to):
            problems.append((field, f"The bound must be an exact number (an int or a Fraction), not a "
                                    f"{type(tier.up_to).__name__}."))
        elif last:
            problems.append((field, "The last tier must have no bound (up_to null), so every quantity has a tier."))
        elif tier.up_to <= 0:
            problems.append((field, "The bound must be positive."))
        elif previous is not None and tier.up_to <= previous:
            problems.append((field, f"Bounds are cumulative and must strictly increase: {tier.up_to} is not above "
                                    f"the previous tier's {previous}, so the tiers would overlap or leave a gap."))
        if tier.up_to is not None and _is_rational(tier.up_to):
            previous = Fraction(tier.up_to) if previous is None else max(previous, Fraction(tier.up_to))
        for name, label in (("unit_amount", "The unit amount"), ("flat_amount", "The flat amount")):
            problem = _amount_problem(label, getattr(tier, name))
            if problem:
                problems.append((f"tiers.{i}.{name}", problem))
    return problems


# --- the invoice line ---------------------------------------------------------------------------


def describe(priced: Priced, name: str, unit: str, currency: str, locale: str = "en", decimals: int = 0) -> str:
    """The invoice line of `priced`, e.g.
    'Bandwidth — 1,340 GB: 100 GB included, 900 × €0.05, 340 × €0.03 = €55.20';
    'Virtual machines — 12 VMs × €69.99 = €839.88'; 'API calls — 2,500 calls: 3 × 1,000 calls at
    €5.00 = €15.00'; '…, minimum €10.00'. Amounts by money's Babel formatting in `locale` (unit
    prices with every decimal they have, up to 6), quantities with at most `decimals` decimals
    (rounded for display only). The words are English."""

    def quantity(value: Fraction) -> str:
        return money.display_quantity(value, locale, decimals)

    def amount(value: Fraction) -> str:
        return money.display_precise(value, currency, locale)

    def step_price(step: Step) -> str:
        text = amount(step.unit_amount)
        return f"{text} + {amount(step.flat_amount)}" if step.flat_amount else text

    def step_text(step: Step) -> str:
        if step.packages is not None:
            count, size = (money.display_quantity(Fraction(n), locale) for n in (step.packages, step.package_size or 1))
            return f"{count} × {size} {unit} at {amount(step.unit_amount)}"
        return f"{quantity(step.units)} × {step_price(step)}"

    head = f"{name} — {quantity(priced.quantity)} {unit}"
    total = money.display(money.round_exact(priced.exact), currency, locale)
    parts = [f"{quantity(priced.included)} {unit} included"] if priced.included else []
    parts += [step_text(step) for step in priced.steps]
    if not parts:  # no usage, nothing included
        line = f"{head} = {total}"
    elif not priced.included and len(priced.steps) == 1 and priced.steps[0].packages is None:
        line = f"{head} × {step_price(priced.steps[0])} = {total}"  # every unit at one price
    else:
        line = f"{head}: {', '.join(parts)} = {total}"
    if priced.clamped:
        line += f", {priced.clamped} {money.display(priced.amount, currency, locale)}"
    return line
