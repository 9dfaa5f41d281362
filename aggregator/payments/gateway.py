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
metadata.payout and destination), never sent under another key.

No answer's words are ever passed on: an outcome's message is `failures.reason` of Stripe's
structured code or of the class of failure (the detail is logged for the operator), because the
API address may be a tenant's own (test mode, when the operator allows it), checked like a
webhook's address when connecting (`outbound.connections`)."""
from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import stripe
import urllib3

from ..errors import InvalidInput
from ..outbound import VERSION
from ..outbound.addresses import UnacceptableUrl, check_url
from ..outbound.connections import AddressRefused, pinned_pools
from .failures import known_code, reason, refund_failure

log = logging.getLogger(__name__)

#: Answers that leave a request's outcome unknown (Stripe may or may not have acted on it).
UNKNOWN_ERRORS = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)

#: How many times an attempt whose outcome is unknown is looked up (and, if Stripe has no
#: record of it, sent again) before it is left pending for a later run.
RESOLVE_TRIES = 3
REQUEST_TIMEOUT = 30.0  # seconds; a slower answer is an unknown outcome


class GatewayMisconfigured(Exception):
    """The gateway refused our credentials or our account's permissions, or its address is one
    requests are not sent to: nothing was charged, and nothing will be until the settings are
    fixed (the attempt stays pending). Its text is a `failures.reason`."""


class StripeAddressRefused(stripe.APIConnectionError):
    """A tenant's Stripe API address resolves to an address requests are not sent to (nothing
    was sent)."""


#: Errors that say our settings are wrong, not that the outcome is unknown: nothing was done.
MISCONFIGURED = (stripe.AuthenticationError, stripe.PermissionError, StripeAddressRefused)

#: A PaymentIntent's statuses (anything else is not an answer we understand).
INTENT_STATUSES = {"requires_payment_method", "requires_confirmation", "requires_action", "processing",
                   "requires_capture", "canceled", "succeeded"}
_STRIPE_ID = re.compile(r"[a-z]{2,8}_[A-Za-z0-9_]{1,250}")


def _stripe_id(value: Any) -> str | None:
    """An object id from an answer, if it has the shape of Stripe's (`pi_…`, `ch_…`), else None."""
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


#: Errors recorded by their class alone, first match wins (StripeAddressRefused is an
#: APIConnectionError, so it comes first).
_CLASSES: tuple[tuple[type[stripe.StripeError], str], ...] = (
    (StripeAddressRefused, "stripe_address_refused"),
    (stripe.APIConnectionError, "stripe_unreachable"),
    (stripe.RateLimitError, "stripe_rate_limited"),
    (stripe.AuthenticationError, "stripe_authentication_failed"),
    (stripe.PermissionError, "stripe_permission_denied"),
    (stripe.IdempotencyError, "stripe_idempotency_error"),
)


def _classified(exc: stripe.StripeError) -> str:
    """What may be recorded of an error from the gateway: Stripe's known code, or a class."""
    for kind, reason_code in _CLASSES:
        if isinstance(exc, kind):
            return reason_code
    if isinstance(exc, stripe.CardError):
        details = exc.error
        return (known_code(getattr(details, "decline_code", None) if details is not None else None)
                or known_code(exc.code) or "card_declined")
    if isinstance(exc, stripe.InvalidRequestError):
        return known_code(exc.code) or "stripe_invalid_request"
    if isinstance(exc, stripe.APIError) and (exc.http_status or 0) >= 500:
        return "stripe_server_error"
    return "stripe_invalid_response"


def _reason(exc: stripe.StripeError) -> str:
    """`failures.reason` of the error (a resource_missing says which parameter, if it is ours)."""
    code = _classified(exc)
    return reason(code, param=getattr(exc, "param", None) if code == "resource_missing" else None)


def _misconfigured(exc: stripe.StripeError, what: str) -> GatewayMisconfigured:
    log.error("%s: the gateway refused our settings: %s", what, _describe(exc))
    return GatewayMisconfigured(_reason(exc))


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
    if status not in INTENT_STATUSES or not _stripe_id(intent.get("id")):
        log.warning("a PaymentIntent answer not understood: status %.100r, id %.100r", status, intent.get("id"))
        return Outcome("unknown", message=reason("stripe_invalid_response"), requests=requests)
    charge = intent.get("latest_charge")
    charge_id = _stripe_id(charge if isinstance(charge, str) or charge is None else charge.get("id"))
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
    code = known_code(error.get("code")) or "payment_intent_payment_attempt_failed"
    decline_code = known_code(error.get("decline_code"))
    return Outcome("failed", failure_code=code, decline_code=decline_code, message=reason(decline_code or code),
                   **common)


def _card_error_outcome(error: stripe.CardError, requests: int) -> Outcome:
    details = error.error
    intent = getattr(details, "payment_intent", None) if details is not None else None
    intent = _plain(intent) if intent is not None else None
    status = intent.get("status") if intent else None
    decline_code = known_code(getattr(details, "decline_code", None) if details is not None else None)
    code = known_code(error.code) or "card_declined"
    return Outcome("failed", payment_intent_id=_stripe_id(intent.get("id")) if intent else None,
                   charge_id=_stripe_id(getattr(details, "charge", None) if details is not None else None),
                   gateway_status=status if status in INTENT_STATUSES else "card_error",
                   failure_code=code, decline_code=decline_code, message=reason(decline_code or code),
                   requests=requests)


