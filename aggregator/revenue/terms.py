"""A bill's split between the platform (its fee) and the provider (its net): rule 1 of
`shares.py`. Pure: integer minor units, rounded by `money`'s one rule."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

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


def split(amount: int, revenue_share: bool, rate: Decimal) -> Split:
    """Rule 1: fee = money.apply_rate(amount, rate) for a revenue-share bill, 0 for a pass-through
    bill; net = amount - fee, so fee + net == amount exactly (negative amounts too)."""
    check_rate(rate)
    fee = money.apply_rate(amount, rate) if revenue_share else 0
    return Split(fee, amount - fee)
