"""Charges through Stripe: an attempt is a PaymentIntent created and confirmed off session,
with the payment's idempotency key; a crashed run's attempts are found again among the
customer's PaymentIntents by metadata.payment_id (`find_intents`), never sent under another key."""
from __future__ import annotations

from typing import Any, Callable

import stripe

from ..failures import known_code, reason
from ..gateway import Charge, Outcome
from .answers import INTENT_STATUSES, intent_outcome, plain, stripe_id
from .client import MISCONFIGURED, UNKNOWN_ERRORS, describe, error_reason, log, misconfigured, send_idempotently


def _card_error_outcome(error: stripe.CardError, requests: int) -> Outcome:
    details = error.error
    intent = getattr(details, "payment_intent", None) if details is not None else None
    intent = plain(intent) if intent is not None else None
    status = intent.get("status") if intent else None
    decline_code = known_code(getattr(details, "decline_code", None) if details is not None else None)
    code = known_code(error.code) or "card_declined"
    return Outcome("failed", payment_intent_id=stripe_id(intent.get("id")) if intent else None,
                   charge_id=stripe_id(getattr(details, "charge", None) if details is not None else None),
                   gateway_status=status if status in INTENT_STATUSES else "card_error",
                   failure_code=code, decline_code=decline_code, message=reason(decline_code or code),
                   requests=requests)


class StripeCharges:
    """PaymentIntents of one StripeClient (`client`, `_sleep`, `_backoff`: set by StripeGateway)."""

    client: stripe.StripeClient
    _sleep: Callable[[float], None]
    _backoff: float

    def charge(self, charge: Charge, *, resume: bool = False, payment_intent_id: str | None = None,
               pace: Callable[[], None] = lambda: None, found: Any = None) -> Outcome:
        """Create and confirm the attempt's PaymentIntent (off session). `resume`: the attempt may
        have been sent before (a pending payment found after a crash): look it up first.
        `found`: its PaymentIntent, already looked up (find_intents)."""
        if found is not None:
            return intent_outcome(found, 0)
        what = f"charge {charge.payment_id}"

        def refused(exc: stripe.StripeError, requests: int) -> Outcome:
            if isinstance(exc, stripe.CardError):
                log.info("%s: declined (%s)", what, describe(exc))
                return _card_error_outcome(exc, requests)
            if isinstance(exc, stripe.InvalidRequestError):  # no such customer or payment method, …
                log.warning("%s: refused (%s)", what, describe(exc))
                return Outcome("failed", gateway_status="invalid_request",
                               failure_code=known_code(exc.code) or "stripe_invalid_request",
                               message=error_reason(exc), requests=requests,
                               extra={"param": getattr(exc, "param", None)})
            if isinstance(exc, stripe.IdempotencyError):  # the key was used with other parameters: a defect
                log.error("%s: %s", what, describe(exc))
                return Outcome("unknown", message=error_reason(exc), requests=requests)
            raise exc

        return send_idempotently(
            what, send=lambda: self.client.v1.payment_intents.create(
                params=self._intent_params(charge), options={"idempotency_key": charge.idempotency_key}),
            answer=intent_outcome, refused=refused,
            unknown=lambda exc, requests: Outcome("unknown", message=error_reason(exc), requests=requests),
            look_up=lambda: self._find_intent(charge, payment_intent_id), resume=resume,
            pace=pace, sleep=self._sleep, backoff=self._backoff)

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
                raise misconfigured(lookup, f"cancel {payment_intent_id}") from lookup
            except UNKNOWN_ERRORS as lookup:
                log.warning("cancel %s: looking it up failed (%s)", payment_intent_id, describe(lookup))
                return Outcome("unknown", message=error_reason(lookup), requests=2)
            outcome = intent_outcome(intent, 2)
            if outcome.status == "requires_action":  # refused for another reason: leave it be
                log.warning("cancel %s: refused (%s)", payment_intent_id, describe(exc))
                return Outcome("unknown", message=error_reason(exc), requests=2)
            return outcome
        except MISCONFIGURED as exc:
            raise misconfigured(exc, f"cancel {payment_intent_id}") from exc
        except UNKNOWN_ERRORS as exc:
            log.warning("cancel %s: outcome unknown (%s)", payment_intent_id, describe(exc))
            return Outcome("unknown", message=error_reason(exc), requests=1)
        return intent_outcome(intent, 1)

    def _intent_params(self, charge: Charge) -> dict:
        return {"amount": charge.amount, "currency": charge.currency.lower(), "customer": charge.customer,
                "payment_method": charge.payment_method, "off_session": True, "confirm": True,
                "metadata": dict(charge.metadata)}

    def retrieve(self, payment_intent_id: str) -> Outcome:
        return intent_outcome(self.client.v1.payment_intents.retrieve(payment_intent_id), 1)

    def _find_intent(self, charge: Charge, payment_intent_id: str | None) -> tuple[Any | None, int]:
        """The attempt's PaymentIntent: by id if known, else among the customer's PaymentIntents
        matched on metadata.payment_id. -> (it or None, requests made)"""
        if payment_intent_id:
            return self.client.v1.payment_intents.retrieve(payment_intent_id), 1
        found, calls = self.find_intents([charge])
        return found.get(charge.payment_id), calls

    def find_intents(self, charges: list[Charge], pace: Callable[[], None] = lambda: None
                     ) -> tuple[dict[str, Any], int]:
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
                    payment_id = (plain(intent).get("metadata") or {}).get("payment_id")
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
                payment_id = (plain(intent).get("metadata") or {}).get("payment_id")
                if payment_id in wanted:
                    found[payment_id] = intent
            if not page.has_more or not page.data or wanted <= found.keys():
                return found, calls
            pace()
            page = page.next_page()

    # --- refunds --------------------------------------------------------------------------