class Urllib3Client(stripe.HTTPClient):
    """The SDK's HTTP transport on urllib3's thread-safe connection pool (keep-alive, TLS
    verified against the SDK's CA bundle), instead of its default `requests` session: the same
    requests and answers, at about half the CPU per call (measured by bench/charge.py: 1.0 ms
    against 1.9 ms per PaymentIntent create, most of our cost of a charge). A network failure
    or timeout is the SDK's APIConnectionError, as with its own clients."""

    name = "urllib3"

    def __init__(self, timeout: float, maxsize: int = 100, *, allow_private: bool | None = None):
        """`allow_private`: None, connect anywhere (Stripe itself, the operator's address); else
        connect as webhooks do (a tenant's own address): each address checked when connecting."""
        super().__init__()
        options = {"maxsize": maxsize, "retries": False, "timeout": urllib3.Timeout(total=timeout),
                   "cert_reqs": "CERT_REQUIRED", "ca_certs": stripe.ca_bundle_path}
        self._pool = (urllib3.PoolManager(**options) if allow_private is None
                      else pinned_pools(allow_private, **options))

    def request(self, method: str, url: str, headers, post_data=None, *, _usage=None):
        try:
            answer = self._pool.request(method.upper(), url, headers=dict(headers or {}), body=post_data,
                                        redirect=False)
        except AddressRefused as exc:
            raise StripeAddressRefused(f"Refused: {exc}", should_retry=False) from exc
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
                 sleep: Callable[[float], None] = time.sleep, backoff: float = 0.5,
                 allow_private: bool | None = None):
        """`allow_private`: None for Stripe or the operator's address; a tenant's own address is
        checked when connecting, private addresses allowed only if this is True (Urllib3Client)."""
        addresses = {"api": api_base.rstrip("/")} if api_base else None
        stripe.set_app_info("aggregator", version=VERSION)  # in the User-Agent of every request
        self.client = stripe.StripeClient(secret_key, base_addresses=addresses, max_network_retries=0,
                                          http_client=Urllib3Client(timeout, allow_private=allow_private))
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
        last: stripe.StripeError = stripe.APIConnectionError("no answer")
        for tries in range(RESOLVE_TRIES + 1):
            if look_first:
                pace()
                try:
                    intent, calls = self._find_intent(charge, payment_intent_id)
                except MISCONFIGURED as exc:
                    raise _misconfigured(exc, f"charge {charge.payment_id}") from exc
                except UNKNOWN_ERRORS as exc:
                    requests += 1
                    log.warning("charge %s: looking it up failed (%s)", charge.payment_id, _describe(exc))
                    return Outcome("unknown", message=_reason(exc), requests=requests)
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
                log.info("charge %s: declined (%s)", charge.payment_id, _describe(exc))
                return _card_error_outcome(exc, requests)
            except MISCONFIGURED as exc:
                raise _misconfigured(exc, f"charge {charge.payment_id}") from exc
            except UNKNOWN_ERRORS as exc:
                log.warning("charge %s: outcome unknown (%s); looking it up", charge.payment_id, _describe(exc))
                last = exc
                look_first = True
                continue
            except stripe.InvalidRequestError as exc:  # no such customer or payment method, …
                log.warning("charge %s: refused (%s)", charge.payment_id, _describe(exc))
                return Outcome("failed", gateway_status="invalid_request",
                               failure_code=known_code(exc.code) or "stripe_invalid_request", message=_reason(exc),
                               requests=requests, extra={"param": getattr(exc, "param", None)})
            except stripe.IdempotencyError as exc:  # the key was used with other parameters: a defect
                log.error("charge %s: %s", charge.payment_id, _describe(exc))
                return Outcome("unknown", message=_reason(exc), requests=requests)
            return _intent_outcome(intent, requests)
        return Outcome("unknown", message=_reason(last), requests=requests)

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
            except MISCONFIGURED as lookup:
                raise _misconfigured(lookup, f"cancel {payment_intent_id}") from lookup
            except UNKNOWN_ERRORS as lookup:
                log.warning("cancel %s: looking it up failed (%s)", payment_intent_id, _describe(lookup))
                return Outcome("unknown", message=_reason(lookup), requests=2)
            outcome = _intent_outcome(intent, 2)
            if outcome.status == "requires_action":  # refused for another reason: leave it be
                log.warning("cancel %s: refused (%s)", payment_intent_id, _describe(exc))
                return Outcome("unknown", message=_reason(exc), requests=2)
            return outcome
        except MISCONFIGURED as exc:
            raise _misconfigured(exc, f"cancel {payment_intent_id}") from exc
        except UNKNOWN_ERRORS as exc:
            log.warning("cancel %s: outcome unknown (%s)", payment_intent_id, _describe(exc))
            return Outcome("unknown", message=_reason(exc), requests=1)
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

    def find_intents(self, charges: list[Charge], pace: Callable[[], None] = lambda: None) -> tuple[dict[str, Any],
                                                                                                    int]:
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
        last: stripe.StripeError = stripe.APIConnectionError("no answer")
        for tries in range(RESOLVE_TRIES + 1):
            if look_first:
                pace()
                try:
                    found = self._find_refund(request, refund_id)
                except MISCONFIGURED as exc:
                    raise _misconfigured(exc, f"refund {request.refund_id}") from exc
                except UNKNOWN_ERRORS as exc:
                    log.warning("refund %s: looking it up failed (%s)", request.refund_id, _describe(exc))
                    return Outcome("unknown", message=_reason(exc), requests=requests + 1)
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
            except MISCONFIGURED as exc:
                raise _misconfigured(exc, f"refund {request.refund_id}") from exc
            except UNKNOWN_ERRORS as exc:
                log.warning("refund %s: outcome unknown (%s); looking it up", request.refund_id, _describe(exc))
                last = exc
                look_first = True
                continue
            except stripe.StripeError as exc:
                log.warning("refund %s: refused (%s)", request.refund_id, _describe(exc))
                return Outcome("failed", failure_code=known_code(getattr(exc, "code", None)) or "refund_failed",
                               message=_reason(exc), requests=requests)
            return _refund_outcome(refund, requests)
        return Outcome("unknown", message=_reason(last), requests=requests)

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
            except MISCONFIGURED as exc:
                raise _misconfigured(exc, f"transfer {request.payout_id}") from exc
            except UNKNOWN_ERRORS as exc:
                log.warning("transfer %s: outcome unknown (%s)", request.payout_id, _describe(exc))
                return TransferOutcome("unknown", None, None, _reason(exc), requests)
            except stripe.IdempotencyError as exc:  # the key was used with other parameters: a defect
                log.error("transfer %s: %s", request.payout_id, _describe(exc))
                return TransferOutcome("unknown", None, "idempotency_error", _reason(exc), requests)
            except stripe.StripeError as exc:  # no such destination, insufficient balance, …
                log.warning("transfer %s: refused (%s)", request.payout_id, _describe(exc))
                return TransferOutcome("failed", None, known_code(getattr(exc, "code", None)) or "transfer_failed",
                                       _reason(exc), requests)
            transfer = _plain(transfer)
            return TransferOutcome("paid", _stripe_id(transfer.get("id")), None, None, requests, transfer)
        return TransferOutcome("unknown", None, "rate_limit", reason("stripe_rate_limited"), requests)

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
                        return TransferOutcome("paid", _stripe_id(transfer.get("id")), None, None, requests,
                                               transfer)
                if not page.has_more or not page.data:
                    return TransferOutcome("missing", None, None, None, requests)
                pace()
                requests += 1
                page = page.next_page()
        except MISCONFIGURED as exc:
            raise _misconfigured(exc, f"transfer {request.payout_id}") from exc
        except stripe.StripeError as exc:  # no answer, or a refused lookup: not a sign there is no transfer
            log.warning("transfer %s: looking it up failed (%s)", request.payout_id, _describe(exc))
            return TransferOutcome("unknown", None, known_code(getattr(exc, "code", None)), _reason(exc), requests)


