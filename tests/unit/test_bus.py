from dataclasses import dataclass

import pytest

from aggregator import bus


@dataclass(frozen=True)
class Happened(bus.Fact):
    amount: int


@dataclass(frozen=True)
class HappenedTwice(Happened):
    pass


def test_a_fact_reaches_its_subscribers_and_those_of_its_bases_in_order():
    seen = []
    with bus.subscriptions({bus.Fact: [lambda f: seen.append(("any", f.amount))],
                            Happened: [lambda f: seen.append(("happened", f.amount))]}):
        bus.publish(HappenedTwice(5))
        bus.publish(Happened(7))
    assert seen == [("any", 5), ("happened", 5), ("any", 7), ("happened", 7)]
    with pytest.raises(bus.Unheard):  # the subscriptions were restored: none
        bus.publish(Happened(9))
    assert len(seen) == 4


def test_subscribing_twice_is_one_subscription_and_a_failing_handler_propagates():
    calls = []

    def handler(fact):
        calls.append(fact)
        raise RuntimeError("books do not balance")

    with bus.subscriptions():
        bus.subscribe(Happened, handler)
        bus.subscribe(Happened, handler)
        with pytest.raises(RuntimeError):
            bus.publish(Happened(1))
    assert calls == [Happened(1)]
