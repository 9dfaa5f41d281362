"""The Stripe adapter: the only code that imports `stripe`. `client` (the SDK's client on a
urllib3 transport, errors, and `send_idempotently`: look up first, send with the key, back off,
look up again), `charges`, `refunds`, `transfers` (Connect, payouts' port), `webhooks` (the
signature check), assembled in `gateway`."""
from __future__ import annotations

from .gateway import StripeGateway, StripeGateways
from .transfers import StripeTransfers

__all__ = ["StripeGateway", "StripeGateways", "StripeTransfers"]
