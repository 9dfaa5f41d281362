"""A payout's amounts as arithmetic a reader can follow, the same on the provider's statement, the
payout report (PDF, CSV) and finance's page.

A payout's stored figures (payouts.models.Payout; the report's rows and totals are their sums)
are related so: gross = charges + credits (credits: the provider's negative bills, already
inside gross), net = gross - fee + clawback (clawback <= 0: refunded shares taken back), and
net + brought_forward = amount + carry (what is transferred, and a negative balance carried to
the next payout, carry <= 0). Shown as one column of signed terms with subtotals, each subtotal
is the sum of everything above it: a reader adds the numbers down and gets each line in bold.

    Charges                      68.00
    Credits                      -5.00
    Gross                        63.00   = charges + credits
    Platform fee                -18.90
    Clawback (refunds)            0.00
    Net                          44.10   = gross - fee + clawback
    Brought forward               0.00
    Amount transferred           44.10   = net + brought forward (+ a negative balance carried)

Never "Gross 63.00, fee 18.90, credits -5.00, net 44.10", which reads as 39.10."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PayoutFigures(Protocol):
    gross: int
    fee: int
    credits: int
    clawback: int
    net: int
    brought_forward: int
    amount: int
    carry: int


@dataclass(frozen=True, slots=True)
class Step:
    """A line of the arithmetic: a `term` (signed: added), or a `subtotal`/`total` (the sum of
    every term above it)."""

    key: str
    label: str
    amount: int
    kind: str  # term, subtotal, total
    formula: str = ""

    @property
    def is_sum(self) -> bool:
        return self.kind != "term"


def charges(figures: PayoutFigures) -> int:
    """The provider's bills other than its credits: gross less its (negative) credits."""
    return figures.gross - figures.credits


def steps(figures: PayoutFigures) -> list[Step]:
    """The arithmetic of one payout (or of a sum of payouts). The carry line is there only when
    a negative balance is carried (it then brings the amount transferred back to zero)."""
    lines = [
        Step("charges", "Charges", charges(figures), "term"),
        Step("credits", "Credits", figures.credits, "term"),
        Step("gross", "Gross", figures.gross, "subtotal", "charges + credits"),
        Step("fee", "Platform fee", -figures.fee, "term"),
        Step("clawback", "Clawback (refunds)", figures.clawback, "term"),
        Step("net", "Net", figures.net, "subtotal", "gross − fee + clawback"),
        Step("brought_forward", "Brought forward", figures.brought_forward, "term"),
    ]
    if figures.carry:
        lines.append(Step("carry", "Negative balance carried to the next payout", -figures.carry, "term"))
    lines.append(Step("amount", "Amount transferred", figures.amount, "total",
                      "net + brought forward" + (" + carried" if figures.carry else "")))
    return lines


def adds_up(lines: list[Step]) -> bool:
    """Each subtotal and total is the sum of the terms above it."""
    running = 0
    for line in lines:
        if line.is_sum and line.amount != running:
            return False
        running = line.amount if line.is_sum else running + line.amount
    return True
