"""The gateway against the tests' own request-checking peer: the exact request, and outcomes
that are unknown (500s, 429s, dropped connections, slow answers) resolved by lookup, never by a
second PaymentIntent; a request is sent again, with the same idempotency key, only when the peer
has no record of it."""
from __future__ import annotations

import pytest

from aggregator.payments.gateway import Charge, StripeGateway
from tests.stripe_peer import PeerServer


@pytest.fixture
def peer():
    server = PeerServer()
    yield server
    server.stop()


def _charge(payment_id: str = "pay_1") -> Charge:
    return Charge(payment_id=payment_id, idempotency_key=f"payment-{payment_id}", amount=12000, currency="AUD",
                  customer="cus_A", payment_method="pm_A",
                  metadata={"tenant": "ten_1", "mode": "test", "invoice_id": "inv_1", "invoice_number": "INV-1",
                            "payment_id": payment_id})


def _gateway(peer, timeout: float = 5.0) -> StripeGateway:
    return StripeGateway("sk_test_peer", peer.url, timeout=timeout, sleep=lambda s: None)


def test_a_charge_is_one_request_of_the_exact_shape(peer):
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded" and outcome.requests == 1
    (create,) = peer.peer.creates()
    assert create.idempotency_key == "payment-pay_1" and create.authorization == "Bearer sk_test_peer"
    assert create.form == {"amount": "12000", "currency": "aud", "customer": "cus_A", "payment_method": "pm_A",
                           "off_session": "true", "confirm": "true", "metadata": {
                               "tenant": "ten_1", "mode": "test", "invoice_id": "inv_1", "invoice_number": "INV-1",
                               "payment_id": "pay_1"}}
    assert peer.peer.problems == []


@pytest.mark.parametrize("failure", ["500_after", "drop_after"])
def test_an_answer_lost_after_the_charge_is_found_by_lookup_not_charged_again(peer, failure):
    peer.peer.fail.append(failure)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded"
    assert len(peer.peer.intents) == 1 and len(peer.peer.creates()) == 1
    assert outcome.payment_intent_id in peer.peer.intents
    lookups = [s for s in peer.peer.seen if s.method == "GET"]
    assert lookups and lookups[0].form.get("customer") == "cus_A"


def test_a_slow_answer_is_an_unknown_outcome_resolved_by_lookup(peer):
    peer.peer.fail.append("slow_after")
    peer.peer.slow_seconds = 2.0
    outcome = _gateway(peer, timeout=0.5).charge(_charge())
    assert outcome.status == "succeeded" and len(peer.peer.intents) == 1 and len(peer.peer.creates()) == 1


@pytest.mark.parametrize("failure", ["500", "429"])
def test_a_request_the_peer_never_acted_on_is_sent_again_with_the_same_key(peer, failure):
    peer.peer.fail.append(failure)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded" and len(peer.peer.intents) == 1
    keys = [s.idempotency_key for s in peer.peer.creates()]
    assert keys == ["payment-pay_1", "payment-pay_1"]


def test_a_peer_that_never_answers_leaves_the_outcome_unknown(peer):
    peer.peer.fail.extend(["500"] * 10)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "unknown"
    assert len(peer.peer.intents) == 0 and {s.idempotency_key for s in peer.peer.creates()} == {"payment-pay_1"}


def test_resuming_an_attempt_looks_it_up_before_sending_it(peer):
    gateway = _gateway(peer)
    first = gateway.charge(_charge())
    resumed = gateway.charge(_charge(), resume=True)  # a crash after the call, before the commit
    assert resumed.status == "succeeded" and resumed.payment_intent_id == first.payment_intent_id
    assert len(peer.peer.creates()) == 1
