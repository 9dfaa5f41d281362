"""Charging invoices: on their charge instant (due work, as of that instant), on the retry
schedule, or at an operator's request; never twice.

One charge run works in batches, three steps each:

1. **Start** (one transaction, committed before any gateway call): lock the batch's invoices;
   for each one still open with something left to pay, save a `pending` payment (its id makes
   the idempotency key) — or find the pending attempt a crashed run left, to be resumed. An
   invoice with nothing due is marked paid; one that no gateway charges (no Stripe settings,
   no payment method on file) waits for a recorded payment (`collection = manual`).
2. **Call** the gateway for each attempt, concurrently up to the tenant's concurrency and at
   most its rate (Stripe: ~25 writes/s in test mode, ~100 live). A resumed attempt is looked up
   first and sent again (same key) only if Stripe has no record of it.
3. **Settle** (one transaction): store each outcome on its payment and apply it to its invoice
   (`apply_outcomes`, shared with Stripe's webhooks).

An attempt whose outcome stays unknown (Stripe unreachable) keeps its invoice due: the run
raises `ChargesIncomplete` after the rest are done, the lane backs off and the next run
resolves it by lookup."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Sequence

import sqlalchemy as sa

from .. import due, money
from ..accounts.models import Customer, TenantSettings
from ..accounts.service import tenant_settings
from ..consolidate import transitions as invoice_transitions
from ..consolidate.models import Invoice
from ..consolidate.snapshots import columns, invoice_snapshot
from ..db import db, locking, new_id
from ..events.service import NewEvent, record
from . import transitions
from .declines import HARD_DECLINES, is_hard
from .gateway import DEFAULT_CONCURRENCY, Charge, GatewayMisconfigured, Outcome, RateLimiter, default_rate
from .models import Payment
from .schedule import next_retry

log = logging.getLogger(__name__)

BATCH = 200
#: How long a charge run owns the attempts it started (real time); a killed run's attempts are
#: resumed by the next run once it has passed.
ATTEMPT_LEASE = timedelta(minutes=5)

_invoices = Invoice.__table__


class ChargesIncomplete(Exception):
    """Some attempts' outcomes could not be learned (the gateway did not answer): their invoices
    stay due, and the lane runs again after a backoff."""


@dataclass
class ChargeReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    requires_action: int = 0
    processing: int = 0
    unknown: int = 0
    paid_without_charge: int = 0
    manual: int = 0
    requests: int = 0
    payments: list[str] = field(default_factory=list)

    def add(self, other: "ChargeReport") -> None:
        for name in ("attempted", "succeeded", "failed", "requires_action", "processing", "unknown",
                     "paid_without_charge", "manual", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.payments += other.payments


@dataclass
class _Attempt:
    payment: Payment
    resume: bool
    charge: Charge | None  # None: refused before any call (outcome set)
    outcome: Outcome | None = None
    # read before the start commits (the calls run in threads, outside the session)
    payment_intent_id: str | None = None


# --- due work ---------------------------------------------------------------------------------

def next_charge_due(tenant_id: str, livemode: bool) -> datetime | None:
    """The lane's earliest scheduled charge (open invoices only carry one)."""
    return db.session.scalar(sa.select(sa.func.min(Invoice.next_charge_at)).where(
        Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.next_charge_at.is_not(None)))


def charge_due(tenant_id: str, livemode: bool, as_of: datetime, adapters, *,
               on_batch: Callable[[ChargeReport], None] | None = None) -> ChargeReport:
    """Charge every invoice of the lane whose charge is due at or before `as_of`, as of `as_of`
    (their payments' and invoices' instants are `as_of`, whenever this runs)."""
    settings = tenant_settings(tenant_id, livemode)
    gateway = adapters.payments.for_settings(settings) if adapters.payments else None
    report, skip = ChargeReport(), set()
    while True:
        ids = db.session.scalars(
            sa.select(Invoice.id).where(Invoice.tenant_id == tenant_id, Invoice.livemode == livemode,
                                        Invoice.next_charge_at <= as_of, Invoice.id.not_in(skip) if skip else sa.true())
            .order_by(Invoice.next_charge_at, Invoice.id).limit(BATCH)).all()
        if not ids:
            break
        batch = _charge_batch(settings, gateway, ids, as_of, adapters, operator=False)
        skip.update(db.session.scalars(sa.select(Invoice.id).where(  # outcomes not known yet
            Invoice.id.in_(ids), Invoice.next_charge_at <= as_of)).all())
        report.add(batch)
        if on_batch:
            on_batch(batch)
    if report.unknown:
        raise ChargesIncomplete(f"{report.unknown} charge(s) of {tenant_id} ({'live' if livemode else 'test'}) "
                                f"due {as_of.isoformat()} have no known outcome yet; they are looked up again later.")
    return report


