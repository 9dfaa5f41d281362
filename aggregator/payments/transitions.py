"""The only place that writes the status of payments and refunds (see states.py), each change
with its event in the same transaction.

Payment: pending -> succeeded | failed | requires_action | canceled; requires_action ->
succeeded | failed | canceled (the customer authenticated, or gave up: Stripe's webhook tells).
A payment recorded outside a gateway is created succeeded. Events: `payment.succeeded`,
`payment.failed` (`payment.requires_action` has its invoice's event instead).

Refund: pending -> succeeded | failed | canceled. Events: `refund.created`, `refund.succeeded`,
`refund.failed`.

Stripe event (received by the webhook): pending -> handled | ignored; no events of ours (what
handling it changes announces itself).

Collection (an open invoice's `collection`, with `next_charge_at`, `attempt_count`,
`first_failed_at` and `amount_paid`: columns of the invoice that only this module writes):
started `scheduled` when the invoice is finalized (`start_collection`, on consolidate's
`InvoicesFinalized`), moved by the charges along COLLECTION_STATES, stopped (NULL,
`stop_collection`) when the invoice is paid, written off or voided (`InvoicesPaid`,
`InvoiceWrittenOff`, `InvoiceVoided`). No events of its own: the invoice's events carry it.

Overdue (an open invoice's `overdue_at`, which only this module writes): set once, when the
invoice is still open at the end of its due date (`mark_overdue`), with `invoice.overdue`.

Each payment and refund that succeeds is published as a fact (`facts.py`, on aggregator.bus:
PaymentsSucceeded, RefundSucceeded), which the ledger posts the journal of in the same
transaction."""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable, Mapping, Sequence

import sqlalchemy as sa

from .. import bus
from ..accounts.models import Customer, TenantSettings
from ..consolidate import credit_note_service
from ..consolidate.lines import invoice_parts_of
from ..consolidate.models import Invoice
from ..consolidate.snapshots import columns, invoice_snapshot
from ..db import bulk_insert, db, in_ids, locking
from ..events.service import NewEvent, record
from ..states import guarded_update, machine
from .dunning import Step
from .facts import PaidInvoice, PaymentsSucceeded, RefundSucceeded, SucceededPayment
from .models import Payment, Refund, StripeEvent
from .schedule import charge_at
from .schemas import PaymentSchema, RefundSchema

PAYMENT_STATES = machine("payment", {
    "pending": {"succeeded", "failed", "requires_action", "canceled"},
    "requires_action": {"succeeded", "failed", "canceled"},
    "succeeded": set(),
    "failed": set(),
    "canceled": set(),
})
REFUND_STATES = machine("refund", {
    "pending": {"succeeded", "failed", "canceled"},
    "succeeded": set(),
    "failed": set(),
    "canceled": set(),
})

STRIPE_EVENT_STATES = machine("Stripe event", {
    "pending": {"handled", "ignored"},
    "handled": set(),
    "ignored": set(),
})

#: How an open invoice is being collected (consolidate.models.COLLECTION says what each state
#: means). NULL while the invoice is a draft and once it is not open: `start_collection` enters
#: `scheduled` from NULL, `stop_collection` leaves from any state. An operator's charge can start
#: from any state; a failure (or a late webhook's) can be settled from any state; only a new
#: payment method puts an invoice waiting for one back on the schedule.
_WAITING = {"payment_method_required", "action_required", "past_due"}  # for a new payment method
_ANY = {"processing", "retrying", "action_required", "payment_method_required", "past_due", "manual"}
COLLECTION_STATES = machine("collection", {
    "scheduled": _ANY,  # an automatic charge is due at next_charge_at
    "processing": _ANY,  # a charge was sent; its outcome is not known yet
    "retrying": _ANY,  # declined; retried at next_charge_at
    "action_required": _ANY | {"scheduled"},  # the customer must authenticate it
    "payment_method_required": _ANY | {"scheduled"},  # a hard decline, or no method on file
    "past_due": _ANY | {"scheduled"},  # every retry failed (after_final_failure = past_due)
    "manual": _ANY,  # no gateway charges it: it waits for a recorded payment
}, column="collection")

