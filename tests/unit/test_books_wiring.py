"""The books hear every fact that moves money: wire() subscribes the ledger's handlers, every
fact an area publishes has a subscriber, and a fact nobody hears is refused, not lost."""
import collections.abc
import importlib.util
import inspect
import pkgutil
import types
import typing
from dataclasses import is_dataclass
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

import aggregator
from aggregator import bus, wiring
from aggregator.consolidate.facts import InvoicesFinalized, InvoicesFinalizedAtClose, InvoiceVoided, InvoiceWrittenOff
from aggregator.ledger import handlers
from aggregator.payments.facts import PaymentsSucceeded, RefundSucceeded
from aggregator.payouts.facts import PayoutPaid

BOOKS = {
    InvoicesFinalizedAtClose: handlers.post_close_chunk,
    InvoicesFinalized: handlers.post_finalized,
    InvoiceWrittenOff: handlers.post_write_off,
    InvoiceVoided: handlers.post_voided,
    PaymentsSucceeded: handlers.post_payments,
    RefundSucceeded: handlers.post_refund,
    PayoutPaid: handlers.post_payout,
}


def _published_facts() -> list[type[bus.Fact]]:
    """Every Fact class in an area's facts.py."""
    found = []
    for package in pkgutil.iter_modules(aggregator.__path__):
        if package.ispkg and importlib.util.find_spec(f"aggregator.{package.name}.facts"):
            module = importlib.import_module(f"aggregator.{package.name}.facts")
            found += [cls for _, cls in inspect.getmembers(module, inspect.isclass)
                      if issubclass(cls, bus.Fact) and cls.__module__ == module.__name__]
    return found


def test_wire_subscribes_the_ledger_to_each_fact_that_moves_money():
    wiring.wire()
    for fact, handler in BOOKS.items():
        assert handler in bus.handlers_of(fact), fact.__name__


def test_every_fact_an_area_publishes_has_a_subscriber_once_wired():
    wiring.wire()
    facts = _published_facts()
    assert set(BOOKS) <= set(facts)
    assert [fact.__name__ for fact in facts if not bus.handlers_of(fact)] == []


PLAIN = (str, int, bool, date, datetime, Decimal, type(None))


def _plain(hint) -> bool:
    """A plain value: a scalar, a frozen dataclass of plain values (revenue's Share, InvoiceParts,
    a fact's own parts), or a tuple, dict or union of them; never a database row."""
    if hint in PLAIN:
        return True
    if typing.get_origin(hint) in (tuple, dict, collections.abc.Mapping, typing.Union, types.UnionType):
        return all(_plain(arg) for arg in typing.get_args(hint) if arg is not Ellipsis)
    if is_dataclass(hint) and hint.__dataclass_params__.frozen:
        return all(_plain(h) for h in typing.get_type_hints(hint).values())
    return False


def test_facts_are_frozen_plain_values_never_rows():
    for fact in _published_facts():
        assert fact.__dataclass_params__.frozen, fact.__name__
        assert {name: hint for name, hint in typing.get_type_hints(fact).items() if not _plain(hint)} == {}, \
            fact.__name__


def test_a_fact_published_before_wiring_is_refused_not_lost():
    paid = PayoutPaid("ten_1", False, "po_1", "prov_1", "AUD", 100, datetime(2026, 12, 1, tzinfo=timezone.utc))
    with bus.subscriptions(without=list(BOOKS.values())):
        with pytest.raises(bus.Unheard, match="PayoutPaid has no subscriber"):
            bus.publish(paid)
