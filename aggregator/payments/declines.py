"""Which declines a retry cannot fix ("hard declines"): the charge then waits for the customer's
new payment method instead of being retried on the schedule. Stripe reports a decline as an
error `code` (e.g. `expired_card`) and, for `card_declined`, a `decline_code` from the issuer
(https://docs.stripe.com/declines/codes). Anything not listed is soft: retried."""
from __future__ import annotations

#: code or decline_code -> why no retry can succeed
HARD_DECLINES = {
    "lost_card": "The card was reported lost.",
    "stolen_card": "The card was reported stolen.",
    "pickup_card": "The issuer asks for the card to be retained (reported lost or stolen).",
    "fraudulent": "The issuer suspects fraud.",
    "merchant_blacklist": "The payment matched a block list.",
    "restricted_card": "The card cannot be used for this payment (restricted).",
    "security_violation": "The issuer reports a security violation.",
    "invalid_account": "The card, or the account it is connected to, is invalid.",
    "new_account_information_available": "The card or account is invalid; new details exist.",
    "incorrect_number": "The card number is incorrect.",
    "invalid_number": "The card number is not a valid card number.",
    "expired_card": "The card has expired.",
    "card_not_supported": "The card does not support this type of purchase.",
    "currency_not_supported": "The card does not support the currency.",
    "revocation_of_authorization": "The customer revoked the authorization.",
    "revocation_of_all_authorizations": "The customer revoked all authorizations.",
    "stop_payment_order": "The customer ordered the payment stopped.",
    "do_not_try_again": "The issuer says not to try again.",
    "resource_missing": "The Stripe customer or payment method no longer exists.",
    "payment_method_unactivated": "The payment method is not activated.",
    "amount_not_chargeable": "The amount cannot be charged exactly in this currency through Stripe.",
}


def is_hard(code: str | None, decline_code: str | None) -> bool:
    return (decline_code or "") in HARD_DECLINES or (code or "") in HARD_DECLINES
