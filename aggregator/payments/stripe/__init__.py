"""The Stripe adapter: the only code that imports `stripe`. `client` (the SDK's client on a
urllib3 transport, errors, and `send_idempotently`: look up first, send with the key, back off,
look up again), `charges`, `refunds`, `transfers` (Connect, payouts' port), `webhooks` (the
signature check), assembled in `gateway`; `gateways` hands each tenant its own. `answers` reads
Stripe's answers without the SDK.

The SDK is imported when a tenant first charges, refunds or transfers, not when a process
starts (it takes about half a second): `StripeGateway` and `StripeTransfers` are loaded from
this package on first use."""
from __future__ import annotations

from typing import Any

from .gateways import StripeGateways

__all__ = ["StripeGateway", "StripeGateways", "StripeTransfers"]


def __getattr__(name: str) -> Any:
    if name == "StripeGateway":
        from .gateway import StripeGateway

        return StripeGateway
    if name == "StripeTransfers":
        from .transfers import StripeTransfers

        return StripeTransfers
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