def charge_now(tenant_id: str, livemode: bool, invoice_ids: Sequence[str], as_of: datetime, adapters) -> ChargeReport:
    """Charge these invoices now, at an operator's request (POST /v1/invoices/{id}/pay, the CLI),
    as of `as_of`, whatever their schedule."""
    settings = tenant_settings(tenant_id, livemode)
    gateway = adapters.payments.for_settings(settings) if adapters.payments else None
    return _charge_batch(settings, gateway, list(invoice_ids), as_of, adapters, operator=True)


# --- one batch --------------------------------------------------------------------------------

def _charge_batch(settings: TenantSettings, gateway, ids: list[str], as_of: datetime, adapters, *,
                  operator: bool) -> ChargeReport:
    real_now = adapters.clocks.base.now()
    report = ChargeReport()
    try:
        attempts = _start(settings, gateway, ids, as_of, real_now, report, operator=operator)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if not attempts:
        return report
    concurrency = settings.stripe_concurrency or DEFAULT_CONCURRENCY
    limiter = RateLimiter(settings.stripe_rate_limit or default_rate(settings.livemode))
    to_call = [a for a in attempts if a.charge is not None]
    misconfigured: list[GatewayMisconfigured] = []
    found, lookups = _look_up_resumed(gateway, [a for a in to_call if a.resume and not a.payment_intent_id],
                                      limiter)

    def call(attempt: _Attempt) -> None:
        looked_up = attempt.charge.payment_id in found
        try:
            attempt.outcome = gateway.charge(attempt.charge, resume=attempt.resume and not looked_up,
                                             payment_intent_id=attempt.payment_intent_id,
                                             pace=limiter.wait, found=found.get(attempt.charge.payment_id))
        except GatewayMisconfigured as exc:
            misconfigured.append(exc)
            attempt.outcome = Outcome("unknown", message=str(exc))

    if len(to_call) == 1 or concurrency == 1:
        for attempt in to_call:
            call(attempt)
    elif to_call:
        with ThreadPoolExecutor(max_workers=min(concurrency, len(to_call)), thread_name_prefix="charge") as pool:
            list(pool.map(call, to_call))
    report.requests += lookups
    try:
        apply_outcomes(settings, [(a.payment, a.outcome) for a in attempts], as_of, report)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if misconfigured:
        raise misconfigured[0]
    return report


def _look_up_resumed(gateway, resumed: list[_Attempt], limiter: RateLimiter) -> tuple[dict[str, Any], int]:
    """Attempts a crashed run may have sent, looked up together (one pass over each customer's
    PaymentIntents instead of one per attempt). -> ({payment id: its PaymentIntent or None
    (Stripe has no record: sent again with the same key)}, requests made); an attempt left
    out (the lookup failed) is looked up on its own when it is called."""
    if len(resumed) < 2:
        return {}, 0
    charges = [a.charge for a in resumed]
    try:
        intents, calls = gateway.find_intents(charges, pace=limiter.wait)
    except Exception as exc:  # noqa: BLE001 — each attempt is then looked up (or refused) on its own
        log.warning("looking up %d resumed attempts together failed (%s); one by one", len(charges), exc)
        return {}, 0
    return {c.payment_id: intents.get(c.payment_id) for c in charges}, calls


