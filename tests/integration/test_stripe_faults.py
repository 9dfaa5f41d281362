"""Stripe misbehaving at the edge, against localstripe (which ignores idempotency keys, so only
a lookup before any resend keeps a charge to one PaymentIntent) behind a fault-injecting proxy
(tests/stripe_faults.py): slow answers, 500s, 429s and answers dropped after Stripe acted. Each
charge ends known, once: one PaymentIntent per payment attempt, never two."""
from __future__ import annotations

from collections import Counter

import pytest

from aggregator.payments.gateway import Charge
from aggregator.payments.stripe import StripeGateway
from tests.localstripe_server import CARD_OK
from tests.stripe_faults import FaultProxy

pytestmark = [pytest.mark.slow]

TIMEOUT = 3.0  # the client's wait: localstripe on a loaded machine may take a second


@pytest.fixture
def proxy(localstripe):
    server = FaultProxy(localstripe.url)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def card(localstripe) -> tuple[str, str]:
    return localstripe.customer_with_card(CARD_OK, "faults@example.com")


def _charge(card, payment_id: str) -> Charge:
    return Charge(payment_id=payment_id, idempotency_key=f"payment-{payment_id}", amount=4200, currency="AUD",
                  customer=card[0], payment_method=card[1],
                  metadata={"tenant": "ten_faults", "mode": "test", "invoice_id": "inv_f", "invoice_number": "INV-F",
                            "payment_id": payment_id})


def _intents_of(localstripe, payment_id: str) -> int:
    return Counter(i.metadata.to_dict().get("payment_id") for i in localstripe.payment_intents()
                   if i.metadata)[payment_id]


@pytest.mark.parametrize("faults", [["500"], ["429"], ["429", "429", "500"], ["500_after"], ["drop_after"],
                                    ["slow_after"]])
def test_each_fault_ends_in_one_payment_intent(localstripe, proxy, card, faults, request):
    payment_id = f"pay_{request.node.callspec.id.replace('-', '_')}"
    proxy.faults.extend(faults)
    proxy.slow_seconds = TIMEOUT + 1.5
    gateway = StripeGateway("sk_test_faults", proxy.url, timeout=TIMEOUT, sleep=lambda s: None)
    outcome = gateway.charge(_charge(card, payment_id))
    for _ in range(3):  # each later run resumes it: looked up before anything is sent
        if outcome.status != "unknown":
            break
        outcome = gateway.charge(_charge(card, payment_id), resume=True)
    assert outcome.status == "succeeded", outcome
    assert [f for f, _ in proxy.applied] == faults
    assert _intents_of(localstripe, payment_id) == 1


def test_a_resumed_attempt_whose_intent_was_made_is_found_not_charged_again(localstripe, proxy, card):
    """The worst case: Stripe acted, the answer was lost, and the process died before recording
    anything; the next run, resuming, finds the intent by its metadata."""
    proxy.faults.append("drop_after")
    gateway = StripeGateway("sk_test_faults", proxy.url, timeout=TIMEOUT, sleep=lambda s: None)
    first = gateway.charge(_charge(card, "pay_resumed"))
    resumed = StripeGateway("sk_test_faults", proxy.url, timeout=TIMEOUT, sleep=lambda s: None).charge(
        _charge(card, "pay_resumed"), resume=True)
    assert resumed.status == "succeeded" and _intents_of(localstripe, "pay_resumed") == 1, (first, resumed)
