"""localstripe (PyPI; GPL, so it runs as a separate test-only server and is never imported): a
stateful fake of Stripe's API, started on a free port with --from-scratch by the product's own
launcher (`aggregator.payments.stripe.localstripe`, which the demo uses too).

Measured (issue 9): it implements Customers, PaymentMethods (attach), PaymentIntents (create with
confirm and off_session, retrieve, list without filters: it refuses `customer`), Refunds and
signed webhooks; card 4242… succeeds, 4000000000000341 attaches then declines (card_declined,
no decline_code, no payment_intent on the error), 4000002500003155 answers requires_action. It
ignores Idempotency-Key, so "never twice" is proven with our own payment rows."""
from __future__ import annotations

from aggregator.payments.stripe import localstripe
from aggregator.payments.stripe.localstripe import CARD_3DS, CARD_DECLINED, CARD_OK, free_port  # noqa: F401


class LocalStripe(localstripe.LocalStripe):
    def __init__(self):
        program = localstripe.executable()
        if program is None:
            raise RuntimeError("localstripe is not installed next to this Python (pip install -e '.[test]')")
        super().__init__(program)

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
