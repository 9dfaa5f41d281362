"""localstripe (PyPI; GPL, so it runs as a separate test-only server and is never imported): a
stateful fake of Stripe's API, started on a free port with --from-scratch.

Measured (issue 9): it implements Customers, PaymentMethods (attach), PaymentIntents (create with
confirm and off_session, retrieve, list without filters: it refuses `customer`), Refunds and
signed webhooks; card 4242… succeeds, 4000000000000341 attaches then declines (card_declined,
no decline_code, no payment_intent on the error), 4000002500003155 answers requires_action. It
ignores Idempotency-Key, so "never twice" is proven with our own payment rows."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import stripe

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000341"
CARD_3DS = "4000002500003155"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        executable = shutil.which("localstripe", path=str(Path(sys.executable).parent)) or "localstripe"
        self.process = subprocess.Popen([executable, "--port", str(self.port), "--from-scratch"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("localstripe did not start")
                time.sleep(0.1)
        self.client = stripe.StripeClient("sk_test_localstripe", base_addresses={"api": self.url},
                                          max_network_retries=0)

    def customer_with_card(self, number: str = CARD_OK) -> tuple[str, str]:
        """A Stripe customer with a card attached -> (cus_…, pm_…)."""
        customer = self.client.v1.customers.create(params={"email": "billing@example.com"})
        method = self.client.v1.payment_methods.create(params={
            "type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
        self.client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
        return customer.id, method.id

    def payment_intents(self) -> list:
        """Every PaymentIntent it holds (paging through its unfiltered list)."""
        found, after = [], None
        while True:
            params = {"limit": 100, **({"starting_after": after} if after else {})}
            page = self.client.v1.payment_intents.list(params=params)
            found += page.data
            if not page.has_more or not page.data:
                return found
            after = page.data[-1].id

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
