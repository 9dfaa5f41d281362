"""The payment gateway port: what payments asks of a gateway, and the gateways there are.

`PaymentGateway` is what a charge run, a refund and Stripe's webhooks need of a gateway: turn
one attempt (a payment row already committed, whose id makes the idempotency key) into an
`Outcome`, never deciding what it means for an invoice. Two implement it:

* the Stripe adapter (`payments/stripe/`, the only code that imports `stripe`): charges,
  refunds, webhooks, and Connect transfers (payouts' own port, `payments/transfers.py`);
* `ManualGateway`: manual collection, for a tenant without Stripe settings in a mode. It
  charges nothing (an invoice waits for a payment the platform records: a bank transfer, cash,
  a check) and learns nothing: an attempt or refund left pending from a time the tenant had
  Stripe settings stays unknown until they are back.

`PaymentGateways` hands out the gateway of a tenant in a mode (the app's `Adapters.payments`).

No answer's words are ever passed on: an outcome's message is a `failures.reason`."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from ..consolidate.issued import has_card
from .transfers import Transfers

#: How many times an attempt whose outcome is unknown is looked up (and, if the gateway has no
#: record of it, sent again) before it is left pending for a later run.
RESOLVE_TRIES = 3
REQUEST_TIMEOUT = 30.0  # seconds; a slower answer is an unknown outcome
DEFAULT_CONCURRENCY = 10
#: What an outcome says when no gateway could learn it (manual collection).
NOT_CONFIGURED = "Stripe is not configured."

Pace = Callable[[], None]


def _no_pace() -> None:
    return None


class GatewayMisconfigured(Exception):
    """The gateway refused our credentials or our account's permissions, or its address is one
    requests are not sent to: nothing was charged, and nothing will be until the settings are
    fixed (the attempt stays pending). Its text is a `failures.reason`."""


@dataclass(frozen=True)
class Charge:
    """One attempt, as the gateway needs it."""

    payment_id: str
    idempotency_key: str
    amount: int  # in the gateway's units for the currency (money.to_stripe_amount)
    currency: str  # ISO code, upper case
    customer: str
    payment_method: str
    metadata: Mapping[str, str]


@dataclass
class Outcome:
    """What became of an attempt. `status`: succeeded, failed, requires_action, canceled (an
    attempt superseded before the customer authenticated it), pending (the gateway is still
    processing: a webhook settles it), unknown (not learned: stays pending)."""

    status: str
    payment_intent_id: str | None = None
    charge_id: str | None = None
    gateway_status: str | None = None
    failure_code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    requests: int = 0
    amount: int | None = None  # the gateway's amount, in its units (refund outcomes)
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class RefundRequest:
    refund_id: str
    idempotency_key: str
    payment_intent_id: str
    amount: int  # gateway units
    reason: str | None
    metadata: Mapping[str, str]


class PaymentGateway(Protocol):
    """A tenant's payment gateway in one mode."""

    name: str
    #: Whether it charges a customer's payment method on file (False: manual collection).
    charges_cards: bool

    def charge(self, charge: Charge, *, resume: bool = False, payment_intent_id: str | None = None,
               pace: Pace = _no_pace, found: Any = None) -> Outcome:
        """Send the attempt (`resume`: it may have been sent before: look it up first;
        `found`: its record, already looked up by find_intents)."""

    def cancel(self, payment_intent_id: str, pace: Pace = _no_pace) -> Outcome:
        """Cancel an attempt awaiting the customer's authentication."""

    def find_intents(self, charges: list[Charge], pace: Pace = _no_pace) -> tuple[dict[str, Any], int]:
        """The records of attempts that may have been sent, together. -> ({payment id: record}, requests)."""

    def refund(self, request: RefundRequest, *, resume: bool = False, refund_id: str | None = None,
               pace: Pace = _no_pace) -> Outcome:
        """Refund (part of) a charge, idempotently."""


class PaymentGateways(Protocol):
    """The gateways of every tenant and mode (the app's `Adapters.payments`)."""

    def for_settings(self, settings: Any) -> PaymentGateway:
        """The gateway of a tenant in a mode (`ManualGateway` without Stripe settings)."""

    def transfers_for(self, settings: Any) -> Transfers:
        """The Connect transfers of a tenant in a mode (payouts' port)."""

    def check_tenant_api_base(self, url: str) -> None:
        """Refuse a tenant's own API address the operator does not allow (InvalidInput)."""


class ManualGateway:
    """Manual collection: no gateway. It charges nothing (`charges_cards` is False: the charge
    run leaves the invoice waiting for a recorded payment) and cannot learn the outcome of an
    attempt or refund sent when the tenant had Stripe settings (`unknown`: it stays pending)."""

    name = "manual"
    charges_cards = False

    def charge(self, charge: Charge, *, resume: bool = False, payment_intent_id: str | None = None,
               pace: Pace = _no_pace, found: Any = None) -> Outcome:
        return Outcome("unknown", message=NOT_CONFIGURED)

    def cancel(self, payment_intent_id: str, pace: Pace = _no_pace) -> Outcome:
        return Outcome("unknown", message=NOT_CONFIGURED)

    def find_intents(self, charges: list[Charge], pace: Pace = _no_pace) -> tuple[dict[str, Any], int]:
        return {}, 0

    def refund(self, request: RefundRequest, *, resume: bool = False, refund_id: str | None = None,
               pace: Pace = _no_pace) -> Outcome:
        return Outcome("unknown", message=NOT_CONFIGURED)


MANUAL = ManualGateway()


def charges_automatically(gateway: PaymentGateway, customer: Any) -> bool:
    """Whether a charge run charges this customer's invoices: the gateway charges cards (the
    tenant has Stripe settings in the mode) and the customer has a Stripe customer and payment
    method. Otherwise an invoice waits for a payment the platform records (a bank transfer)."""
    return gateway.charges_cards and has_card(customer)


class RateLimiter:
    """At most `rate` calls per second across threads (calls are spaced 1/rate apart)."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep):
        self.interval, self._sleep = 1.0 / rate, sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            self._sleep(slot - now)


def default_rate(livemode: bool) -> int:
    """Stripe's documented pace: about 100 write requests a second live, 25 in test mode."""
    return 100 if livemode else 25
