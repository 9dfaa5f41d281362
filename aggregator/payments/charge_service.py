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
raises `ChargesIncomplete` after the rest are done (so do refused credentials, before any
call), the lane's other due work goes on, the charges are retried after a backoff and the next
run resolves an unknown outcome by lookup."""
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
from ..db import db, in_ids, locking, new_id, write_lock
from ..events.service import NewEvent, record
from ..faults import crash_point
from . import dunning, transitions
from .declines import HARD_DECLINES, is_hard
from .failures import reason
from .gateway import (
    DEFAULT_CONCURRENCY,
    Charge,
    GatewayMisconfigured,
    Outcome,
    PaymentGateway,
    RateLimiter,
    charges_automatically,
    default_rate,
)
from .models import Payment

log = logging.getLogger(__name__)

BATCH = 200
#: How long a charge run owns the attempts it started (real time); a killed run's attempts are
#: resumed by the next run once it has passed.
ATTEMPT_LEASE = timedelta(minutes=5)

#: A payment the gateway is still processing (a bank debit) is settled by its webhook; it is
#: also looked up again this long after (on the tenant's clock), in case the webhook never comes.
PROCESSING_RECHECK = timedelta(hours=6)


class ChargesIncomplete(due.NotDoneYet):
    """Some attempts' outcomes could not be learned (the gateway did not answer:
    `charge_outcome_unknown`), or the gateway refused the tenant's settings before any call
    (`gateway_misconfigured`): their invoices stay due, and the charges run again after a backoff."""

    def __init__(self, message: str, reason: str = "charge_outcome_unknown"):
        super().__init__(message)
        self.reason = reason


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
    canceled: int = 0
    requests: int = 0
    payments: list[str] = field(default_factory=list)
    # invoices whose attempt awaiting authentication was canceled: charged anew by the same run
    superseded: list[str] = field(default_factory=list)

    def add(self, other: "ChargeReport") -> None:
        for name in ("attempted", "succeeded", "failed", "requires_action", "processing", "unknown",
                     "paid_without_charge", "manual", "canceled", "requests"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.payments += other.payments
        self.superseded += other.superseded


@dataclass
class _Attempt:
    payment: Payment
    resume: bool
    charge: Charge | None  # None: refused before any call (outcome set)
    outcome: Outcome | None = None
    # read before the start commits (the calls run in threads, outside the session)
    payment_intent_id: str | None = None
    # an attempt awaiting the customer's authentication, canceled at the gateway before the
    # invoice is charged anew (a new payment method): never two charges that could both succeed
    cancel: bool = False


# --- due work ---------------------------------------------------------------------------------

def next_charge_due(tenant_id: str, livemode: bool) -> datetime | None:
    """The lane's earliest scheduled charge (open invoices only carry one)."""
    return db.session.scalar(sa.select(sa.func.min(Invoice.next_charge_at)).where(
        Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.next_charge_at.is_not(None)))


def charge_due(tenant_id: str, livemode: bool, as_of: datetime, adapters, *,
               on_batch: Callable[[ChargeReport], None] | None = None, batch_size: int = BATCH) -> ChargeReport:
    """Charge every invoice of the lane whose charge is due at or before `as_of`, as of `as_of`
    (their payments' and invoices' instants are `as_of`, whenever this runs), `batch_size`
    invoices to a batch.

    Batches overlap so that the gateway is never idle while the database works: the next
    batch is started (its attempts committed) and its calls queued while the current batch's
    calls are in flight, and the current one is settled while the next one's are."""
    settings = tenant_settings(tenant_id, livemode)
    gateway = adapters.payments.for_settings(settings)
    report = ChargeReport()
    after: tuple[datetime, str] | None = None  # keyset: the last (next_charge_at, id) taken
    with _Caller(settings, gateway) as caller:
        def begin() -> _Batch | None:
            nonlocal after
            if caller.misconfigured:
                return None
            query = sa.select(Invoice.id, Invoice.next_charge_at).where(
                Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.next_charge_at <= as_of)
            if after is not None:
                query = query.where(sa.tuple_(Invoice.next_charge_at, Invoice.id) > sa.tuple_(*after))
            rows = db.session.execute(query.order_by(Invoice.next_charge_at, Invoice.id).limit(batch_size)).all()
            if not rows:
                return None
            after = (rows[-1][1], rows[-1][0])  # in flight, or left due (outcome unknown): not taken again
            batch = _begin(settings, gateway, [r[0] for r in rows], as_of, adapters, operator=False)
            caller.submit(batch)
            return batch

        def finish(batch: _Batch) -> None:
            _finish(settings, caller, batch, as_of)
            report.add(batch.report)
            if on_batch:
                on_batch(batch.report)

        current = begin()
        while current is not None:
            try:
                following = begin()  # its calls queue behind the current batch's
            except BaseException:
                finish(current)  # its calls were made: their outcomes are kept
                raise
            try:
                finish(current)
            except BaseException:
                if following is not None:
                    finish(following)
                raise
            current = following
        if report.superseded and not caller.misconfigured:  # charged anew now that nothing else can pay them
            superseded, report.superseded = report.superseded, []
            batch = _begin(settings, gateway, superseded, as_of, adapters, operator=False)
            caller.submit(batch)
            finish(batch)
    if caller.misconfigured:
        raise ChargesIncomplete(f"the gateway refused the settings of {tenant_id}: {caller.misconfigured[0]}",
                                "gateway_misconfigured") from caller.misconfigured[0]
    if report.unknown:
        raise ChargesIncomplete(f"{report.unknown} charge(s) of {tenant_id} ({'live' if livemode else 'test'}) "
                                f"due {as_of.isoformat()} have no known outcome yet; they are looked up again later.")
    return report


