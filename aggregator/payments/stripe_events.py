"""Stripe's webhooks: the events Stripe sends to a tenant's endpoint in one mode, verified with
that mode's signing secret, stored raw and committed before anything is done with them (unique
by Stripe's event id: a redelivery is recognised and answered without being handled again),
then handled in a transaction of their own.

Handling settles what Stripe decided asynchronously: a PaymentIntent's outcome (the same
`apply_outcomes` as a charge run's, whose guarded transitions leave a settled payment alone, so
repeated and out-of-order events change nothing), refunds (ours settled; one made in Stripe's
dashboard recorded), and disputes (the invoice flagged, finance told by `invoice.disputed`).

An event about a payment or refund not found yet (its row is not committed yet, or the event
overtook the one that brings it) stays `pending` and is retried by the `stripe_event.handle`
queue: after 30 s, then twice as long each time (at most an hour apart), for a day; then it is
`ignored`, with the reason. A worker claims an event by moving its next attempt past a lease,
and handles it holding its row locked, so two workers never handle the same event."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from .. import money
from ..accounts.models import TenantSettings
from ..accounts.service import settings_of, tenant_settings
from ..consolidate import transitions as invoice_transitions
from ..db import db, locking, new_id, skip_locked, write_lock
from ..due import Lane, Worked
from ..errors import InvalidRequest, NotFound
from ..plurals import counted
from . import charge_service, transitions
from .failures import refund_failure
from .models import Payment, Refund, StripeEvent
from .stripe.webhooks import SignatureMismatch, intent_outcome, verify_signature

log = logging.getLogger(__name__)

#: Stripe's own default: a signature older than this is refused (a replayed request).
TOLERANCE_SECONDS = 300
MODES = {"live": True, "test": False}
#: How long a worker (or the request that received it) owns an event it is handling.
LEASE = timedelta(minutes=2)
#: Retries of an event whose payment or refund is not found yet: 30 s, 1 min, 2, … at most an
#: hour apart, for a day after it was received.
FIRST_RETRY, LONGEST_RETRY, RETRY_FOR = timedelta(seconds=30), timedelta(hours=1), timedelta(days=1)

_events = StripeEvent.__table__


class SignatureInvalid(InvalidRequest):
    code = "signature_invalid"


class EventInvalid(InvalidRequest):
    code = "event_invalid"


class LivemodeMismatch(InvalidRequest):
    code = "livemode_mismatch"


class NotYetKnown(Exception):
    """The event is about a payment or refund that is not (yet) ours to find: retried later."""


@dataclass(frozen=True)
class Received:
    id: str  # the stored event's id (sevt_…)
    status: str  # pending, handled, ignored
    redelivery: bool


# --- receiving ----------------------------------------------------------------------------------

def verified_event(payload: bytes, signature: str | None, secret: str) -> dict:
    """The event Stripe signed, if `signature` (the Stripe-Signature header) is Stripe's
    signature of `payload` with `secret`, made within the last five minutes. The check is the
    SDK's (`construct_event` makes it the same way); the body is then read as plain JSON and
    its envelope checked, so no body, however made, gets further than a 400."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureInvalid("The body is not UTF-8 text: it is not what Stripe signed.") from None
    try:
        verify_signature(text, signature, secret, TOLERANCE_SECONDS)
    except SignatureMismatch as exc:
        raise SignatureInvalid(f"The Stripe-Signature header does not verify with this endpoint's signing "
                               f"secret, or is older than {TOLERANCE_SECONDS} seconds: {exc}") from None
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise EventInvalid("The body is not a JSON event.") from None
    if not (isinstance(event, dict) and _text(event, "id") and len(event["id"]) <= 255 and _text(event, "type")
            and len(event["type"]) <= 100 and isinstance(event.get("livemode"), bool)
            and isinstance(event.get("data"), dict) and isinstance(event["data"].get("object"), dict)):
        raise EventInvalid("The body is not a Stripe event (id, type, livemode, data.object).")
    return event


