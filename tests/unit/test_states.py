"""Explicit state machines: only the transitions in the table are allowed."""
from __future__ import annotations

import itertools

import pytest

from aggregator.errors import Conflict, DomainError, describe
from aggregator.states import InvalidTransition, StateMachine, machine

#: The invoice life cycle from the style guide: draft -> open -> paid | uncollectible | void.
INVOICE = machine("invoice", {
    "draft": {"open", "void"},
    "open": {"paid", "uncollectible", "void"},
    "uncollectible": {"paid", "void"},
    "paid": set(),
    "void": set(),
})

ALLOWED = {
    ("draft", "open"), ("draft", "void"),
    ("open", "paid"), ("open", "uncollectible"), ("open", "void"),
    ("uncollectible", "paid"), ("uncollectible", "void"),
}
EVERY_PAIR = list(itertools.product(sorted(INVOICE.states), repeat=2))


def test_the_states_are_the_keys_of_the_table():
    assert INVOICE.states == {"draft", "open", "paid", "uncollectible", "void"}


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_a_transition_in_the_table_is_allowed_and_passes_the_check(current, target):
    assert INVOICE.allows(current, target)
    INVOICE.check(current, target)


@pytest.mark.parametrize(("current", "target"), [p for p in EVERY_PAIR if p not in ALLOWED])
def test_a_transition_not_in_the_table_is_refused(current, target):
    assert not INVOICE.allows(current, target)
    with pytest.raises(InvalidTransition):
        INVOICE.check(current, target)


@pytest.mark.parametrize("state", sorted(INVOICE.states))
def test_staying_in_the_same_state_is_not_a_transition_unless_listed(state):
    assert not INVOICE.allows(state, state)


def test_a_terminal_state_allows_nothing():
    for target in INVOICE.states:
        assert not INVOICE.allows("paid", target)
        assert not INVOICE.allows("void", target)


@pytest.mark.parametrize(("current", "target"), [("deleted", "open"), ("draft", "deleted"), ("", "")])
def test_an_unknown_state_is_neither_a_source_nor_a_target(current, target):
    assert not INVOICE.allows(current, target)
    with pytest.raises(InvalidTransition):
        INVOICE.check(current, target)


def test_the_refusal_names_the_machine_and_both_states():
    with pytest.raises(InvalidTransition, match="^A paid invoice cannot become draft.$") as refused:
        INVOICE.check("paid", "draft")
    assert refused.value.message == "A paid invoice cannot become draft."


def test_an_invalid_transition_is_a_conflict_with_its_own_code():
    error = InvalidTransition("A paid invoice cannot become draft.")
    assert isinstance(error, Conflict) and isinstance(error, DomainError)
    assert error.code == "invalid_state_transition"
    status, body = describe(error)
    assert status == 409
    assert body == {"type": "conflict", "code": "invalid_state_transition",
                    "message": "A paid invoice cannot become draft."}


@pytest.mark.parametrize(("target", "sources"), [
    ("paid", {"open", "uncollectible"}),
    ("void", {"draft", "open", "uncollectible"}),
    ("open", {"draft"}),
    ("uncollectible", {"open"}),
    ("draft", set()),
    ("deleted", set()),
])
def test_sources_are_the_states_from_which_a_target_may_be_reached(target, sources):
    assert INVOICE.sources(target) == frozenset(sources)


@pytest.mark.parametrize(("current", "target"), EVERY_PAIR)
def test_sources_agree_with_allows(current, target):
    assert (current in INVOICE.sources(target)) == INVOICE.allows(current, target)


def test_machine_freezes_the_table_it_is_given():
    table = {"pending": {"invoiced"}, "invoiced": set()}
    bill = machine("bill", table)
    table["pending"].add("cancelled")
    table["cancelled"] = set()
    assert not bill.allows("pending", "cancelled")
    assert bill.states == {"pending", "invoiced"}
    assert all(isinstance(targets, frozenset) for targets in bill.transitions.values())


def test_a_state_machine_is_an_immutable_value():
    with pytest.raises(AttributeError):
        INVOICE.name = "bill"  # type: ignore[misc]
    assert machine("bill", {"pending": {"cancelled"}}) == StateMachine("bill", {"pending": frozenset({"cancelled"})})


def test_the_collection_states_are_the_ones_the_invoice_documents():
    from aggregator.consolidate.models import COLLECTION
    from aggregator.payments.transitions import COLLECTION_STATES

    assert COLLECTION_STATES.states == set(COLLECTION)
    assert COLLECTION_STATES.initial == "scheduled"
    # only a new payment method puts a waiting invoice back on the schedule
    assert COLLECTION_STATES.sources("scheduled") == {"payment_method_required", "action_required", "past_due"}