_payments, _refunds, _stripe_events = Payment.__table__, Refund.__table__, StripeEvent.__table__
_invoices = Invoice.__table__
_payment_schema, _refund_schema = PaymentSchema(), RefundSchema()


def start_attempts(rows: list[dict]) -> None:
    """Store gateway attempts `pending` (the caller commits them before calling the gateway)."""
    for row in rows:
        row["status"] = PAYMENT_STATES.initial
    bulk_insert(_payments, rows)


def record_received(row: dict, as_of: datetime) -> Payment:
    """A payment received outside a gateway, stored succeeded, with `payment.succeeded`."""
    payment = Payment(**row, status="succeeded", settled_at=as_of)
    db.session.add(payment)
    db.session.flush()
    _post_succeeded([payment], as_of)
    _announce(payment.tenant_id, payment.livemode, "payment.succeeded", [payment], as_of)
    return payment


def settle_payments(changes: Sequence[tuple[Payment, str, dict[str, Any]]], as_of: datetime) -> list[Payment]:
    """Move each payment to its target with other columns (the gateway's ids, codes; plain
    values), if the table allows it from where it stands now; announce `payment.succeeded` /
    `payment.failed`. -> the payments that changed, reloaded (a webhook that settled one first
    leaves it alone here). The rows are locked first and the guard stays in the statements, so
    a concurrent settlement cannot slip past it; the updates go out as one executemany per
    target and set of columns."""
    if not changes:
        return []
    current = dict(db.session.execute(locking(sa.select(_payments.c.id, _payments.c.status)
                                              .where(in_ids(_payments.c.id, [p.id for p, _, _ in changes])))).all())
    groups: dict[tuple[str, tuple[str, ...]], list[dict]] = {}
    for payment, target, values in changes:
        if PAYMENT_STATES.allows(current.get(payment.id, ""), target):
            values = dict(values, settled_at=as_of if target != "requires_action" else None)
            groups.setdefault((target, tuple(sorted(values))), []).append({"_id": payment.id, **values})
    expected: dict[str, str] = {}
    for (target, names), rows in groups.items():
        statement = guarded_update(PAYMENT_STATES, _payments, target, _payments.c.id == sa.bindparam("_id"),
                                   **{name: sa.bindparam(name) for name in names})
        db.session.execute(statement.execution_options(synchronize_session=False), rows)
        expected.update((row["_id"], target) for row in rows)
    if not expected:
        return []
    reloaded = db.session.scalars(sa.select(Payment).where(in_ids(Payment.id, expected)).order_by(Payment.id)
                                  .execution_options(populate_existing=True)).all()
    changed = [p for p in reloaded if p.status == expected[p.id]]
    _post_succeeded([p for p in changed if p.status == "succeeded"], as_of)
    by_lane: dict[tuple[str, bool], dict[str, list[Payment]]] = {}
    for payment in changed:
        if payment.status in ("succeeded", "failed"):
            by_lane.setdefault((payment.tenant_id, payment.livemode), {}).setdefault(
                f"payment.{payment.status}", []).append(payment)
    for (tenant_id, livemode), by_type in by_lane.items():
        for type_, payments in by_type.items():
            _announce(tenant_id, livemode, type_, payments, as_of)
    return changed


def _post_succeeded(payments: Sequence[Payment], as_of: datetime) -> None:
    """PaymentsSucceeded for payments that just succeeded, per tenant and mode, with their
    invoices as they stand before these payments (read under their row lock)."""
    if not payments:
        return
    invoices = {i.id: i for i in db.session.scalars(
        locking(sa.select(Invoice).where(in_ids(Invoice.id, sorted({p.invoice_id for p in payments}))), of=Invoice)
        .execution_options(populate_existing=True)).unique()}
    by_lane: dict[tuple[str, bool], list[Payment]] = {}
    for payment in payments:
        by_lane.setdefault((payment.tenant_id, payment.livemode), []).append(payment)
    for (tenant_id, livemode), lane_payments in by_lane.items():
        paid = tuple(SucceededPayment(p.id, p.invoice_id, p.currency, p.amount) for p in lane_payments)
        bus.publish(PaymentsSucceeded(
            tenant_id, livemode, paid,
            tuple(_paid_invoice(invoices[invoice_id]) for invoice_id in sorted({p.invoice_id for p in lane_payments})),
            as_of))


