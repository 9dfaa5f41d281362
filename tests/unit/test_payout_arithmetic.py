"""A payout's arithmetic (payouts/arithmetic.py), the same on the statement, the report and the
finance page: for any payout the model allows, each subtotal is the sum of the lines above it."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from aggregator.payouts import arithmetic
from aggregator.payouts.report_service import ARITHMETIC_COLUMNS, arithmetic_cells

amounts = st.integers(-10**9, 10**9)


@st.composite
def payouts(draw):
    """Figures as build_payouts writes them: gross = charges + credits, net = gross - fee +
    clawback, amount = max(0, net + brought_forward), carry = min(0, net + brought_forward)."""
    charges, credits = draw(st.integers(0, 10**9)), draw(st.integers(-10**9, 0))
    fee, clawback, brought = draw(amounts), draw(st.integers(-10**9, 0)), draw(amounts)
    gross = charges + credits
    net = gross - fee + clawback
    return SimpleNamespace(gross=gross, credits=credits, fee=fee, clawback=clawback, net=net, brought_forward=brought,
                           amount=max(0, net + brought), carry=min(0, net + brought))


@given(payouts())
def test_each_subtotal_is_the_sum_of_the_lines_above_it(payout):
    steps = arithmetic.steps(payout)
    assert arithmetic.adds_up(steps)
    assert [s.key for s in steps if s.is_sum] == ["gross", "net", "amount"]
    assert (steps[0].amount, steps[1].amount) == (payout.gross - payout.credits, payout.credits)
    assert ("carry" in [s.key for s in steps]) == (payout.carry != 0)


@given(payouts())
def test_the_reports_columns_are_the_same_arithmetic_from_left_to_right(payout):
    cells = arithmetic_cells(payout, lambda minor: minor)
    running = 0
    for key, _ in ARITHMETIC_COLUMNS:
        if cells[key]["sum"]:
            assert cells[key]["amount"] == running, key
            running = cells[key]["amount"]
        else:
            running += cells[key]["amount"]


def test_a_wrong_sum_does_not_add_up():
    steps = arithmetic.steps(SimpleNamespace(gross=6300, credits=-500, fee=1890, clawback=0, net=3910,
                                             brought_forward=0, amount=3910, carry=0))
    assert not arithmetic.adds_up(steps)  # 39.10: the credit taken off twice
