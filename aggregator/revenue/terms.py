"""A bill's split between the platform (its fee) and the provider (its net): rule 1 of
`shares.py`, as one share policy per provider terms. Pure: integer minor units, rounded by
`money`'s one rule.

A policy splits one bill (`split(amount)`) and a group of bills at once (`split_group(count,
total, remainder)`): the grouped form is what the close and the payout build use, over bills the
database has summed per group (`aggregator/revenue_sql.py`), and it gives exactly the sum of the
bill-by-bill splits, to the minor unit (each bill is rounded on its own, never the group's sum):

- `RevenueShare(rate)`: fee = money.apply_rate(amount, rate), half up away from zero, per bill.
  Grouped by sign and magnitude mod `modulus` (the rate's denominator), money.apply_rate_to_many
  rounds a group exactly as bill by bill.
- `PassThrough()`: fee 0, the provider's whole amount.
- `ExplicitFee(fee)`: a bill that names the platform's fee itself (a plan-rated bill's parent fee,
  issue 18): fee as given, net = amount - fee, whatever their signs (a provider priced below its
  parent plan owes the difference: a negative net). Bills with their own fees group by summing
  them: the group's policy is `ExplicitFee(Σ fee)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from .. import money


@dataclass(frozen=True, slots=True)
class Split:
    """A bill's amount split between the platform (`fee`) and the provider (`net`)."""

    fee: int
    net: int

    @property
    def amount(self) -> int:
        return self.fee + self.net


def check_rate(rate: Decimal) -> Decimal:
    """`rate`, if it is a finite Decimal in [0, 1] (never a float)."""
    if not isinstance(rate, Decimal) or not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise money.MoneyError(f"A revenue-share rate is a decimal between 0 and 1, not {rate!r}.")
    return rate


class SharePolicy(Protocol):
    """How a bill's amount is split between the platform and the provider (rule 1)."""

    @property
    def modulus(self) -> int:
        """Bills grouped for `split_group` have magnitudes ≡ one remainder mod a multiple of this."""
        ...

    @property
    def revenue_share(self) -> bool:
        """Whether the platform takes a fee from such bills (False: pass-through)."""
        ...

    def split(self, amount: int) -> Split:
        """One bill of `amount`: fee + net == amount."""
        ...

    def split_group(self, count: int, total: int, remainder: int = 0) -> Split:
        """`count` (>= 1) bills of one sign (all < 0, or all >= 0) adding up to `total`, each
        magnitude ≡ `remainder` mod a multiple of `modulus`: exactly the sum of their splits."""
        ...


@dataclass(frozen=True, slots=True)
class RevenueShare:
    """The platform takes `rate` of each bill: fee = money.apply_rate(amount, rate)."""

    rate: Decimal
    modulus: int = field(init=False, repr=False, compare=False)  # the rate's denominator

    def __post_init__(self) -> None:
        check_rate(self.rate)
        object.__setattr__(self, "modulus", money.rate_modulus([self.rate]))

    @property
    def revenue_share(self) -> bool:
        return True

    def split(self, amount: int) -> Split:
        fee = money.apply_rate(amount, self.rate)
        return Split(fee, amount - fee)

    def split_group(self, count: int, total: int, remainder: int = 0) -> Split:
        _check_group(count)
        fee = money.apply_rate_to_many(count, abs(total), remainder % self.modulus, total < 0, self.rate,
                                       self.modulus)
        return Split(fee, total - fee)


@dataclass(frozen=True, slots=True)
class PassThrough:
    """The provider's whole amount (SMS, training, customisation): fee 0."""

    @property
    def modulus(self) -> int:
        return 1

    @property
    def revenue_share(self) -> bool:
        return False

    def split(self, amount: int) -> Split:
        return Split(0, amount)

    def split_group(self, count: int, total: int, remainder: int = 0) -> Split:
        _check_group(count)
        return Split(0, total)


@dataclass(frozen=True, slots=True)
class ExplicitFee:
    """A bill that carries its own platform fee, `fee` (of a group of such bills: their sum)."""

    fee: int

    @property
    def modulus(self) -> int:
        return 1

    @property
    def revenue_share(self) -> bool:
        return True

    def split(self, amount: int) -> Split:
        return Split(self.fee, amount - self.fee)

    def split_group(self, count: int, total: int, remainder: int = 0) -> Split:
        _check_group(count)
        return Split(self.fee, total - self.fee)


PASS_THROUGH = PassThrough()


def _check_group(count: int) -> None:
    if count < 1:
        raise ValueError(f"a group of bills has at least one bill, not {count}")


def policy(revenue_share: bool, rate: Decimal, fee: int | None = None) -> SharePolicy:
    """The policy of a bill: its own `fee` if it carries one, else its provider's terms (`rate`,
    recorded for the bill's period) for a revenue-share bill, else pass-through."""
    if fee is not None:
        return ExplicitFee(fee)
    if not revenue_share:
        check_rate(rate)
        return PASS_THROUGH
    return _revenue_share(rate)


@lru_cache(maxsize=256)
def _revenue_share(rate: Decimal) -> RevenueShare:
    """One policy per rate (bills are split one by one in their thousands: built once)."""
    return RevenueShare(rate)


def split(amount: int, revenue_share: bool, rate: Decimal) -> Split:
    """Rule 1: fee = money.apply_rate(amount, rate) for a revenue-share bill, 0 for a pass-through
    bill; net = amount - fee, so fee + net == amount exactly (negative amounts too)."""
    return policy(revenue_share, rate).split(amount)
