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

Each payment and refund that succeeds is published as a fact (`facts.py`, on aggregator.bus:
PaymentsSucceeded, RefundSucceeded), which the ledger posts the journal of in the same
transaction."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence

import sqlalchemy as sa

from .. import bus
from ..consolidate.lines import invoice_parts_of
from ..db import bulk_insert, db, in_ids, locking
from ..events.service import NewEvent, record
from ..states import guarded_update, machine
from .facts import PaidInvoice, PaymentsSucceeded, RefundSucceeded, SucceededPayment
from .models import Payment, Refund, StripeEvent
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

_payments, _refunds, _stripe_events = Payment.__table__, Refund.__table__, StripeEvent.__table__
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
    from ..consolidate.models import Invoice

    if not payments:
        return
    invoices = {i.id: i for i in db.session.scalars(
        locking(sa.select(Invoice).where(in_ids(Invoice.id, sorted({p.invoice_id for p in payments}))), of=Invoice)
        .execution_options(populate_existing=True)).unique()}
    by_lane: dict[tuple[str, bool], list[Payment]] = {}
    for payment in payments:
        by_lane.setdefault((payment.tenant_id, payment.livemode), []).append(payment)
    for (tenant_id, livemode), lane_payments in by_lane.items():
        bus.publish(PaymentsSucceeded(
            tenant_id, livemode, tuple(SucceededPayment(p.id, p.invoice_id, p.currency, p.amount) for p in lane_payments),
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
    from ..consolidate.models import Invoice

    invoice = db.session.scalars(sa.select(Invoice).where(Invoice.id == refund.invoice_id)
                                 .execution_options(populate_existing=True)).one()
    collected = min(invoice.amount_paid, invoice.amount_due) - _refunded(invoice.id, but=refund.id)
    bus.publish(RefundSucceeded(refund.tenant_id, refund.livemode, refund.id, refund.currency, refund.amount,
                                invoice.id, collected, invoice_parts_of(invoice), as_of))


def _count_refunded(refund: Refund, delta: int) -> None:
    from ..consolidate.models import Invoice

    invoices = Invoice.__table__
    db.session.execute(sa.update(_payments).where(_payments.c.id == refund.payment_id)
                       .values(amount_refunded=_payments.c.amount_refunded + delta)
                       .execution_options(synchronize_session=False))
    db.session.execute(sa.update(invoices).where(invoices.c.id == refund.invoice_id)
                       .values(amount_refunded=invoices.c.amount_refunded + delta)
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