def _start(settings: TenantSettings, gateway, ids: list[str], as_of: datetime, real_now: datetime,
           report: ChargeReport, *, operator: bool) -> list[_Attempt]:
    """Step 1, in the caller's transaction: lock the invoices, start (or find) their attempts."""
    where = [Invoice.id.in_(ids), Invoice.tenant_id == settings.tenant_id, Invoice.livemode == settings.livemode,
             Invoice.status == "open"]
    if not operator:
        where.append(Invoice.next_charge_at <= as_of)
    invoices = db.session.scalars(locking(sa.select(Invoice).where(*where).order_by(Invoice.id), of=Invoice)
                                  .execution_options(populate_existing=True)).all()
    if not invoices:
        return []
    pending = {p.invoice_id: p for p in db.session.scalars(
        locking(sa.select(Payment).where(Payment.invoice_id.in_([i.id for i in invoices]),
                                         Payment.status == "pending"))).all()}
    attempts, rows, paid_now, manual, busy = [], [], [], [], []
    for invoice in invoices:
        customer: Customer = invoice.customer
        found = pending.get(invoice.id)
        if found is not None:
            if found.locked_until is not None and found.locked_until > real_now:
                busy.append(invoice.id)  # another run (or request) is sending it right now
                continue
            if found.gateway_status == "processing":
                continue  # the gateway is still processing it: its webhook settles it
            found.locked_until = real_now + due.lease(ATTEMPT_LEASE)
            attempts.append(_Attempt(found, True, _charge_of(found, invoice, settings) if gateway else None,
                                     None if gateway else Outcome("unknown", message="Stripe is not configured."),
                                     payment_intent_id=found.stripe_payment_intent_id))
            continue
        remaining = invoice.amount_due - invoice.amount_paid
        if remaining <= 0:
            paid_now.append(invoice.id)
            continue
        if gateway is None or not customer.stripe_customer_id or not customer.stripe_payment_method:
            manual.append(invoice.id)
            continue
        payment_id = new_id("pay")
        attempt_number = invoice.attempt_count + 1
        trigger = "operator" if operator else ("scheduled" if invoice.first_failed_at is None else "retry")
        row = {"id": payment_id, "tenant_id": invoice.tenant_id, "livemode": invoice.livemode,
               "invoice_id": invoice.id, "customer_id": invoice.customer_id, "gateway": "stripe", "method": "card",
               "trigger": trigger, "attempt": attempt_number, "amount": remaining, "currency": invoice.currency,
               "stripe_customer_id": customer.stripe_customer_id,
               "stripe_payment_method": customer.stripe_payment_method, "created_at": as_of,
               "locked_until": real_now + due.lease(ATTEMPT_LEASE), "requests": 0, "hard_decline": False,
               "amount_refunded": 0}
        rows.append(row)
    if rows:
        transitions.start_attempts(rows)
        by_invoice = {i.id: i for i in invoices}
        db.session.execute(sa.update(_invoices).where(_invoices.c.id == sa.bindparam("invoice"))
                           .values(attempt_count=sa.bindparam("attempt"), collection="processing",
                                   next_charge_at=as_of if operator else _invoices.c.next_charge_at)
                           .execution_options(synchronize_session=False),
                           [{"invoice": r["invoice_id"], "attempt": r["attempt"]} for r in rows])
        new = {p.id: p for p in db.session.scalars(sa.select(Payment).where(
            Payment.id.in_([r["id"] for r in rows]))).all()}
        for row in rows:
            payment, invoice = new[row["id"]], by_invoice[row["invoice_id"]]
            try:
                attempts.append(_Attempt(payment, False, _charge_of(payment, invoice, settings)))
            except money.MoneyError as exc:
                attempts.append(_Attempt(payment, False, None, Outcome(
                    "failed", failure_code="amount_not_chargeable", message=str(exc))))
    if paid_now:
        invoice_transitions.mark_paid(settings, paid_now, as_of)
        report.paid_without_charge += len(paid_now)
    if manual:
        db.session.execute(sa.update(_invoices).where(_invoices.c.id.in_(manual))
                           .values(collection="manual", next_charge_at=None)
                           .execution_options(synchronize_session=False))
        report.manual += len(manual)
    report.unknown += len(busy)
    report.attempted += len(rows)
    return attempts


def _charge_of(payment: Payment, invoice: Invoice, settings: TenantSettings) -> Charge:
    return Charge(
        payment_id=payment.id, idempotency_key=payment.idempotency_key,
        amount=money.to_stripe_amount(payment.amount, payment.currency), currency=payment.currency,
        customer=payment.stripe_customer_id, payment_method=payment.stripe_payment_method,
        metadata={"tenant": settings.tenant_id, "mode": "live" if settings.livemode else "test",
                  "invoice_id": invoice.id, "invoice_number": invoice.number or "", "payment_id": payment.id})


# --- outcomes ---------------------------------------------------------------------------------

