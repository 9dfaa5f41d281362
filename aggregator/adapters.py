"""The adapters: everything at the edge of the service (documents, storage, email, webhooks,
clocks, the payment gateway), built once by the app factory and handed to use cases as
one object instead of one positional argument each."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .clock import Clocks

if TYPE_CHECKING:
    from .payments.gateway import PaymentGateways


@dataclass(frozen=True)
class Adapters:
    clocks: Clocks
    renderer: Any  # consolidate.render.InvoiceRenderer
    storage: Any  # storage.LocalStorage
    payments: PaymentGateways  # a tenant's payment gateway in a mode (Stripe's, or ManualGateway)
    mailer: Any = None  # mail.mailer.Mailer (None: email is not configured in this process)
    webhooks: Any = None  # webhooks.sender.WebhookSender
    vault: Any = None  # vault.Vault: secrets sealed at rest (webhook signing secrets, Stripe keys)

    def replacing(self, **changes) -> "Adapters":
        """The same adapters with some replaced (tests, a CLI option)."""
        return replace(self, **changes)


def current() -> Adapters:
    """The adapters of the running Flask app."""
    from flask import current_app

    return current_app.extensions["aggregator.adapters"]
