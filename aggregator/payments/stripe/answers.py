"""Reading Stripe's answers, without the SDK: an object as plain dicts, an id of Stripe's shape,
and what a PaymentIntent means as an outcome (a charge's answer and a webhook's event read it
the same way). Importing the SDK takes about half a second; the processes that only read
events (the worker's webhook queue) do not pay it."""
from __future__ import annotations

import logging
import re
from typing import Any

from ..failures import known_code, reason
from ..gateway import Outcome

log = logging.getLogger("aggregator.payments.gateway")

_STRIPE_ID = re.compile(r"[a-z]{2,8}_[A-Za-z0-9_]{1,250}")


def stripe_id(value: Any) -> str | None:
    """An object id from an answer, if it has the shape of Stripe's (`pi_…`, `ch_…`), else None."""
    return value if isinstance(value, str) and _STRIPE_ID.fullmatch(value) else None


def plain(obj: Any) -> dict:
    """A Stripe object as plain dicts (the SDK's objects are not dicts since v15)."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj or {})


#: A PaymentIntent's statuses (anything else is not an answer we understand).
INTENT_STATUSES = {"requires_payment_method", "requires_confirmation", "requires_action", "processing",
                   "requires_capture", "canceled", "succeeded"}


def intent_outcome(intent: Any, requests: int) -> Outcome:
    """A PaymentIntent as an outcome."""
    intent = plain(intent)
    status = intent.get("status")
    if status not in INTENT_STATUSES or not stripe_id(intent.get("id")):
        log.warning("a PaymentIntent answer not understood: status %.100r, id %.100r", status, intent.get("id"))
        return Outcome("unknown", message=reason("stripe_invalid_response"), requests=requests)
    charge = intent.get("latest_charge")
    charge_id = stripe_id(charge if isinstance(charge, str) or charge is None else charge.get("id"))
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
