"""Refunds through Stripe: (part of) a PaymentIntent given back with the refund's idempotency
key; an unknown outcome is looked up among the PaymentIntent's refunds (metadata.refund_id)
before it is sent again."""
from __future__ import annotations

from typing import Any, Callable

import stripe

from ..failures import known_code, refund_failure
from ..gateway import Outcome, RefundRequest
from .answers import plain, stripe_id
from .client import describe, error_reason, log, send_idempotently

_STATUSES = {"succeeded": "succeeded", "pending": "pending", "requires_action": "pending",
             "failed": "failed", "canceled": "failed"}


def refund_outcome(refund: Any, requests: int) -> Outcome:
    refund = plain(refund)
    status = refund.get("status")
    mapped = _STATUSES.get(status, "pending")
    return Outcome(mapped, gateway_status=status if status in _STATUSES else None,
                   message=refund_failure(refund.get("failure_reason")) if mapped == "failed" else None,
                   requests=requests, amount=refund.get("amount") if isinstance(refund.get("amount"), int) else None,
                   extra={"refund_id": stripe_id(refund.get("id"))}, charge_id=stripe_id(refund.get("charge")))


class StripeRefunds:
    """Refunds of one StripeClient (`client`, `_sleep`, `_backoff`: set by StripeGateway)."""

    client: stripe.StripeClient
    _sleep: Callable[[float], None]
    _backoff: float

    def refund(self, request: RefundRequest, *, resume: bool = False, refund_id: str | None = None,
               pace: Callable[[], None] = lambda: None) -> Outcome:
        """Refund (part of) a PaymentIntent, idempotently: an unknown outcome is looked up among
        the PaymentIntent's refunds (metadata.refund_id) before it is sent again."""
        what = f"refund {request.refund_id}"
        params = {"payment_intent": request.payment_intent_id, "amount": request.amount,
                  "metadata": dict(request.metadata)}
        if request.reason in ("duplicate", "fraudulent", "requested_by_customer"):
            params["reason"] = request.reason

        def refused(exc: stripe.StripeError, requests: int) -> Outcome:
            log.warning("%s: refused (%s)", what, describe(exc))
            return Outcome("failed", failure_code=known_code(getattr(exc, "code", None)) or "refund_failed",
                           message=error_reason(exc), requests=requests)

        return send_idempotently(
            what, send=lambda: self.client.v1.refunds.create(params=params,
                                                             options={"idempotency_key": request.idempotency_key}),
            answer=refund_outcome, refused=refused,
            unknown=lambda exc, requests: Outcome("unknown", message=error_reason(exc), requests=requests),
            look_up=lambda: (self._find_refund(request, refund_id), 1), resume=resume,
            pace=pace, sleep=self._sleep, backoff=self._backoff)

    def _find_refund(self, request: RefundRequest, refund_id: str | None):
        if refund_id:
            return self.client.v1.refunds.retrieve(refund_id)
        page = self.client.v1.refunds.list(params={"payment_intent": request.payment_intent_id, "limit": 100})
        for refund in page.auto_paging_iter():
            if (plain(refund).get("metadata") or {}).get("refund_id") == request.refund_id:
                return refund
        return None
