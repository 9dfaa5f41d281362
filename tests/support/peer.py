"""The tests' own request-checking Stripe peer (tests/stripe_peer.py) started for a test, and a
gateway and a charge for it."""
from __future__ import annotations

import pytest

from aggregator.payments.gateway import Charge
from aggregator.payments.stripe import StripeGateway
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