def receive_event(tenant_id: str, mode: str, payload: bytes, signature: str | None, adapters) -> Received:
    """Verify an event sent to the tenant's endpoint in `mode`, store it and commit, then handle
    it (its own transaction). A redelivery (an event stored before) is not handled again. NotFound
    when the endpoint does not exist (no such tenant, or no signing secret in that mode)."""
    livemode = MODES.get(mode)
    settings = settings_of(tenant_id, livemode) if livemode is not None else None
    if settings is None or not settings.stripe_webhook_secret:
        raise NotFound("No such webhook endpoint.")
    event = verified_event(payload, signature, adapters.vault.unseal(settings.stripe_webhook_secret))
    if event["livemode"] is not livemode:
        raise LivemodeMismatch(f"A {'live' if event['livemode'] else 'test'}-mode event was sent to the "
                               f"{mode}-mode endpoint.")
    real_now = adapters.clocks.base.now()
    stored_id = _store(settings, event, payload.decode("utf-8"), real_now)
    if stored_id is None:
        existing = db.session.execute(sa.select(_events.c.id, _events.c.status).where(
            _events.c.tenant_id == tenant_id, _events.c.livemode == livemode,
            _events.c.stripe_event_id == event["id"])).one()
        return Received(existing.id, existing.status, True)
    return Received(stored_id, handle_event(stored_id, adapters, real_now), False)


def _store(settings: TenantSettings, event: dict, payload: str, real_now: datetime) -> str | None:
    """Store the event pending, owned by this request for a lease, and commit. -> its id; None if
    Stripe sent it before (the unique constraint says so, even between two racing requests)."""
    event_id = new_id("sevt")
    try:
        transitions.store_stripe_event({
            "id": event_id, "tenant_id": settings.tenant_id, "livemode": settings.livemode,
            "stripe_event_id": event["id"], "type": event["type"], "payload": payload, "attempts": 0,
            "next_attempt_at": real_now + LEASE, "received_at": real_now})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if not db.session.scalar(sa.select(sa.func.count()).where(
                _events.c.tenant_id == settings.tenant_id, _events.c.livemode == settings.livemode,
                _events.c.stripe_event_id == event["id"])):
            raise  # not a redelivery: a defect
        return None
    return event_id


# --- handling -----------------------------------------------------------------------------------

def handle_event(event_id: str, adapters, real_now: datetime) -> str:
    """Handle one stored event in a transaction of its own, holding its row locked (a second
    worker waits, then finds it handled), as of its tenant's clock in its mode. -> its status
    afterwards: handled, ignored, or pending (retried later)."""
    try:
        status = _handle(event_id, adapters, real_now)
        db.session.commit()
        return status
    except NotYetKnown as reason:
        db.session.rollback()
        return _retry_later(event_id, real_now, str(reason))
    except Exception as exc:  # recorded on the event and retried like a missing payment; logged
        db.session.rollback()
        log.error("handling Stripe event %s failed: %s", event_id, exc, exc_info=exc)
        return _retry_later(event_id, real_now, f"{type(exc).__name__}: {exc}")