def charge_now(tenant_id: str, livemode: bool, invoice_ids: Sequence[str], as_of: datetime, adapters) -> ChargeReport:
    """Charge these invoices now, at an operator's request (POST /v1/invoices/{id}/pay, the CLI),
    as of `as_of`, whatever their schedule."""
    settings = tenant_settings(tenant_id, livemode)
    gateway = adapters.payments.for_settings(settings)
    report = ChargeReport()
    with _Caller(settings, gateway) as caller:
        ids = list(invoice_ids)
        for _ in range(2):  # a second pass charges what an attempt awaiting authentication held up
            batch = _begin(settings, gateway, ids, as_of, adapters, operator=True)
            caller.submit(batch)
            _finish(settings, caller, batch, as_of)
            ids, batch.report.superseded = batch.report.superseded, []
            report.add(batch.report)
            if not ids or caller.misconfigured:
                break
    if caller.misconfigured:
        raise caller.misconfigured[0]
    return report


# --- batches ----------------------------------------------------------------------------------

@dataclass
class _Batch:
    attempts: list[_Attempt]
    report: ChargeReport
    futures: list = field(default_factory=list)


class _Caller:
    """The gateway calls of one run: a pool of the tenant's concurrency, paced by one rate
    limiter for the whole run (so batches do not each start at full speed). The calls never
    touch the database; their outcomes are applied by the run's thread."""

    def __init__(self, settings: TenantSettings, gateway: PaymentGateway):
        self.gateway = gateway
        self.limiter = RateLimiter(settings.stripe_rate_limit or default_rate(settings.livemode))
        self.concurrency = settings.stripe_concurrency or DEFAULT_CONCURRENCY
        self.pool: ThreadPoolExecutor | None = None
        self.misconfigured: list[GatewayMisconfigured] = []

    def __enter__(self) -> "_Caller":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, batch: _Batch) -> None:
        """Queue the batch's calls (a crashed run's attempts are first looked up together)."""
        to_call = [a for a in batch.attempts if a.charge is not None]
        if not to_call:
            return
        found, lookups = _look_up_resumed(self.gateway, [a for a in to_call if a.resume and not a.payment_intent_id
                                                         and not a.cancel],
                                          self.limiter)
        batch.report.requests += lookups
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="charge")
        batch.futures = [self.pool.submit(self._call, a, found) for a in to_call]

    def _call(self, attempt: _Attempt, found: dict[str, Any]) -> None:
        looked_up = attempt.charge.payment_id in found
        try:
            if attempt.cancel:
                attempt.outcome = self.gateway.cancel(attempt.payment_intent_id, pace=self.limiter.wait)
                return
            crash_point("charge.call.before_stripe")
            attempt.outcome = self.gateway.charge(attempt.charge, resume=attempt.resume and not looked_up,
                                                  payment_intent_id=attempt.payment_intent_id,
                                                  pace=self.limiter.wait, found=found.get(attempt.charge.payment_id))
            crash_point("charge.call.after_stripe")
        except GatewayMisconfigured as exc:
            self.misconfigured.append(exc)
            attempt.outcome = Outcome("unknown", message=str(exc))
        except Exception:  # noqa: BLE001 — a defect: the attempt stays pending, resumed by lookup
            log.exception("charge %s failed unexpectedly", attempt.charge.payment_id)
            attempt.outcome = Outcome("unknown", message=reason("internal_error"))  # the detail is logged