def apply_outcomes(settings: TenantSettings, results: Sequence[tuple[Payment, Outcome]], as_of: datetime,
                   report: ChargeReport | None = None) -> None:
    """Step 3 (and Stripe's webhooks): store each outcome on its payment and apply it to the
    payment's invoice, in the caller's transaction. Outcomes that arrive for a payment already
    settled change nothing."""
    report = report if report is not None else ChargeReport()
    changes = []
    for payment, outcome in results:
        report.requests += outcome.requests
        base = {"requests": Payment.requests + outcome.requests}
        if outcome.payment_intent_id:
            base["stripe_payment_intent_id"] = outcome.payment_intent_id
        if outcome.charge_id:
            base["stripe_charge_id"] = outcome.charge_id
        if outcome.gateway_status:
            base["gateway_status"] = outcome.gateway_status
        if outcome.status in ("unknown", "pending"):
            transitions.note_payment(payment, **base, locked_until=None,
                                     failure_message=outcome.message if outcome.status == "unknown" else None)
            if outcome.status == "unknown":
                report.unknown += 1
            else:
                report.processing += 1
                _set_invoice(payment.invoice_id, collection="processing", next_charge_at=None)
            continue
        values = dict(base, locked_until=None)
        if outcome.status == "failed":
            values.update(failure_code=outcome.failure_code, decline_code=outcome.decline_code,
                          failure_message=(outcome.message or "")[:1000] or None,
                          hard_decline=is_hard(outcome.failure_code, outcome.decline_code))
        elif outcome.status == "requires_action":
            values.update(failure_message=outcome.message)
        changes.append((payment, outcome.status, values))
    changed = transitions.settle_payments(changes, as_of)
    paid, events = [], []
    for payment in changed:
        invoice = db.session.get(Invoice, payment.invoice_id, populate_existing=True,
                                 with_for_update={"of": Invoice} if db.session.get_bind().dialect.name == "postgresql" else None)
        if payment.status == "succeeded":
            report.succeeded += 1
            report.payments.append(payment.id)
            paid_total = invoice.amount_paid + payment.amount
            _set_invoice(invoice.id, amount_paid=paid_total)
            if paid_total >= invoice.amount_due:
                paid.append(invoice.id)
            else:
                _set_invoice(invoice.id, collection="manual", next_charge_at=None)
        elif payment.status == "requires_action":
            report.requires_action += 1
            _set_invoice(invoice.id, collection="action_required", next_charge_at=None)
            events.append(_invoice_event(invoice, "invoice.payment_action_required", payment))
        elif payment.status == "failed":
            report.failed += 1
            events += _failed(settings, invoice, payment, as_of)
    if paid:
        invoice_transitions.mark_paid(settings, paid, as_of)
    if events:
        record(settings.tenant_id, settings.livemode, as_of, events)


def _failed(settings: TenantSettings, invoice: Invoice, payment: Payment, as_of: datetime) -> list[NewEvent]:
    """A declined (or refused) attempt: retry on the schedule, wait for a new payment method
    (hard declines), or give up (the schedule ran out)."""
    if invoice.status != "open":
        return []
    first_failed = invoice.first_failed_at or as_of
    if payment.failure_code == "amount_not_chargeable":
        _set_invoice(invoice.id, first_failed_at=first_failed, collection="manual", next_charge_at=None)
        return [_invoice_event(invoice, "invoice.payment_failed", payment, next_retry_at=None)]
    if payment.hard_decline:
        _set_invoice(invoice.id, first_failed_at=first_failed, collection="payment_method_required",
                     next_charge_at=None)
        return [_invoice_event(invoice, "invoice.payment_failed", payment, next_retry_at=None)]
    retry_at = next_retry(first_failed, as_of, settings.retry_days or [], settings.timezone)
    if retry_at is not None:
        _set_invoice(invoice.id, first_failed_at=first_failed, collection="retrying", next_charge_at=retry_at)
        return [_invoice_event(invoice, "invoice.payment_failed", payment, next_retry_at=retry_at)]
    _set_invoice(invoice.id, first_failed_at=first_failed, next_charge_at=None,
                 collection="past_due" if settings.after_final_failure == "past_due" else invoice.collection)
    events = [_invoice_event(invoice, "invoice.payment_failed", payment, next_retry_at=None, final=True)]
    if settings.after_final_failure == "uncollectible":
        record(settings.tenant_id, settings.livemode, as_of, events)
        invoice_transitions.mark_uncollectible(settings, invoice.id, as_of,
                                               {invoice.id: {"payment": payment.id}})
        return []
    return events


def _set_invoice(invoice_id: str, **values) -> None:
    db.session.execute(sa.update(_invoices).where(_invoices.c.id == invoice_id).values(**values)
                       .execution_options(synchronize_session=False))


def _invoice_event(invoice: Invoice, type_: str, payment: Payment, *, next_retry_at: datetime | None = None,
                   final: bool = False) -> NewEvent:
    db.session.refresh(invoice)
    data: dict[str, Any] = {"object": invoice_snapshot(columns(invoice), invoice.customer.external_id),
                            "payment": payment.id}
    if type_ == "invoice.payment_failed":
        data.update(next_retry_at=next_retry_at.isoformat() if next_retry_at else None, final=final,
                    hard_decline=payment.hard_decline, failure_code=payment.failure_code,
                    decline_code=payment.decline_code, failure_message=payment.failure_message,
                    hard_decline_reason=HARD_DECLINES.get(payment.decline_code or "")
                    or HARD_DECLINES.get(payment.failure_code or "") if payment.hard_decline else None)
    return NewEvent(type_, invoice.id, data)
