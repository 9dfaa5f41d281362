"""What a failed call to Stripe is recorded as, where API callers, webhooks and emails can read
it (a payment's, refund's or payout's `failure_message`): our own fixed words, never the text of
the answer. A Stripe API address may be a tenant's own (test mode), so an answer's body may come
from any host; its words go to the operator's log only.

Stripe's structured error `code` and `decline_code` are kept when they are codes we know, with
our sentence for them (`insufficient_funds: The card has insufficient funds.`); anything else is
a class: `stripe_unreachable`, `stripe_server_error`, `stripe_invalid_response`,
`stripe_rate_limited`, `stripe_authentication_failed`, `stripe_permission_denied`,
`stripe_address_refused`, `stripe_idempotency_error`, `stripe_invalid_request`, and for a card
error with a code we do not know, `card_declined`."""
from __future__ import annotations

from .declines import HARD_DECLINES

#: Stripe's codes (error codes and issuers' decline codes, https://docs.stripe.com/declines/codes
#: and /error-codes) -> our words for them.
KNOWN_CODES = {
    **HARD_DECLINES,
    "card_declined": "The card was declined.",
    "generic_decline": "The card was declined.",
    "insufficient_funds": "The card has insufficient funds.",
    "do_not_honor": "The issuer declined the card.",
    "call_issuer": "The issuer declined the card; the customer should contact their bank.",
    "card_velocity_exceeded": "The card's limit was exceeded.",
    "withdrawal_count_limit_exceeded": "The card's limit was exceeded.",
    "try_again_later": "The issuer declined the payment for now.",
    "issuer_not_available": "The card's issuer could not be reached.",
    "processing_error": "An error occurred while processing the card.",
    "reenter_transaction": "The issuer could not process the payment.",
    "no_action_taken": "The issuer could not process the payment.",
    "not_permitted": "The payment is not permitted.",
    "service_not_allowed": "The payment is not permitted.",
    "transaction_not_allowed": "The payment is not permitted.",
    "approve_with_id": "The payment could not be authorized.",
    "duplicate_transaction": "A similar payment was made very recently.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "invalid_cvc": "The card's security code is invalid.",
    "incorrect_zip": "The card's postal code is incorrect.",
    "invalid_expiry_month": "The card's expiration month is invalid.",
    "invalid_expiry_year": "The card's expiration year is invalid.",
    "invalid_amount": "The amount is not accepted by the card's issuer.",
    "testmode_decline": "A Stripe test card was used.",
    "test_mode_live_card": "A live card was used in test mode.",
    "authentication_required": "The card needs the customer's authentication.",
    "authentication_failure": "The customer's authentication failed.",
    "offline_pin_required": "The card needs a PIN.",
    "online_or_offline_pin_required": "The card needs a PIN.",
    "pin_try_exceeded": "Too many PIN attempts.",
    "incorrect_pin": "The PIN is incorrect.",
    "invalid_pin": "The PIN is incorrect.",
    "card_decline_rate_limit_exceeded": "The card was declined too many times recently.",
    "payment_intent_authentication_failure": "The customer's authentication failed.",
    "payment_intent_payment_attempt_failed": "The payment attempt failed.",
    "payment_intent_unexpected_state": "The payment is not in a state that allows this.",
    "payment_method_provider_decline": "The payment method's provider declined the payment.",
    "charge_already_refunded": "The charge is already refunded (or less of it is left than asked).",
    "charge_disputed": "The charge is disputed.",
    "amount_too_large": "The amount is too large.",
    "amount_too_small": "The amount is too small.",
    "balance_insufficient": "The platform's Stripe balance is too low.",
    "insufficient_capabilities_for_transfer": "The connected account cannot receive transfers.",
    "transfers_not_allowed": "Transfers are not allowed for this account.",
    "account_invalid": "The connected account is invalid.",
    "parameter_invalid_integer": "Stripe refused a parameter.",
    "parameter_missing": "Stripe refused the request: a parameter is missing.",
    "parameter_unknown": "Stripe refused the request: a parameter is unknown.",
    "idempotency_key_in_use": "The same request is being processed.",
}

#: The classes of failure that are not Stripe's verdict on the payment -> our words.
CLASSES = {
    "stripe_unreachable": "Stripe could not be reached (no answer in time, or the connection failed).",
    "stripe_server_error": "Stripe answered with a server error.",
    "stripe_invalid_response": "Stripe's answer could not be understood.",
    "stripe_rate_limited": "Stripe asked for fewer requests (rate limited).",
    "stripe_authentication_failed": "Stripe refused the API key.",
    "stripe_permission_denied": "Stripe refused the API key access to this request.",
    "stripe_address_refused": "The Stripe API address resolves to an address requests are not sent to.",
    "stripe_idempotency_error": "Stripe refused a repeated request sent with other parameters.",
    "stripe_invalid_request": "Stripe refused the request.",
    "stripe_not_configured": "Stripe is not configured for this tenant.",
    "internal_error": "An unexpected error; the operator's logs have the details.",
}

#: Parameters we send, which a `resource_missing` may name (any other is not repeated).
_PARAMS = {"customer": "customer", "payment_method": "payment method", "payment_intent": "PaymentIntent",
           "destination": "destination account", "source_transaction": "charge", "id": "object"}


def known_code(code: object) -> str | None:
    """The code if it is one of Stripe's we know, else None."""
    return code if isinstance(code, str) and code in KNOWN_CODES else None


def reason(code: str, *, param: object = None) -> str:
    """`code: our words`, for a known code or a class (`param`: the request parameter a
    resource_missing names, said only if it is one we send)."""
    if code == "resource_missing":
        named = _PARAMS.get(param, "object") if isinstance(param, str) else "object"
        return f"resource_missing: Stripe has no such {named}."
    return f"{code}: {KNOWN_CODES.get(code) or CLASSES[code]}"


#: A Refund's `failure_reason` (an enum at Stripe) -> our words.
REFUND_FAILURES = {
    "lost_or_stolen_card": "The card was reported lost or stolen.",
    "expired_or_canceled_card": "The card has expired or was canceled.",
    "charge_for_pending_refund_disputed": "The charge was disputed.",
    "insufficient_funds": "The platform's Stripe balance is too low.",
    "declined": "The card's issuer declined the refund.",
    "merchant_request": "The refund was canceled at the platform's request.",
    "unknown": "Stripe did not say why.",
}


def refund_failure(failure_reason: object) -> str | None:
    """`failure_reason: our words` for a failed Refund's reason (None: none given)."""
    if failure_reason is None:
        return None
    known = failure_reason if isinstance(failure_reason, str) and failure_reason in REFUND_FAILURES else "unknown"
    return f"{known}: {REFUND_FAILURES[known]}"
