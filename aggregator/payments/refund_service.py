"""Refunds: giving back (part of) a payment, through the gateway that took it or recorded as
manual; never twice, never more than was paid.

Refunding through Stripe works like a charge, in three steps:

1. **Create** (one transaction, committed before any gateway call): lock the invoice and the
   payment, check what is left to refund (pending refunds count: `amount_refunded` includes them
   from creation, and the tables' checks refuse more than was paid), save the refund `pending`
   with a claim (`locked_until`). Its id makes the idempotency key (`refund-<id>`).
2. **Send** the Stripe Refund (no transaction open).
3. **Settle** (a second transaction): succeeded or failed; Stripe's own `pending` stays pending
   with its id (Stripe's `charge.refunded` webhook or the queue settles it); an unknown outcome
   (network error, 5xx, 429) stays pending and is resumed later.

The queue `refund.send` resumes every pending Stripe refund whose claim has run out (a request
that crashed between its commit and its call, an unknown outcome after its backoff, a
Stripe-pending refund now and then): it looks the refund up at Stripe first (by its id, or among
the PaymentIntent's refunds by `metadata.refund_id`) and sends it again, with the same key, only
if Stripe has no record of it.

A refund of money received outside a gateway is recorded `succeeded` at once."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from .. import due, money
from ..accounts.models import TenantSettings
from ..auth import Principal
from ..consolidate.models import Invoice
from ..db import db, locking, new_id, write_lock
from ..due import Lane, Worked
from ..errors import Conflict, InvalidInput, NotFound
from ..faults import crash_point
from ..pagination import Page, one, paginate
from . import transitions
from .gateway import RESOLVE_TRIES, GatewayMisconfigured, Outcome, PaymentGateway, RefundRequest
from .models import Payment, Refund

log = logging.getLogger(__name__)

#: How long the request (or worker) that sends a refund owns it (real time); a crashed sender's
#: refund is resumed by the queue once it has passed.
SEND_LEASE = timedelta(minutes=5)
#: Stripe said `pending`: look again after this long, unless its webhook settles it first.
STRIPE_PENDING_RECHECK = timedelta(minutes=30)
#: An unknown outcome is looked up again after 1 min, 2, 4, … at most an hour: doubling with each
#: round of tries, counted from the requests made (a round makes at most `_ROUND` of them).
FIRST_RETRY, LONGEST_RETRY = timedelta(minutes=1), timedelta(hours=1)
_ROUND = 2 * RESOLVE_TRIES + 1
SEND_BATCH = 20

_refunds = Refund.__table__


class NothingToRefund(Conflict):
    code = "nothing_to_refund"


class RefundExceedsPayment(Conflict):
    code = "refund_exceeds_payment"


class PaymentNotRefundable(Conflict):
    code = "payment_not_refundable"


class GatewayNotConfigured(Conflict):
    code = "gateway_not_configured"


def retry_delay(requests: int) -> timedelta:
    """How long an unknown outcome waits, after `requests` gateway calls in all, before the queue
    looks it up again."""
    rounds = max(1, -(-requests // _ROUND))
    return min(FIRST_RETRY * 2 ** min(rounds - 1, 20), LONGEST_RETRY)


# --- creating a refund ------------------------------------------------------------------------

def refund_invoice(principal: Principal, invoice_id: str, body: dict, now: datetime, adapters) -> Refund:
    """Refund (part of) a payment of the invoice as of `now` (the principal's clock): by Stripe
    if Stripe took it (committed pending, then sent, then settled), else recorded as manual."""
    real_now = adapters.clocks.base.now()
    try:
        refund, request = _create(principal, invoice_id, body, now, real_now, adapters)
        gateway = gateway_of(refund, adapters) if request else None
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if request is None:  # money returned outside a gateway: recorded succeeded
        return refund
    return send_created(refund, request, gateway, now, real_now)


def send_created(refund: Refund, request: RefundRequest, gateway: PaymentGateway, now: datetime,
                 real_now: datetime) -> Refund:
    """Steps 2 and 3 of a refund created and committed: send it, settle it, commit."""
    crash_point("refund.create.after_commit")
    outcome = _send(request, gateway)
    try:
        _settle(refund, outcome, now, real_now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    crash_point("refund.settle.after_commit")
    return refund


def _create(principal: Principal, invoice_id: str, body: dict, now: datetime, real_now: datetime,
            adapters) -> tuple[Refund, RefundRequest | None]:
    """Step 1, in the caller's transaction: lock the invoice and its payments, check, create.
    -> the refund, and what to send to Stripe (None: a manual refund, recorded succeeded)."""
    write_lock()
    invoice = db.session.scalars(locking(sa.select(Invoice).where(
        Invoice.id == invoice_id, Invoice.tenant_id == principal.tenant_id,
        Invoice.livemode == principal.livemode), of=Invoice).execution_options(populate_existing=True)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    return create_for(invoice, body, _parse_amount(body.get("amount"), invoice.currency), now, real_now, adapters)


def create_for(invoice: Invoice, body: dict, amount: int | None, now: datetime, real_now: datetime, adapters, *,
               credit_note_id: str | None = None, to_balance: bool = False) -> tuple[Refund, RefundRequest | None]:
    """Step 1 for an invoice the caller locked: `amount` (None: all that is left of the payment)
    of the payment `body["payment"]` or the latest with enough left. A credit note's refund
    names it (`credit_note_id`); `to_balance`, the money stays with the platform as the
    customer's credit (gateway "balance", succeeded at once)."""
    payment = _choose_payment(invoice, body.get("payment"), amount)
    left = payment.amount - payment.amount_refunded
    amount = left if amount is None else amount
    if amount > left:
        raise RefundExceedsPayment(
            f"The payment {payment.id} has {money.format_amount(left, payment.currency)} {payment.currency} left "
            f"to refund (pending refunds included).", fields={"amount": ["More than is left to refund."]})
    stripe = payment.gateway == "stripe" and not to_balance
    if stripe:
        _check_sendable(payment, amount, adapters)
    row = {"id": new_id("re"), "tenant_id": invoice.tenant_id, "livemode": invoice.livemode,
           "invoice_id": invoice.id, "payment_id": payment.id, "amount": amount, "currency": payment.currency,
           "reason": body.get("reason"), "note": body.get("note"), "requests": 0, "credit_note_id": credit_note_id,
           "gateway": "balance" if to_balance else payment.gateway,
           "locked_until": real_now + due.lease(SEND_LEASE) if stripe else None, "created_at": now}
    try:
        refund = transitions.create_refund(row, now, settled=not stripe)
    except sa.exc.IntegrityError as exc:  # the tables' checks: more than was paid (locks make it rare)
        raise RefundExceedsPayment("More than is left to refund of the payment.",
                                   fields={"amount": ["More than is left to refund."]}) from exc
    return refund, _request_of(refund, payment) if stripe else None


def _parse_amount(text: str | None, currency: str) -> int | None:
    if text is None:
        return None
    try:
        amount = money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise InvalidInput.on("amount", str(exc)) from exc
    if amount <= 0:
        raise InvalidInput.on("amount", "A refund's amount must be more than zero.")
    return amount


def _choose_payment(invoice: Invoice, payment_id: str | None, amount: int | None) -> Payment:
    """The payment named, else the latest succeeded one with `amount` (or anything) left."""
    query = locking(sa.select(Payment).where(Payment.invoice_id == invoice.id)
                    .order_by(Payment.created_at.desc(), Payment.id.desc())).execution_options(populate_existing=True)
    if payment_id is not None:
        payment = db.session.scalars(query.where(Payment.id == payment_id)).first()
        if payment is None:
            raise NotFound(f"No such payment of invoice {invoice.id}: {payment_id!r}.")
        if payment.status != "succeeded":
            raise PaymentNotRefundable(f"The payment {payment.id} is {payment.status}: only a succeeded payment "
                                       "can be refunded.")
        if payment.amount_refunded >= payment.amount:
            raise NothingToRefund(f"The payment {payment.id} is refunded in full (pending refunds included).")
        return payment
    payments = db.session.scalars(query.where(Payment.status == "succeeded")).all()
    with_left = [p for p in payments if p.amount > p.amount_refunded]
    if not with_left:
        raise NothingToRefund(f"The invoice {invoice.id} has no payment left to refund "
                              "(pending refunds included).")
    for payment in with_left:
        if amount is None or payment.amount - payment.amount_refunded >= amount:
            return payment
    most = max(p.amount - p.amount_refunded for p in with_left)
    raise RefundExceedsPayment(
        f"No payment of invoice {invoice.id} has that much left to refund: at most "
        f"{money.format_amount(most, invoice.currency)} {invoice.currency} (pending refunds included).",
        fields={"amount": ["More than is left to refund of any one payment."]})


def _check_sendable(payment: Payment, amount: int, adapters) -> None:
    """What would make a Stripe refund fail before it is even saved."""
    if not payment.stripe_payment_intent_id:
        raise PaymentNotRefundable(f"The payment {payment.id} has no Stripe PaymentIntent to refund.")
    try:
        money.to_stripe_amount(amount, payment.currency)
    except money.MoneyError as exc:
        raise InvalidInput.on("amount", str(exc)) from exc
    settings = db.session.get(TenantSettings, (payment.tenant_id, payment.livemode))
    if not settings.stripe_secret_key:
        raise GatewayNotConfigured("Stripe took this payment but is not configured any more: set the tenant's "
                                   "Stripe secret key to refund it.")


# --- sending and settling ---------------------------------------------------------------------

def _request_of(refund: Refund, payment: Payment) -> RefundRequest:
    return RefundRequest(
        refund_id=refund.id, idempotency_key=refund.idempotency_key,
        payment_intent_id=payment.stripe_payment_intent_id,
        amount=money.to_stripe_amount(refund.amount, refund.currency), reason=refund.reason,
        metadata={"tenant": refund.tenant_id, "mode": "live" if refund.livemode else "test",
                  "invoice_id": refund.invoice_id, "payment_id": refund.payment_id, "refund_id": refund.id})


def gateway_of(refund: Refund, adapters) -> PaymentGateway:
    settings = db.session.get(TenantSettings, (refund.tenant_id, refund.livemode))
    return adapters.payments.for_settings(settings)


def _send(request: RefundRequest, gateway: PaymentGateway, *, resume: bool = False,
          stripe_refund_id: str | None = None) -> Outcome:
    """Step 2 (no transaction open): send the refund, or, resuming, look it up first."""
    try:
        crash_point("refund.call.before_stripe")
        outcome = gateway.refund(request, resume=resume, refund_id=stripe_refund_id)
        crash_point("refund.call.after_stripe")
        return outcome
    except GatewayMisconfigured as exc:
        log.error("refund %s: the gateway refused our settings: %s", request.refund_id, exc)
        return Outcome("unknown", message=str(exc))  # a failures.reason


def _settle(refund: Refund, outcome: Outcome, as_of: datetime, real_now: datetime) -> str:
    """Step 3, in the caller's transaction: store the outcome. -> what it was."""
    stripe_refund_id = outcome.extra.get("refund_id")
    values: dict = {"requests": _refunds.c.requests + outcome.requests}
    if stripe_refund_id:
        values["stripe_refund_id"] = stripe_refund_id
    if outcome.status in ("succeeded", "failed"):
        if outcome.status == "failed":
            values["failure_message"] = (outcome.message or "The gateway refused the refund.")[:1000]
        transitions.settle_refund(refund, outcome.status, as_of, **values)
        return outcome.status
    if outcome.status == "pending":  # Stripe is processing it: its webhook, or a later look, settles it
        values.update(locked_until=real_now + STRIPE_PENDING_RECHECK, failure_message=None)
    else:  # unknown: looked up again after a backoff
        values.update(locked_until=real_now + retry_delay(refund.requests + outcome.requests),
                      failure_message=(outcome.message or "")[:1000] or None)
    db.session.execute(sa.update(_refunds).where(_refunds.c.id == refund.id, _refunds.c.status == "pending")
                       .values(**values).execution_options(synchronize_session=False))
    return outcome.status


# --- the queue: resuming pending Stripe refunds -------------------------------------------------

@dataclass(frozen=True)
class Claim:
    token: str
    ids: list[str]


def claim_refunds(now: datetime, limit: int, lane: Lane | None = None) -> Claim:
    """Claim up to `limit` pending Stripe refunds that nobody holds (their lease ran out, or
    never was), and commit. Workers claiming at once get different ones (SKIP LOCKED on
    PostgreSQL; SQLite serializes writers)."""
    r = _refunds.c
    ready = (sa.select(r.id).where(sa.text("refunds.status = 'pending'"), r.gateway == "stripe",
                                   sa.or_(r.locked_until.is_(None), r.locked_until < now))
             .order_by(r.created_at, r.id).limit(limit))
    return Claim(secrets.token_hex(8), due.claim_ready(_refunds, ready, lane, locked_until=now + due.lease(SEND_LEASE)))


def resume_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """The queue's batch: claim pending Stripe refunds, look each up at Stripe (send it again,
    same key, only if Stripe has no record of it) and settle it. `now`: real time (leases);
    each refund is settled as of its tenant's clock."""
    claim = claim_refunds(now, limit, lane)
    if not claim.ids:
        return Worked()
    refunds = db.session.scalars(sa.select(Refund).where(Refund.id.in_(claim.ids)).order_by(Refund.id)).all()
    payments = {p.id: p for p in db.session.scalars(sa.select(Payment).where(
        Payment.id.in_({r.payment_id for r in refunds})))}
    sends = [(_request_of(r, payments[r.payment_id]), gateway_of(r, adapters), r.stripe_refund_id) for r in refunds]
    db.session.commit()  # no transaction stays open while Stripe is talked to
    crash_point("refund.resume.after_claim")
    outcomes = [_send(request, gateway, resume=True, stripe_refund_id=known) for request, gateway, known in sends]
    return due.settle_each(refunds, outcomes, adapters,
                           lambda refund, outcome, as_of: _settle(refund, outcome, as_of, now))


def pending_backlog() -> tuple[int, datetime | None]:
    """Pending Stripe refunds (being sent, or waiting for their outcome to be learned)."""
    return due.waiting(_refunds, sa.text("refunds.status = 'pending'"), _refunds.c.gateway == "stripe")


# --- reading ----------------------------------------------------------------------------------

def _scoped(principal: Principal) -> sa.Select:
    return sa.select(Refund).where(Refund.tenant_id == principal.tenant_id, Refund.livemode == principal.livemode)


def get_refund(principal: Principal, refund_id: str) -> Refund:
    return one(_scoped(principal), Refund.id, refund_id, "refund")


def list_refunds(principal: Principal, limit: int, starting_after: str | None = None, invoice: str | None = None,
                 payment: str | None = None, status: str | None = None) -> Page:
    """Newest first; filtered by invoice, payment, status."""
    query = _scoped(principal)
    if invoice:
        query = query.where(Refund.invoice_id == invoice)
    if payment:
        query = query.where(Refund.payment_id == payment)
    if status:
        query = query.where(Refund.status == status)
    return paginate(query, Refund.id, limit, starting_after)


def list_invoice_refunds(principal: Principal, invoice_id: str, limit: int,
                         starting_after: str | None = None) -> Page:
    """An invoice's refunds (NotFound if the invoice is not the caller's)."""
    exists = db.session.scalar(sa.select(Invoice.id).where(
        Invoice.id == invoice_id, Invoice.tenant_id == principal.tenant_id, Invoice.livemode == principal.livemode))
    if exists is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    return list_refunds(principal, limit, starting_after, invoice=invoice_id)