def _refund_outcome(refund: Any, requests: int) -> Outcome:
    refund = _plain(refund)
    status = refund.get("status")
    mapped_statuses = {"succeeded": "succeeded", "pending": "pending", "requires_action": "pending",
                       "failed": "failed", "canceled": "failed"}
    mapped = mapped_statuses.get(status, "pending")
    return Outcome(mapped, gateway_status=status if status in mapped_statuses else None,
                   message=refund_failure(refund.get("failure_reason")) if mapped == "failed" else None,
                   requests=requests, amount=refund.get("amount") if isinstance(refund.get("amount"), int) else None,
                   extra={"refund_id": _stripe_id(refund.get("id"))}, charge_id=_stripe_id(refund.get("charge")))


def _describe(exc: Exception) -> str:
    status = getattr(exc, "http_status", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}{f' ({status})' if status else ''}: {message}"[:1000]


class Gateways:
    """Builds the gateway of a tenant in a mode from its settings (None: manual collection),
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

    def for_settings(self, settings) -> StripeGateway | None:
        if not settings.stripe_secret_key:
            return None
        key = self.vault.unseal(settings.stripe_secret_key)
        api_base, allow_private = self._address(settings)
        cache_key = (key, api_base, allow_private)
        with self._lock:
            gateway = self._cache.get(cache_key)
            if gateway is None:
                gateway = self._cache[cache_key] = StripeGateway(key, api_base, timeout=self.timeout,
                                                                 allow_private=allow_private)
        return gateway


def default_rate(livemode: bool) -> int:
    """Stripe's documented pace: about 100 write requests a second live, 25 in test mode."""
    return 100 if livemode else 25


DEFAULT_CONCURRENCY = 10