def _handle(event_id: str, adapters, real_now: datetime) -> str:
    write_lock()  # SQLite: one writer from here on; PostgreSQL: the row lock below
    row = db.session.scalars(locking(sa.select(StripeEvent).where(StripeEvent.id == event_id))
                             .execution_options(populate_existing=True)).first()
    if row is None or row.status != "pending":
        return row.status if row else "ignored"
    handler = HANDLERS.get(row.type)
    if handler is None:
        transitions.settle_stripe_event(row.id, "ignored", handled_at=real_now, attempts=row.attempts + 1)
        return "ignored"
    settings = tenant_settings(row.tenant_id, row.livemode)
    as_of = adapters.clocks.for_tenant(row.tenant_id, row.livemode).now()
    note = handler(settings, json.loads(row.payload)["data"]["object"], as_of)
    transitions.settle_stripe_event(row.id, "handled", handled_at=real_now, attempts=row.attempts + 1,
                                    last_error=note)
    return "handled"


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th attempt that could not handle the event."""
    return min(FIRST_RETRY * 2 ** min(attempts - 1, 20), LONGEST_RETRY)


def _retry_later(event_id: str, real_now: datetime, reason: str) -> str:
    row = db.session.get(StripeEvent, event_id, populate_existing=True)
    attempts = row.attempts + 1
    retry_at = real_now + retry_delay(attempts)
    if retry_at > row.received_at + RETRY_FOR:
        tried = counted(attempts, "attempt", "attempts")
        transitions.settle_stripe_event(event_id, "ignored", attempts=attempts, handled_at=real_now,
                                        last_error=f"Gave up after {tried}: {reason}"[:1000])
        status = "ignored"
    else:
        db.session.execute(sa.update(_events).where(_events.c.id == event_id, _events.c.status == "pending")
                           .values(attempts=attempts, next_attempt_at=retry_at, last_error=reason[:1000]))
        status = "pending"
    db.session.commit()
    return status


# --- the queue ----------------------------------------------------------------------------------

def claim_events(now: datetime, limit: int, lane: Lane | None = None) -> list[str]:
    """Claim up to `limit` pending events whose next attempt is due (their next attempt moves a
    lease ahead, so no other worker takes them meanwhile), and commit."""
    e = _events.c
    ready = (sa.select(e.id).where(sa.text("stripe_events.status = 'pending'"), e.next_attempt_at <= now)
             .order_by(e.next_attempt_at, e.id).limit(limit))
    if lane is not None:
        ready = ready.where(e.tenant_id == lane.tenant_id, e.livemode == lane.livemode)
    ready = skip_locked(ready)
    ids = db.session.execute(sa.update(_events).where(e.id.in_(ready)).values(next_attempt_at=now + LEASE)
                             .returning(e.id)).scalars().all()
    db.session.commit()
    return sorted(ids)


def handle_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """The queue's batch: claim ready events and handle them. Failed: those still pending."""
    worked = Worked()
    for event_id in claim_events(now, limit, lane):
        if handle_event(event_id, adapters, now) == "pending":
            worked.failed += 1
        else:
            worked.done += 1
    return worked


def backlog() -> tuple[int, datetime | None]:
    row = db.session.execute(sa.select(sa.func.count(), sa.func.min(_events.c.received_at))
                             .where(sa.text("stripe_events.status = 'pending'"))).one()
    return row[0], row[1]


# --- what each type of event does ---------------------------------------------------------------
# A handler takes the tenant's settings in the event's mode, the event's data.object and the
# instant of the changes; it returns a note kept on the event (None: nothing to say), or raises
# NotYetKnown.

def _text(obj: Any, key: str) -> str | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, str) and value else None


def _id_of(value: Any) -> str | None:
    """An expandable field: an id, or the object it names."""
    return value if isinstance(value, str) and value else _text(value, "id")


def _metadata(obj: dict, key: str) -> str | None:
    return _text(obj.get("metadata"), key)


def _payment_where(settings: TenantSettings, *where) -> Payment | None:
    return db.session.scalars(sa.select(Payment).where(
        Payment.tenant_id == settings.tenant_id, Payment.livemode == settings.livemode, *where)
        .order_by(Payment.id).limit(1)).first()


def _payment_of(settings: TenantSettings, *, intent_id: str | None = None, charge_id: str | None = None,
                payment_id: str | None = None) -> Payment | None:
    """Our payment of a PaymentIntent or charge: by Stripe's ids, else by the id we put in its
    metadata (an event that overtook the charge run's own record of the ids)."""
    for column, value in ((Payment.stripe_payment_intent_id, intent_id), (Payment.stripe_charge_id, charge_id),
                          (Payment.id, payment_id)):
        if value and (payment := _payment_where(settings, column == value, Payment.gateway == "stripe")):
            return payment
    return None


