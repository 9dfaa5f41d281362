"""Stripe's webhooks, as far as they are Stripe's: the signature check (the SDK's own, as
`construct_event` makes it) and what a PaymentIntent in an event means (`intent_outcome`, the
same reading as a charge's answer). What handling an event does is `payments/stripe_events.py`."""
from __future__ import annotations

from .answers import intent_outcome

__all__ = ["SignatureMismatch", "intent_outcome", "verify_signature"]


class SignatureMismatch(Exception):
    """The Stripe-Signature header does not verify (its text: the SDK's words, for the sender)."""


def verify_signature(text: str, signature: str | None, secret: str, tolerance: int) -> None:
    """Whether `signature` (the Stripe-Signature header) is Stripe's signature of `text` with
    `secret`, made within `tolerance` seconds; SignatureMismatch if not."""
    import stripe  # here, not at the top: the SDK's import costs processes that never verify

    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance)
    except stripe.SignatureVerificationError as exc:
        raise SignatureMismatch(exc.user_message or str(exc)) from None
