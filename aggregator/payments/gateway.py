"""The payment gateway adapter: Stripe through the official SDK (a `StripeClient` per tenant and
mode, never the global `stripe.api_key`), or none (manual collection: bank transfers and other
payments the platform records).

The gateway never decides what a charge means for an invoice; it turns one attempt (a payment
row already committed, whose id makes the idempotency key) into an `Outcome`. An outcome it
cannot know (a dropped connection, a timeout, a Stripe 5xx or 429) is resolved by looking the
PaymentIntent up (by id, or by listing the customer's PaymentIntents and matching the payment
id in their metadata), never by creating another; the request is sent again, with the same
idempotency key, only when Stripe has no record of it. When even that cannot be learned, the
outcome is `unknown` and the payment stays pending, to be resolved the same way later.

Provider payouts are Stripe Connect Transfers (`create_transfer`), with the same rule: a transfer
whose outcome is unknown is found again (`find_transfer`: its group's transfers, matched on
metadata.payout and destination), never sent under another key."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import stripe
import urllib3

log = logging.getLogger(__name__)

#: Answers that leave a request's outcome unknown (Stripe may or may not have acted on it).
UNKNOWN_ERRORS = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)

#: How many times an attempt whose outcome is unknown is looked up (and, if Stripe has no
#: record of it, sent again) before it is left pending for a later run.
RESOLVE_TRIES = 3
REQUEST_TIMEOUT = 30.0  # seconds; a slower answer is an unknown outcome


class GatewayMisconfigured(Exception):
    """The gateway refused our credentials or our account's permissions: nothing was charged,
    and nothing will be until an operator fixes the settings (the attempt stays pending)."""


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


@dataclass(frozen=True)
class TransferRequest:
    """One provider payout, as a Stripe Connect Transfer from the platform's balance to the
    provider's connected account."""

    payout_id: str  # our payout row id (po_…)
    idempotency_key: str  # derived from the payout row, saved before the call
    amount: int  # minor units, > 0
    currency: str  # ISO 4217, upper case (Stripe is sent it lower case)
    destination: str  # the provider's connected account, acct_…
    transfer_group: str  # the payout run id: find_transfer lists the group
    source_transaction: str | None  # the charge (ch_…) that funds the payout, when a single one does
    metadata: dict[str, str]  # payout, provider, tenant, period…; `payout` is always set to payout_id


@dataclass(frozen=True)
class TransferOutcome:
    """What became of a transfer. `status`: paid (Stripe made the transfer), failed (Stripe
    refused it for good: no such destination, insufficient balance, …), unknown (no answer, a
    5xx, a 429 after retries, an idempotency key reused with other parameters: resolve it with
    find_transfer, never by another key), missing (find_transfer only: Stripe has no such
    transfer, so it may be sent again with the same key)."""

    status: str
    transfer_id: str | None
    failure_code: str | None
    failure_message: str | None
    requests: int  # HTTP requests made
    raw: dict | None = None


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