def _paid_invoice(invoice) -> PaidInvoice:
    """An invoice as it stands before payments, with, when it is uncollectible, what a payment
    needs to recover what was written off."""
    if invoice.status != "uncollectible":
        return PaidInvoice(invoice.id, invoice.customer_id, invoice.amount_due, invoice.amount_paid)
    return PaidInvoice(invoice.id, invoice.customer_id, invoice.amount_due, invoice.amount_paid, True,
                       _refunded(invoice.id), invoice_parts_of(invoice))


def _refunded(invoice_id: str, but: str | None = None) -> int:
    """What succeeded refunds of the invoice gave back (but the refund `but`)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
        Refund.invoice_id == invoice_id, Refund.status == "succeeded")
    if but is not None:
        query = query.where(Refund.id != but)
    return int(db.session.scalar(query))


def note_payment(payment: Payment, **values) -> bool:
    """Columns of a still-pending payment that are not its status (the requests made, the
    gateway's ids). -> False: it was settled meanwhile (a webhook), and is left alone."""
    return bool(db.session.execute(sa.update(_payments).where(_payments.c.id == payment.id,
                                                              _payments.c.status == "pending")
                                   .values(**values).execution_options(synchronize_session=False)).rowcount)


def _announce(tenant_id: str, livemode: bool, type_: str, payments: Iterable[Payment], created: datetime) -> None:
    record(tenant_id, livemode, created,
           [NewEvent(type_, p.id, {"object": _payment_schema.dump(p)}) for p in payments])


# --- refunds ----------------------------------------------------------------------------------

def create_refund(row: dict, as_of: datetime, *, settled: bool) -> Refund:
    """A refund, pending (a gateway's, sent once committed) or, for money returned outside a
    gateway, succeeded at once; with `refund.created` (and `refund.succeeded`).

    Its amount is counted in its payment's and invoice's `amount_refunded` from the moment it
    exists (pending included), so two refunds racing cannot give back more than was paid: the
    tables' checks (`amount_refunded` within the amount paid) refuse the second. A refund that
    fails or is canceled gives its amount back (`settle_refund`)."""
    refund = Refund(**row, status="succeeded" if settled else REFUND_STATES.initial,
                    settled_at=as_of if settled else None)
    db.session.add(refund)
    db.session.flush()
    _count_refunded(refund, refund.amount)
    if settled:
        _post_refund(refund, as_of)
    types = ["refund.created", "refund.succeeded"] if settled else ["refund.created"]
    record(refund.tenant_id, refund.livemode, as_of,
           [NewEvent(t, refund.id, {"object": _refund_schema.dump(refund)}) for t in types])
    return refund


def _post_refund(refund: Refund, as_of: datetime) -> None:
    # locked before the ledger locks the payables (the order every path takes: the invoice first),
    # and for the credit note a refund asked for by itself issues
    invoice = db.session.scalars(locking(sa.select(Invoice).where(Invoice.id == refund.invoice_id), of=Invoice)
                                 .execution_options(populate_existing=True)).one()
    collected = min(invoice.amount_paid, invoice.amount_due) - _refunded(invoice.id, but=refund.id)
    bus.publish(RefundSucceeded(refund.tenant_id, refund.livemode, refund.id, refund.currency, refund.amount,
                                invoice.id, collected, invoice_parts_of(invoice), as_of,
                                to_credit_of=invoice.customer_id if refund.gateway == "balance" else None))
    if refund.credit_note_id is None:  # a refund asked for by itself: its credit note, once (it succeeds once)
        note = credit_note_service.issue_for_refund(invoice, refund.id, refund.amount, refund.reason, as_of)
        if note is not None:  # the two name each other, as for a refund a credit note asked for
            db.session.execute(sa.update(_refunds).where(_refunds.c.id == refund.id)
                               .values(credit_note_id=note.id).execution_options(synchronize_session=False))


def _count_refunded(refund: Refund, delta: int) -> None:
    db.session.execute(sa.update(_payments).where(_payments.c.id == refund.payment_id)
                       .values(amount_refunded=_payments.c.amount_refunded + delta)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.update(_invoices).where(_invoices.c.id == refund.invoice_id)
                       .values(amount_refunded=_invoices.c.amount_refunded + delta)
                       .execution_options(synchronize_session=False))


def settle_refund(refund: Refund, target: str, as_of: datetime, **values) -> bool:
    """pending -> succeeded | failed | canceled, with `refund.<target>` (a failed or canceled
    refund no longer counts in `amount_refunded`). False: it was settled already."""
    done = db.session.execute(guarded_update(REFUND_STATES, _refunds, target, _refunds.c.id == refund.id)
                              .values(settled_at=as_of, locked_until=None, **values)
                              .execution_options(synchronize_session=False)).rowcount
    if done:
        db.session.refresh(refund)
        if target != "succeeded":
            _count_refunded(refund, -refund.amount)  # not given back after all
        else:
            _post_refund(refund, as_of)
        record(refund.tenant_id, refund.livemode, as_of,
               [NewEvent(f"refund.{target}", refund.id, {"object": _refund_schema.dump(refund)})])
    return bool(done)


# --- Stripe events ----------------------------------------------------------------------------

def store_stripe_event(row: dict) -> None:
    """A verified Stripe event, stored `pending` (IntegrityError: Stripe sent it before)."""
    db.session.execute(sa.insert(_stripe_events).values(**row, status=STRIPE_EVENT_STATES.initial))


def settle_stripe_event(event_id: str, target: str, **values) -> bool:
    """pending -> handled | ignored. False: it was settled already."""
    return bool(db.session.execute(
        guarded_update(STRIPE_EVENT_STATES, _stripe_events, target, _stripe_events.c.id == event_id)
        .values(**values).execution_options(synchronize_session=False)).rowcount)


# --- collection -------------------------------------------------------------------------------

def _collection(target: str, *where, **values) -> int:
    """Move the invoices matching `where` to `target` if the table allows it from where they
    stand (guarded in the statement), with other columns. -> how many moved."""
    return db.session.execute(guarded_update(COLLECTION_STATES, _invoices, target, *where, **values)
                              .execution_options(synchronize_session=False)).rowcount


def start_collection(settings: TenantSettings, due_dates: Mapping[str, date], as_of: datetime) -> None:
    """NULL -> scheduled, for invoices just finalized as of `as_of` (`due_dates`: invoice id ->
    its due date): charged at the tenant's charge hour of the due date, or at once if that has
    passed. One statement per charge instant."""
    by_instant: dict[datetime, list[str]] = {}
    instants: dict[date, datetime] = {}
    for invoice_id, due_date in due_dates.items():
        if due_date not in instants:
            instants[due_date] = charge_at(due_date, settings.charge_hour, settings.timezone, not_before=as_of)
        by_instant.setdefault(instants[due_date], []).append(invoice_id)
    for at, ids in by_instant.items():
        db.session.execute(sa.update(_invoices).where(in_ids(_invoices.c.id, ids), _invoices.c.status == "open",
                                                      _invoices.c.collection.is_(None))
                           .values(collection=COLLECTION_STATES.initial, next_charge_at=at)
                           .execution_options(synchronize_session=False))


def stop_collection(invoice_ids: Sequence[str]) -> None:
    """-> NULL (from any state): the invoices are no longer open (paid, written off, voided),
    and nothing is scheduled for them."""
    if invoice_ids:
        db.session.execute(sa.update(_invoices).where(in_ids(_invoices.c.id, invoice_ids))
                           .values(collection=None, next_charge_at=None)
                           .execution_options(synchronize_session=False))


def charges_started(attempts: Sequence[tuple[str, int]], as_of: datetime | None) -> None:
    """-> processing, for each (invoice id, attempt number) whose charge was just started;
    `as_of`: an operator's charge, which also moves the invoice's next charge to then."""
    if not attempts:
        return
    db.session.execute(guarded_update(COLLECTION_STATES, _invoices, "processing",
                                      _invoices.c.id == sa.bindparam("invoice"),
                                      attempt_count=sa.bindparam("attempt"),
                                      next_charge_at=as_of if as_of is not None else _invoices.c.next_charge_at)
                       .execution_options(synchronize_session=False),
                       [{"invoice": invoice_id, "attempt": attempt} for invoice_id, attempt in attempts])


def await_outcome(invoice_id: str, recheck_at: datetime) -> None:
    """-> processing: the gateway is still processing a charge (its webhook settles it); looked
    up again at `recheck_at` in case the webhook never comes."""
    _collection("processing", _invoices.c.id == invoice_id, next_charge_at=recheck_at)


def await_action(invoice_id: str) -> None:
    """-> action_required: the customer must authenticate the charge; nothing is scheduled."""
    _collection("action_required", _invoices.c.id == invoice_id, next_charge_at=None)


def collect_by_hand(invoice_ids: Sequence[str]) -> None:
    """-> manual: no gateway charges these invoices (or only part was paid); they wait for a
    recorded payment or an operator's charge."""
    if invoice_ids:
        _collection("manual", in_ids(_invoices.c.id, invoice_ids), next_charge_at=None)


def apply_dunning(invoice_id: str, step: Step) -> None:
    """A failed charge's dunning step: its collection state (or the state left as it is), the
    first failure and the next charge."""
    if step.collection is None:
        db.session.execute(sa.update(_invoices).where(_invoices.c.id == invoice_id)
                           .values(first_failed_at=step.first_failed_at, next_charge_at=step.retry_at)
                           .execution_options(synchronize_session=False))
    else:
        _collection(step.collection, _invoices.c.id == invoice_id, first_failed_at=step.first_failed_at,
                    next_charge_at=step.retry_at)


def set_amounts_paid(amounts: Mapping[str, int]) -> None:
    """The invoices' `amount_paid` (invoice id -> the new amount), after payments succeeded."""
    if amounts:
        db.session.execute(sa.update(_invoices).where(_invoices.c.id == sa.bindparam("_id"))
                           .values(amount_paid=sa.bindparam("amount_paid"))
                           .execution_options(synchronize_session=False),
                           [{"_id": i, "amount_paid": a} for i, a in amounts.items()])


def add_paid(invoice_id: str, amount: int) -> None:
    """`amount` more paid on the invoice (a payment recorded outside the gateway)."""
    db.session.execute(sa.update(_invoices).where(_invoices.c.id == invoice_id)
                       .values(amount_paid=_invoices.c.amount_paid + amount)
                       .execution_options(synchronize_session=False))


def charge_waiting_invoices(customer_id: str, now: datetime) -> int:
    """waiting for a payment method (payment_method_required, action_required, past_due) ->
    scheduled at `now`, for the customer's open invoices: it has a new one. -> how many."""
    return _collection("scheduled", _invoices.c.customer_id == customer_id, _invoices.c.status == "open",
                       next_charge_at=now)


# --- overdue ----------------------------------------------------------------------------------

def mark_overdue(tenant_id: str, livemode: bool, due_date: date, as_of: datetime, limit: int) -> list[str]:
    """Up to `limit` open invoices of the lane due on `due_date`, finalized by `as_of` and not yet
    overdue -> overdue as of `as_of`, with an `invoice.overdue` event each. Exactly once: the
    UPDATE's WHERE holds `overdue_at IS NULL`, so a re-run or a racing worker sets nothing twice
    and announces only what it set. -> the ids that became overdue here (none: nothing is left)."""
    waiting = (_invoices.c.tenant_id == tenant_id, _invoices.c.livemode == livemode,
               _invoices.c.due_date == due_date, _invoices.c.status == "open", _invoices.c.overdue_at.is_(None),
               _invoices.c.finalized_at <= as_of)
    some = sa.select(_invoices.c.id).where(*waiting).order_by(_invoices.c.id).limit(limit)
    ids = db.session.execute(
        sa.update(_invoices).where(_invoices.c.id.in_(some), *waiting).values(overdue_at=as_of)
        .returning(_invoices.c.id).execution_options(synchronize_session=False)).scalars().all()
    if ids:
        rows = db.session.execute(sa.select(Invoice, Customer.external_id)
                                  .join(Customer, Customer.id == Invoice.customer_id)
                                  .where(in_ids(Invoice.id, ids)).order_by(Invoice.id)
                                  .execution_options(populate_existing=True)).all()
        record(tenant_id, livemode, as_of,
               [NewEvent("invoice.overdue", invoice.id, {"object": invoice_snapshot(columns(invoice), external_id)})
                for invoice, external_id in rows])
    return sorted(ids)
