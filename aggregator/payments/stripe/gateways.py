"""`StripeGateways`: each tenant's payment gateway in each mode, built from its settings: a
`StripeGateway` (gateway.py) when it has a Stripe key, else `ManualGateway`. Kept apart from
the gateway so that a process imports the Stripe SDK (about half a second) only when a tenant
first needs it."""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from ...errors import InvalidInput
from ...outbound.addresses import UnacceptableUrl, check_url
from ..gateway import MANUAL, REQUEST_TIMEOUT, PaymentGateway
from ..transfers import NoTransfers, Transfers

if TYPE_CHECKING:
    from .gateway import StripeGateway

log = logging.getLogger("aggregator.payments.gateway")


class StripeGateways:
    """Builds the gateway of a tenant in a mode from its settings (ManualGateway: manual collection),
    one StripeClient per key and API address, shared by the threads of a charge run.

    The Stripe API address is the operator's (`api_base`, AGGREGATOR_STRIPE_API_BASE: localstripe
    in development and tests; None: Stripe itself), for every tenant. A tenant's own test-mode
    address (`stripe_api_base`) is used only if the operator allows it (`tenant_api_base`,
    AGGREGATOR_STRIPE_TENANT_API_BASE=1), and then it is checked as webhook addresses are: when
    set (`check_tenant_api_base`) and at every connection, loopback, private and link-local
    addresses refused unless `allow_private` (AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1)."""

    def __init__(self, vault, *, timeout: float = REQUEST_TIMEOUT, api_base: str | None = None,
                 tenant_api_base: bool = False, allow_private: bool = False):
        self.vault, self.timeout = vault, timeout
        self.api_base, self.tenant_api_base, self.allow_private = api_base, tenant_api_base, allow_private
        self._cache: dict[tuple[str, str | None, bool | None], StripeGateway] = {}
        self._lock = threading.Lock()

    def check_tenant_api_base(self, url: str) -> None:
        """Refuse a tenant's own Stripe API address (InvalidInput on `stripe_api_base`) unless the
        operator allows them and it passes the webhook address rules (as written; its name is
        resolved and checked again at every connection)."""
        if not self.tenant_api_base:
            raise InvalidInput.on("stripe_api_base", "The operator has not enabled a tenant's own Stripe API "
                                  "address: Stripe requests go to Stripe (or the operator's address).",
                                  "tenant_api_base_disabled")
        try:
            check_url(url, allow_private=self.allow_private, what="Stripe requests are")
        except UnacceptableUrl as exc:
            raise InvalidInput.on("stripe_api_base", str(exc), "url_not_allowed") from None

    def _address(self, settings) -> tuple[str | None, bool | None]:
        """(the API address, the address check: None for the operator's or Stripe's)."""
        if settings.stripe_api_base and not settings.livemode:
            if self.tenant_api_base:
                return settings.stripe_api_base, self.allow_private
            log.warning("tenant %s: its stripe_api_base is ignored (AGGREGATOR_STRIPE_TENANT_API_BASE is off)",
                        settings.tenant_id)
        return self.api_base, None

    def for_settings(self, settings) -> PaymentGateway:
        if not settings.stripe_secret_key:
            return MANUAL
        key = self.vault.unseal(settings.stripe_secret_key)
        api_base, allow_private = self._address(settings)
        cache_key = (key, api_base, allow_private)
        with self._lock:
            cached = self._cache.get(cache_key)
            if cached is None:
                from .gateway import StripeGateway  # the SDK is imported with the first tenant that uses it

                cached = self._cache[cache_key] = StripeGateway(key, api_base, timeout=self.timeout,
                                                                allow_private=allow_private)
        return cached

    def transfers_for(self, settings) -> Transfers:
        """The Connect transfers of a tenant in a mode (payouts' port): its gateway's, or none."""
        gateway = self.for_settings(settings)
        return NoTransfers() if gateway is MANUAL else gateway.transfers