def _payment_intent(settings: TenantSettings, intent: dict, as_of: datetime) -> str | None:
    """payment_intent.succeeded, .payment_failed, .requires_action, .processing: the outcome of
    one of our attempts, applied as a charge run applies it."""
    if not _text(intent, "id"):
        return "The PaymentIntent has no id: nothing to settle."
    payment = _payment_of(settings, intent_id=intent["id"], payment_id=_metadata(intent, "payment_id"))
    if payment is None:
        raise NotYetKnown(f"No payment of PaymentIntent {_text(intent, 'id')!r} (yet).")
    if payment.stripe_payment_intent_id not in (None, intent["id"]):
        return f"Payment {payment.id} belongs to PaymentIntent {payment.stripe_payment_intent_id}."
    outcome = intent_outcome(intent, 0)
    if outcome.status in ("pending", "unknown") and payment.status != "pending":
        return None  # news older than what we know
    charge_service.apply_outcomes(settings, [(payment, outcome)], as_of)
    return None


def _charge_refunded(settings: TenantSettings, charge: dict, as_of: datetime) -> str | None:
    """charge.refunded: each refund the charge lists (Stripe lists them with API versions before
    2022-11-15; later ones send refund.* events, handled one by one below)."""
    listed = charge.get("refunds")
    refunds = listed.get("data") if isinstance(listed, dict) else None
    if not isinstance(refunds, list):
        return "The charge lists no refunds: they are settled by their own refund events."
    notes = [_refund_seen(settings, refund, charge, as_of) for refund in refunds if isinstance(refund, dict)]
    return " ".join(n for n in notes if n) or None  # one not found yet: all are retried together


def _refund(settings: TenantSettings, refund: dict, as_of: datetime) -> str | None:
    """charge.refund.updated, refund.created, refund.updated, refund.failed: one refund."""
    return _refund_seen(settings, refund, None, as_of)


def _refund_where(settings: TenantSettings, *where) -> Refund | None:
    return db.session.scalars(sa.select(Refund).where(
        Refund.tenant_id == settings.tenant_id, Refund.livemode == settings.livemode, *where).limit(1)).first()


def _refund_seen(settings: TenantSettings, refund: dict, charge: dict | None, as_of: datetime) -> str | None:
    """A refund as Stripe has it: ours (by its id, or the id we put in its metadata) settled to
    its outcome; one made in Stripe's dashboard recorded, succeeded, on its payment."""
    stripe_id, ours = _text(refund, "id"), _metadata(refund, "refund_id")
    row = (stripe_id and _refund_where(settings, Refund.stripe_refund_id == stripe_id)) \
        or (ours and _refund_where(settings, Refund.id == ours))
    status = _text(refund, "status")
    if row:
        ids = {"stripe_refund_id": stripe_id} if stripe_id and row.stripe_refund_id is None else {}
        if status == "succeeded":
            transitions.settle_refund(row, "succeeded", as_of, **ids)
        elif status in ("failed", "canceled"):
            transitions.settle_refund(row, "failed", as_of, failure_message=refund_failure(
                _text(refund, "failure_reason") or "unknown"), **ids)
        return None
    if ours:
        raise NotYetKnown(f"No refund {ours!r} (yet).")
    if status != "succeeded":
        return f"Refund {stripe_id} made in Stripe is {status}: recorded once it succeeds."
    charge = charge or {}
    payment = _payment_of(settings, intent_id=_id_of(charge.get("payment_intent"))
                          or _id_of(refund.get("payment_intent")),
                          charge_id=_text(charge, "id") or _id_of(refund.get("charge")),
                          payment_id=_metadata(charge, "payment_id"))
    if payment is None or payment.status != "succeeded":
        raise NotYetKnown(f"No succeeded payment refunded by {stripe_id!r} (yet).")
    return _record_dashboard_refund(settings, payment, refund, as_of)