def _begin(settings: TenantSettings, gateway: PaymentGateway, ids: list[str], as_of: datetime, adapters, *,
           operator: bool) -> _Batch:
    """Step 1: the batch's attempts, committed before any call."""
    report = ChargeReport()
    try:
        attempts = _start(settings, gateway, ids, as_of, adapters.clocks.base.now(), report, operator=operator)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if attempts:
        crash_point("charge.begin.after_commit")
    return _Batch(attempts, report)


def _finish(settings: TenantSettings, caller: _Caller, batch: _Batch, as_of: datetime) -> None:
    """Step 3: wait for the batch's calls, then settle them in one transaction."""
    for future in batch.futures:
        future.result()
    if not batch.attempts:
        return
    try:
        apply_outcomes(settings, [(a.payment, a.outcome) for a in batch.attempts], as_of, batch.report)
        crash_point("charge.finish.before_commit")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    crash_point("charge.finish.after_commit")


def _look_up_resumed(gateway: PaymentGateway, resumed: list[_Attempt], limiter: RateLimiter
                     ) -> tuple[dict[str, Any], int]:
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


def _start(settings: TenantSettings, gateway: PaymentGateway, ids: list[str], as_of: datetime, real_now: datetime,
           report: ChargeReport, *, operator: bool) -> list[_Attempt]:
    """Step 1, in the caller's transaction: lock the invoices, start (or find) their attempts."""
    write_lock()  # SQLite: before reading what the attempts rely on (PostgreSQL locks the rows read)
    where = [in_ids(Invoice.id, ids), Invoice.tenant_id == settings.tenant_id, Invoice.livemode == settings.livemode,
             Invoice.status == "open"]
    if not operator:
        where.append(Invoice.next_charge_at <= as_of)
    invoices = db.session.scalars(locking(sa.select(Invoice).where(*where).order_by(Invoice.id), of=Invoice)
                                  .execution_options(populate_existing=True)).all()
    if not invoices:
        return []
    pending = {p.invoice_id: p for p in db.session.scalars(
        locking(sa.select(Payment).where(in_ids(Payment.invoice_id, [i.id for i in invoices]),
                                         Payment.status.in_(["pending", "requires_action"])))).all()}
    attempts, rows, paid_now, manual, busy = [], [], [], [], []
    for invoice in invoices:
        customer: Customer = invoice.customer
        found = pending.get(invoice.id)
        if found is not None and found.status == "requires_action":
            # rescheduled (a new payment method) while an attempt awaits the customer's
            # authentication, which could still pay it: that attempt is canceled first, and the
            # invoice charged anew once it is (charge_due's superseded pass)
            if not gateway.charges_cards or not found.stripe_payment_intent_id:
                manual.append(invoice.id)  # nothing here can cancel it: collected by hand
                continue
            if found.locked_until is not None and found.locked_until > real_now:
                busy.append(invoice.id)  # another run is canceling it right now
                continue
            found.locked_until = real_now + due.lease(ATTEMPT_LEASE)
            attempts.append(_Attempt(found, False, _charge_of(found, invoice, settings),
                                     payment_intent_id=found.stripe_payment_intent_id, cancel=True))
            continue
        if found is not None:
            if found.locked_until is not None and found.locked_until > real_now:
                busy.append(invoice.id)  # another run (or request) is sending it right now
                continue
            # (one the gateway was still processing is looked up again at its recheck time,
            # in case its webhook never comes: by its PaymentIntent id, never sent anew)
            found.locked_until = real_now + due.lease(ATTEMPT_LEASE)
            attempts.append(_Attempt(found, True, _charge_of(found, invoice, settings),
                                     payment_intent_id=found.stripe_payment_intent_id))
            continue
        remaining = invoice.amount_due - invoice.amount_paid
        if remaining <= 0:
            paid_now.append(invoice.id)
            continue
        if not charges_automatically(gateway, customer):
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
        transitions.charges_started([(r["invoice_id"], r["attempt"]) for r in rows], as_of if operator else None)
        new = {p.id: p for p in db.session.scalars(sa.select(Payment).where(
            in_ids(Payment.id, [r["id"] for r in rows]))).all()}
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
        transitions.collect_by_hand(manual)
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
    settled change nothing. A batch's payments and invoices are read, settled and updated a few
    statements at a time, not a few per payment."""
    report = report if report is not None else ChargeReport()
    if not results:
        return
    # one query reloads the batch (committed since it was read, so expired: reading `id` from
    # each would load them one by one); the identity map hands back the same objects
    fresh = {p.id: p for p in db.session.scalars(
        sa.select(Payment).where(in_ids(Payment.id, [sa.inspect(p).identity[0] for p, _ in results]))
        .execution_options(populate_existing=True)).all()}
    changes = []
    for payment, outcome in results:
        report.requests += outcome.requests
        base: dict[str, Any] = {"requests": fresh[payment.id].requests + outcome.requests}
        if outcome.payment_intent_id:
            base["stripe_payment_intent_id"] = outcome.payment_intent_id
        if outcome.charge_id:
            base["stripe_charge_id"] = outcome.charge_id
        if outcome.gateway_status:
            base["gateway_status"] = outcome.gateway_status
        if outcome.status in ("unknown", "pending"):
            noted = transitions.note_payment(payment, **base, locked_until=None,
                                             failure_message=outcome.message if outcome.status == "unknown" else None)
            if outcome.status == "unknown":
                report.unknown += 1
            elif noted:  # still pending (a webhook may have settled it meanwhile: then left alone)
                report.processing += 1
                transitions.await_outcome(payment.invoice_id, as_of + PROCESSING_RECHECK)
            continue
        values = dict(base, locked_until=None, failure_code=None, decline_code=None, failure_message=None,
                      hard_decline=False)
        if outcome.status == "failed":
            values.update(failure_code=outcome.failure_code, decline_code=outcome.decline_code,
                          failure_message=(outcome.message or "")[:1000] or None,
                          hard_decline=is_hard(outcome.failure_code, outcome.decline_code))
        elif outcome.status == "requires_action":
            values.update(failure_message=outcome.message)
        changes.append((payment, outcome.status, values))
    changed = transitions.settle_payments(changes, as_of)
    if not changed:
        return
    invoices = {i.id: i for i in db.session.scalars(
        locking(sa.select(Invoice).where(in_ids(Invoice.id, sorted({p.invoice_id for p in changed}))), of=Invoice)
        .execution_options(populate_existing=True)).unique().all()}
    paid, part_paid, amounts, events = [], [], {}, []
    for payment in changed:
        invoice = invoices[payment.invoice_id]
        if payment.status == "succeeded":
            report.succeeded += 1
            report.payments.append(payment.id)
            amounts[invoice.id] = amounts.get(invoice.id, invoice.amount_paid) + payment.amount
            (paid if amounts[invoice.id] >= invoice.amount_due else part_paid).append(invoice.id)
        elif payment.status == "requires_action":
            report.requires_action += 1
            transitions.await_action(invoice.id)
            events.append(_invoice_event(invoice, "invoice.payment_action_required", payment))
        elif payment.status == "failed":
            report.failed += 1
            events += _failed(settings, invoice, payment, as_of)
        elif payment.status == "canceled":  # superseded before the customer authenticated it
            report.canceled += 1
            if invoice.status == "open":
                report.superseded.append(invoice.id)
    transitions.set_amounts_paid(amounts)
    if part_paid:  # the rest is collected by hand (a recorded payment) or charged by an operator
        transitions.collect_by_hand(sorted(set(part_paid) - set(paid)))
    if paid:
        invoice_transitions.mark_paid(settings, paid, as_of)
    if events:
        record(settings.tenant_id, settings.livemode, as_of, events)


def _failed(settings: TenantSettings, invoice: Invoice, payment: Payment, as_of: datetime) -> list[NewEvent]:
    """A declined (or refused) attempt: the dunning step (retry on the schedule, wait for a new
    payment method or a recorded payment, or give up), applied to its invoice."""
    if invoice.status != "open":
        return []
    step = dunning.next_step(dunning.Failure(payment.failure_code, payment.hard_decline), settings,
                             invoice.first_failed_at, as_of)
    transitions.apply_dunning(invoice.id, step)
    events = [_invoice_event(invoice, "invoice.payment_failed", payment, next_retry_at=step.retry_at,
                             final=step.final)]
    if step.write_off:
        record(settings.tenant_id, settings.livemode, as_of, events)
        invoice_transitions.mark_uncollectible(settings, invoice.id, as_of,
                                               {invoice.id: {"payment": payment.id}})
        return []
    return events


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
