"""The Stripe adapter assembled: `StripeGateway`, a PaymentGateway: charges and refunds on one
StripeClient per tenant key and API address, with its Connect `transfers` beside it
(`gateways.StripeGateways` hands each tenant and mode its own)."""
from __future__ import annotations

import time
from typing import Callable

from ..gateway import REQUEST_TIMEOUT
from .charges import StripeCharges
from .client import client
from .refunds import StripeRefunds
from .transfers import StripeTransfers


class StripeGateway(StripeCharges, StripeRefunds):
    name = "stripe"
    charges_cards = True

    def __init__(self, secret_key: str, api_base: str | None = None, *, timeout: float = REQUEST_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, backoff: float = 0.5,
                 allow_private: bool | None = None):
        """`allow_private`: None for Stripe or the operator's address; a tenant's own address is
        checked when connecting, private addresses allowed only if this is True (Urllib3Client)."""
        self.client = client(secret_key, api_base, timeout, allow_private)
        self._sleep, self._backoff = sleep, backoff
        self.transfers = StripeTransfers(self.client, sleep=sleep, backoff=backoff)