def _record_dashboard_refund(settings: TenantSettings, payment: Payment, refund: dict, as_of: datetime) -> str | None:
    currency = (_text(refund, "currency") or "").upper()
    units = refund.get("amount")
    if currency != payment.currency or type(units) is not int or units <= 0:
        return f"Refund {refund['id']} is not in the payment's currency, or has no amount: not recorded."
    try:
        amount = money.from_stripe_amount(units, currency)
    except money.MoneyError as exc:
        return f"Refund {refund['id']}: {exc}"
    payment = db.session.scalars(locking(sa.select(Payment).where(Payment.id == payment.id))
                                 .execution_options(populate_existing=True)).one()
    if payment.amount_refunded + amount > payment.amount:
        return (f"Refund {refund['id']} of {money.format_amount(amount, currency)} {currency} would exceed what "
                f"payment {payment.id} has left to refund: not recorded.")
    reason = _text(refund, "reason")
    transitions.create_refund({
        "tenant_id": payment.tenant_id, "livemode": payment.livemode, "invoice_id": payment.invoice_id,
        "payment_id": payment.id, "amount": amount, "currency": currency, "gateway": "stripe",
        "reason": reason if reason in ("duplicate", "fraudulent", "requested_by_customer") else "other",
        "note": "Refunded in Stripe's dashboard.", "stripe_refund_id": refund["id"], "requests": 0,
        "created_at": as_of}, as_of, settled=True)
    return None


def _dispute_payment(settings: TenantSettings, dispute: dict) -> Payment | None:
    if not (_id_of(dispute.get("charge")) or _id_of(dispute.get("payment_intent"))):
        return None  # names no charge: nothing of ours
    payment = _payment_of(settings, charge_id=_id_of(dispute.get("charge")),
                          intent_id=_id_of(dispute.get("payment_intent")))
    if payment is None:
        raise NotYetKnown(f"No payment of the disputed charge {_id_of(dispute.get('charge'))!r} (yet).")
    return payment


def _dispute_created(settings: TenantSettings, dispute: dict, as_of: datetime) -> str | None:
    """charge.dispute.created: the invoice flagged disputed, with `invoice.disputed` (finance's
    email is built from it)."""
    payment = _dispute_payment(settings, dispute)
    if payment is None:
        return "The dispute names no charge."
    currency, units = (_text(dispute, "currency") or payment.currency).upper(), dispute.get("amount")
    try:
        amount = money.format_amount(money.from_stripe_amount(units, currency), currency) \
            if type(units) is int and money.is_currency(currency) else None
    except money.MoneyError:
        amount = None
    invoice_transitions.mark_disputed(settings, payment.invoice_id, as_of, {
        "id": _text(dispute, "id"), "amount": amount, "currency": currency, "reason": _text(dispute, "reason"),
        "status": _text(dispute, "status"), "charge": _id_of(dispute.get("charge")), "payment": payment.id})
    return None


def _dispute_closed(settings: TenantSettings, dispute: dict, as_of: datetime) -> str | None:
    """charge.dispute.closed: a dispute won no longer flags the invoice (a lost one keeps it)."""
    payment = _dispute_payment(settings, dispute)
    if payment is not None and _text(dispute, "status") == "won":
        invoice_transitions.clear_disputed(payment.invoice_id)
    return None


HANDLERS: dict[str, Callable[[TenantSettings, dict, datetime], str | None]] = {
    "payment_intent.succeeded": _payment_intent,
    "payment_intent.payment_failed": _payment_intent,
    "payment_intent.requires_action": _payment_intent,
    "payment_intent.processing": _payment_intent,
    "charge.refunded": _charge_refunded,
    "charge.refund.updated": _refund,
    "refund.created": _refund,
    "refund.updated": _refund,
    "refund.failed": _refund,
    "charge.dispute.created": _dispute_created,
    "charge.dispute.closed": _dispute_closed,
}
