"""What every part of the Stripe adapter shares: the SDK's client (a `StripeClient` per key
and API address, never the global `stripe.api_key`) on a urllib3 transport, how an error is
classified and recorded, and `send_idempotently`: the one rule for a request whose outcome may
be unknown.

An outcome the adapter cannot know (a dropped connection, a timeout, a Stripe 5xx or 429) is
resolved by looking the object up, never by creating another; the request is sent again, with
the same idempotency key, only when Stripe has no record of it. When even that cannot be
learned, the outcome is `unknown` and the attempt stays pending, to be resolved the same way
later.

No answer's words are ever passed on: a message is `failures.reason` of Stripe's structured
code or of the class of failure (the detail is logged for the operator), because the API
address may be a tenant's own (test mode, when the operator allows it), checked like a
webhook's address when connecting (`outbound.connections`)."""
from __future__ import annotations

import logging
from typing import Any, Callable, TypeVar

import stripe
import urllib3

from ...outbound import VERSION
from ...outbound.connections import AddressRefused, pinned_pools
from ..failures import known_code, reason
from ..gateway import RESOLVE_TRIES, GatewayMisconfigured

log = logging.getLogger("aggregator.payments.gateway")

#: Answers that leave a request's outcome unknown (Stripe may or may not have acted on it).
UNKNOWN_ERRORS = (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)


class StripeAddressRefused(stripe.APIConnectionError):
    """A tenant's Stripe API address resolves to an address requests are not sent to (nothing
    was sent)."""


#: Errors that say our settings are wrong, not that the outcome is unknown: nothing was done.
MISCONFIGURED = (stripe.AuthenticationError, stripe.PermissionError, StripeAddressRefused)

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


def classified(exc: stripe.StripeError) -> str:
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


def error_reason(exc: stripe.StripeError) -> str:
    """`failures.reason` of the error (a resource_missing says which parameter, if it is ours)."""
    code = classified(exc)
    return reason(code, param=getattr(exc, "param", None) if code == "resource_missing" else None)


def misconfigured(exc: stripe.StripeError, what: str) -> GatewayMisconfigured:
    log.error("%s: the gateway refused our settings: %s", what, describe(exc))
    return GatewayMisconfigured(error_reason(exc))


def describe(exc: Exception) -> str:
    status = getattr(exc, "http_status", None)
    message = getattr(exc, "user_message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}{f' ({status})' if status else ''}: {message}"[:1000]


R = TypeVar("R")


def send_idempotently(what: str, *, send: Callable[[], Any], answer: Callable[[Any, int], R],
                      refused: Callable[[stripe.StripeError, int], R],
                      unknown: Callable[[stripe.StripeError, int], R],
                      look_up: Callable[[], tuple[Any | None, int]] | None = None, resume: bool = False,
                      pace: Callable[[], None], sleep: Callable[[float], None], backoff: float) -> R:
    """Look up first (`resume`: it may have been sent before), send with the idempotency key
    (`send`), back off, look up again: at most RESOLVE_TRIES + 1 sends, each only when Stripe
    has no record of the last. -> `answer(the object found or made, requests made)`,
    `refused(error, requests)` (Stripe refused the request: declined, invalid, …) or
    `unknown(error, requests)` (no answer learned). Raises GatewayMisconfigured.

    Without `look_up` an unknown outcome is not resolved here (the caller looks it up later),
    except a 429, which says Stripe did not act: it is sent again, with the same key."""
    requests = 0
    look_first = resume and look_up is not None
    last: stripe.StripeError = stripe.APIConnectionError("no answer")
    for tries in range(RESOLVE_TRIES + 1):
        if look_first and look_up is not None:
            pace()
            try:
                found, calls = look_up()
            except MISCONFIGURED as exc:
                raise misconfigured(exc, what) from exc
            except UNKNOWN_ERRORS as exc:
                log.warning("%s: looking it up failed (%s)", what, describe(exc))
                return unknown(exc, requests + 1)
            requests += calls
            if found is not None:
                return answer(found, requests)
            # Stripe has no record of it: (re)send it, with the same idempotency key
        if tries:
            sleep(backoff * 2 ** (tries - 1))
        requests += 1
        pace()
        try:
            sent = send()
        except MISCONFIGURED as exc:
            raise misconfigured(exc, what) from exc
        except UNKNOWN_ERRORS as exc:
            if look_up is None and isinstance(exc, stripe.RateLimitError):  # Stripe did not act
                log.warning("%s: rate limited (%s)", what, describe(exc))
                last = exc
                continue
            log.warning("%s: outcome unknown (%s)%s", what, describe(exc), "; looking it up" if look_up else "")
            if look_up is None:
                return unknown(exc, requests)
            last, look_first = exc, True
            continue
        except stripe.StripeError as exc:
            return refused(exc, requests)
        return answer(sent, requests)
    return unknown(last, requests)


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


def client(secret_key: str, api_base: str | None, timeout: float, allow_private: bool | None) -> stripe.StripeClient:
    """A StripeClient for one key and API address (None: Stripe itself), on Urllib3Client, with
    no retries of the SDK's own (ours look up first)."""
    addresses = {"api": api_base.rstrip("/")} if api_base else None
    stripe.set_app_info("aggregator", version=VERSION)  # in the User-Agent of every request
    return stripe.StripeClient(secret_key, base_addresses=addresses, max_network_retries=0,
                               http_client=Urllib3Client(timeout, allow_private=allow_private))