def _plain(obj: Any) -> dict:
    """A Stripe object as plain dicts (the SDK's objects are not dicts since v15)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj or {})


def _intent_outcome(intent: Any, requests: int) -> Outcome:
    """A PaymentIntent as an outcome."""
    intent = _plain(intent)
    status = intent.get("status")
    charge = intent.get("latest_charge")
    charge_id = charge if isinstance(charge, str) or charge is None else charge.get("id")
    error = intent.get("last_payment_error") or {}
    common = {"payment_intent_id": intent.get("id"), "charge_id": charge_id, "gateway_status": status,
              "requests": requests}
    if status == "succeeded":
        return Outcome("succeeded", **common)
    if status in ("requires_action", "requires_confirmation"):
        return Outcome("requires_action", message="The payment needs the customer's authentication.", **common)
    if status == "processing":
        return Outcome("pending", **common)
    if status == "canceled":
        return Outcome("canceled", message="The PaymentIntent was canceled.", **common)
    return Outcome("failed", failure_code=error.get("code") or status, decline_code=error.get("decline_code"),
                   message=error.get("message") or f"The PaymentIntent is {status}.", **common)


def _card_error_outcome(error: stripe.CardError, requests: int) -> Outcome:
    details = error.error
    intent = getattr(details, "payment_intent", None) if details is not None else None
    intent = _plain(intent) if intent is not None else None
    return Outcome("failed", payment_intent_id=intent.get("id") if intent else None,
                   charge_id=getattr(details, "charge", None) if details is not None else None,
                   gateway_status=intent.get("status") if intent else "card_error",
                   failure_code=error.code or "card_declined",
                   decline_code=getattr(details, "decline_code", None) if details is not None else None,
                   message=error.user_message or str(error), requests=requests)


class Urllib3Client(stripe.HTTPClient):
    """The SDK's HTTP transport on urllib3's thread-safe connection pool (keep-alive, TLS
    verified against the SDK's CA bundle), instead of its default `requests` session: the same
    requests and answers, at about half the CPU per call (measured by bench/charge.py: 1.0 ms
    against 1.9 ms per PaymentIntent create, most of our cost of a charge). A network failure
    or timeout is the SDK's APIConnectionError, as with its own clients."""

    name = "urllib3"

    def __init__(self, timeout: float, maxsize: int = 100):
        super().__init__()
        self._pool = urllib3.PoolManager(maxsize=maxsize, retries=False, timeout=urllib3.Timeout(total=timeout),
                                         cert_reqs="CERT_REQUIRED", ca_certs=stripe.ca_bundle_path)

    def request(self, method: str, url: str, headers, post_data=None, *, _usage=None):
        try:
            answer = self._pool.request(method.upper(), url, headers=dict(headers or {}), body=post_data,
                                        redirect=False)
        except urllib3.exceptions.SSLError as exc:
            raise stripe.APIConnectionError(f"Could not verify Stripe's TLS certificate: {exc}",
                                            should_retry=False) from exc
        except urllib3.exceptions.HTTPError as exc:  # refused, dropped, timed out: the outcome is unknown
            raise stripe.APIConnectionError(f"Network error: {type(exc).__name__}: {exc}", should_retry=True) from exc
        return answer.data, answer.status, answer.headers

    def close(self) -> None:
        self._pool.clear()


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None, *, timeout: float = REQUEST_TIMEOUT,
                 sleep: Callable[[float], None] = time.sleep, backoff: float = 0.5):
        addresses = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(secret_key, base_addresses=addresses, max_network_retries=0,
                                          http_client=Urllib3Client(timeout))
        self._sleep, self._backoff = sleep, backoff

    # --- charges --------------------------------------------------------------------------

    def charge(self, charge: Charge, *, resume: bool = False, payment_intent_id: str | None = None,
               pace: Callable[[], None] = lambda: None, found: Any = None) -> Outcome:
        """Create and confirm the attempt's PaymentIntent (off session). `resume`: the attempt may
        have been sent before (a pending payment found after a crash): look it up first.
        `found`: its PaymentIntent, already looked up (find_intents)."""
        if found is not None:
            return _intent_outcome(found, 0)
        requests = 0
        look_first = resume
        for tries in range(RESOLVE_TRIES + 1):
            if look_first:
                pace()
                try:
                    intent, calls = self._find_intent(charge, payment_intent_id)
                except UNKNOWN_ERRORS as exc:
                    requests += 1
                    return Outcome("unknown", message=f"Looking the attempt up failed: {_describe(exc)}",
                                   requests=requests)
                except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                    raise GatewayMisconfigured(_describe(exc)) from exc
                requests += calls
                if intent is not None:
                    return _intent_outcome(intent, requests)
                # Stripe has no record of it: (re)send it, with the same idempotency key
            if tries:
                self._sleep(self._backoff * 2 ** (tries - 1))
            requests += 1
            pace()
            try:
                intent = self.client.v1.payment_intents.create(params=self._intent_params(charge),
                                                               options={"idempotency_key": charge.idempotency_key})
            except stripe.CardError as exc:
                return _card_error_outcome(exc, requests)
            except UNKNOWN_ERRORS as exc:
                log.warning("charge %s: outcome unknown (%s); looking it up", charge.payment_id, _describe(exc))
                look_first = True
                continue
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise GatewayMisconfigured(_describe(exc)) from exc
            except stripe.InvalidRequestError as exc:  # no such customer or payment method, …
                return Outcome("failed", gateway_status="invalid_request", failure_code=exc.code or "invalid_request",
                               message=_describe(exc), requests=requests, extra={"param": getattr(exc, "param", None)})
            except stripe.IdempotencyError as exc:  # the key was used with other parameters: a defect
                return Outcome("unknown", message=_describe(exc), requests=requests)
            return _intent_outcome(intent, requests)
        return Outcome("unknown", message=f"No answer after {RESOLVE_TRIES + 1} tries.", requests=requests)

    def cancel(self, payment_intent_id: str, pace: Callable[[], None] = lambda: None) -> Outcome:
        """Cancel an attempt that awaits the customer's authentication, before the invoice is
        charged another way (a new payment method): -> `canceled`, or what became of it if it
        can no longer be canceled (the customer authenticated it meanwhile: `succeeded`), or
        `unknown` (no answer: tried again later)."""
        pace()
        try:
            intent = self.client.v1.payment_intents.cancel(payment_intent_id)
        except stripe.InvalidRequestError as exc:  # not cancelable any more: see what it is
            try:
                pace()
                intent = self.client.v1.payment_intents.retrieve(payment_intent_id)
            except UNKNOWN_ERRORS as lookup:
                return Outcome("unknown", message=_describe(lookup), requests=2)
            outcome = _intent_outcome(intent, 2)
            if outcome.status == "requires_action":  # refused for another reason: leave it be
                return Outcome("unknown", message=_describe(exc), requests=2)
            return outcome
        except UNKNOWN_ERRORS as exc:
            return Outcome("unknown", message=_describe(exc), requests=1)
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise GatewayMisconfigured(_describe(exc)) from exc
        return _intent_outcome(intent, 1)

    def _intent_params(self, charge: Charge) -> dict:
        return {"amount": charge.amount, "currency": charge.currency.lower(), "customer": charge.customer,
                "payment_method": charge.payment_method, "off_session": True, "confirm": True,
                "metadata": dict(charge.metadata)}

    def retrieve(self, payment_intent_id: str) -> Outcome:
        return _intent_outcome(self.client.v1.payment_intents.retrieve(payment_intent_id), 1)

    def _find_intent(self, charge: Charge, payment_intent_id: str | None) -> tuple[Any | None, int]:
        """The attempt's PaymentIntent: by id if known, else among the customer's PaymentIntents
        matched on metadata.payment_id. -> (it or None, requests made)"""
        if payment_intent_id:
            return self.client.v1.payment_intents.retrieve(payment_intent_id), 1
        found, calls = self.find_intents([charge])
        return found.get(charge.payment_id), calls

    def find_intents(self, charges: list[Charge], pace: Callable[[], None] = lambda: None) -> tuple[dict[str, Any], int]:
        """The PaymentIntents of attempts that may have been sent (a crashed run's), in one pass
        per customer rather than one per attempt: the customer's PaymentIntents, newest first,
        matched on metadata.payment_id. -> ({payment id: intent} for those found, requests made).
        Raises what the gateway raises (the caller falls back to looking each up)."""
        wanted = {c.payment_id for c in charges}
        found: dict[str, Any] = {}
        calls = 0
        for customer in sorted({c.customer for c in charges}):
            pace()
            calls += 1
            try:
                page = self.client.v1.payment_intents.list(params={"customer": customer, "limit": 100})
            except stripe.InvalidRequestError as exc:
                # A peer that cannot filter the list (localstripe does not take `customer`):
                # read it whole, once for every customer. Stripe itself takes it.
                if "Unexpected" not in str(exc):
                    raise
                return self._scan_all(wanted, pace, calls)
            while True:
                for intent in page.data:
                    payment_id = (_plain(intent).get("metadata") or {}).get("payment_id")
                    if payment_id in wanted:
                        found[payment_id] = intent
                if not page.has_more or not page.data or wanted <= found.keys():
                    break
                pace()
                calls += 1
                page = page.next_page()
        return found, calls

    def _scan_all(self, wanted: set[str], pace: Callable[[], None], calls: int) -> tuple[dict[str, Any], int]:
        found: dict[str, Any] = {}
        page = self.client.v1.payment_intents.list(params={"limit": 100})
        while True:
            calls += 1
            for intent in page.data:
                payment_id = (_plain(intent).get("metadata") or {}).get("payment_id")
                if payment_id in wanted:
                    found[payment_id] = intent
            if not page.has_more or not page.data or wanted <= found.keys():
                return found, calls
            pace()
            page = page.next_page()

    # --- refunds --------------------------------------------------------------------------

    def refund(self, request: RefundRequest, *, resume: bool = False, refund_id: str | None = None,
               pace: Callable[[], None] = lambda: None) -> Outcome:
        """Refund (part of) a PaymentIntent, idempotently: an unknown outcome is looked up among
        the PaymentIntent's refunds (metadata.refund_id) before it is sent again."""
        requests = 0
        look_first = resume
        for tries in range(RESOLVE_TRIES + 1):
            if look_first:
                pace()
                try:
                    found = self._find_refund(request, refund_id)
                except UNKNOWN_ERRORS as exc:
                    return Outcome("unknown", message=_describe(exc), requests=requests + 1)
                requests += 1
                if found is not None:
                    return _refund_outcome(found, requests)
            if tries:
                self._sleep(self._backoff * 2 ** (tries - 1))
            requests += 1
            params = {"payment_intent": request.payment_intent_id, "amount": request.amount,
                      "metadata": dict(request.metadata)}
            if request.reason in ("duplicate", "fraudulent", "requested_by_customer"):
                params["reason"] = request.reason
            pace()
            try:
                refund = self.client.v1.refunds.create(params=params,
                                                       options={"idempotency_key": request.idempotency_key})
            except UNKNOWN_ERRORS as exc:
                log.warning("refund %s: outcome unknown (%s); looking it up", request.refund_id, _describe(exc))
                look_first = True
                continue
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise GatewayMisconfigured(_describe(exc)) from exc
            except stripe.StripeError as exc:
                return Outcome("failed", failure_code=getattr(exc, "code", None) or "refund_failed",
                               message=_describe(exc), requests=requests)
            return _refund_outcome(refund, requests)
        return Outcome("unknown", message=f"No answer after {RESOLVE_TRIES + 1} tries.", requests=requests)

    def _find_refund(self, request: RefundRequest, refund_id: str | None):
        if refund_id:
            return self.client.v1.refunds.retrieve(refund_id)
        page = self.client.v1.refunds.list(params={"payment_intent": request.payment_intent_id, "limit": 100})
        for refund in page.auto_paging_iter():
            if (_plain(refund).get("metadata") or {}).get("refund_id") == request.refund_id:
                return refund
        return None

    # --- Connect transfers (provider payouts) ------------------------------------------------

    def create_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                        ) -> TransferOutcome:
        """Send one payout's Transfer, with its idempotency key. A 429 (Stripe did not act) is
        sent again with the same key, up to RESOLVE_TRIES times; any other unknown outcome is
        returned as `unknown` at once, for the caller to resolve with find_transfer."""
        params = {"amount": request.amount, "currency": request.currency.lower(),
                  "destination": request.destination, "transfer_group": request.transfer_group,
                  "metadata": {**request.metadata, "payout": request.payout_id}}
        if request.source_transaction:
            params["source_transaction"] = request.source_transaction
        requests = 0
        for tries in range(RESOLVE_TRIES + 1):
            if tries:
                self._sleep(self._backoff * 2 ** (tries - 1))
            requests += 1
            pace()
            try:
                transfer = self.client.v1.transfers.create(params=params,
                                                           options={"idempotency_key": request.idempotency_key})
            except stripe.RateLimitError as exc:
                log.warning("transfer %s: rate limited (%s)", request.payout_id, _describe(exc))
                continue
            except UNKNOWN_ERRORS as exc:
                log.warning("transfer %s: outcome unknown (%s)", request.payout_id, _describe(exc))
                return TransferOutcome("unknown", None, None, _describe(exc), requests)
            except (stripe.AuthenticationError, stripe.PermissionError) as exc:
                raise GatewayMisconfigured(_describe(exc)) from exc
            except stripe.IdempotencyError as exc:  # the key was used with other parameters: a defect
                return TransferOutcome("unknown", None, "idempotency_error", _describe(exc), requests)
            except stripe.StripeError as exc:  # no such destination, insufficient balance, …
                return TransferOutcome("failed", None, getattr(exc, "code", None) or "transfer_failed",
                                       _describe(exc), requests)
            transfer = _plain(transfer)
            return TransferOutcome("paid", transfer.get("id"), None, None, requests, transfer)
        return TransferOutcome("unknown", None, "rate_limit", f"Rate limited {RESOLVE_TRIES + 1} times.", requests)

    def find_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                      ) -> TransferOutcome:
        """The payout's Transfer, if Stripe made it: among the transfers of its group, the one
        whose metadata.payout is the payout's id and whose destination is the payout's account.
        -> `paid` (found), `missing` (Stripe has none), `unknown` (the lookup got no answer)."""
        requests = 0
        try:
            pace()
            requests += 1
            page = self.client.v1.transfers.list(params={"transfer_group": request.transfer_group, "limit": 100})
            while True:
                for transfer in page.data:
                    transfer = _plain(transfer)
                    destination = transfer.get("destination")
                    if isinstance(destination, dict):
                        destination = destination.get("id")
                    if ((transfer.get("metadata") or {}).get("payout") == request.payout_id
                            and destination == request.destination):
                        return TransferOutcome("paid", transfer.get("id"), None, None, requests, transfer)
                if not page.has_more or not page.data:
                    return TransferOutcome("missing", None, None, None, requests)
                pace()
                requests += 1
                page = page.next_page()
        except (stripe.AuthenticationError, stripe.PermissionError) as exc:
            raise GatewayMisconfigured(_describe(exc)) from exc
        except stripe.StripeError as exc:  # no answer, or a refused lookup: not a sign there is no transfer
            return TransferOutcome("unknown", None, getattr(exc, "code", None), _describe(exc), requests)


def _refund_outcome(refund: Any, requests: int) -> Outcome:
    refund = _plain(refund)
    status = refund.get("status")
    mapped = {"succeeded": "succeeded", "pending": "pending", "requires_action": "pending",
              "failed": "failed", "canceled": "failed"}.get(status, "pending")
    return Outcome(mapped, gateway_status=status, message=refund.get("failure_reason"), requests=requests,
                   amount=refund.get("amount"), extra={"refund_id": refund.get("id")},
                   charge_id=refund.get("charge") if isinstance(refund.get("charge"), str) else None)


def _describe(exc: Exception) -> str:
    status = getattr(exc, "http_status", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}{f' ({status})' if status else ''}: {message}"[:1000]


class Gateways:
    """Builds the gateway of a tenant in a mode from its settings (None: manual collection),
    one StripeClient per key and API base, shared by the threads of a charge run."""

    def __init__(self, vault, *, timeout: float = REQUEST_TIMEOUT):
        self.vault, self.timeout = vault, timeout
        self._cache: dict[tuple[str, str | None], StripeGateway] = {}
        self._lock = threading.Lock()

    def for_settings(self, settings) -> StripeGateway | None:
        if not settings.stripe_secret_key:
            return None
        key = self.vault.unseal(settings.stripe_secret_key)
        cache_key = (key, settings.stripe_api_base)
        with self._lock:
            gateway = self._cache.get(cache_key)
            if gateway is None:
                gateway = self._cache[cache_key] = StripeGateway(key, settings.stripe_api_base, timeout=self.timeout)
        return gateway


def default_rate(livemode: bool) -> int:
    """Stripe's documented pace: about 100 write requests a second live, 25 in test mode."""
    return 100 if livemode else 25


DEFAULT_CONCURRENCY = 10
