"""Sending recorded email deliveries: claimed in the database by whichever worker comes first
(FOR UPDATE SKIP LOCKED and a lease, like the PDFs), built, sent through the mailer adapter,
and recorded: sent; failed (a permanent refusal, or retried for about a day); or retried later
with exponential backoff on real time. And reading them back (the API).

Exactly-once is as good as SMTP allows: two workers never hold the same delivery (the claim),
and a batch starts no message after half its lease, so a lease never runs out under a
message being sent. A worker that dies between the server's acceptance and the recording of
it leaves the delivery pending: it is sent once more when its lease has run out."""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import Message

import sqlalchemy as sa

from .. import due, plurals
from ..accounts.models import Customer, TenantSettings
from ..auth import Principal
from ..consolidate import credit_note_service
from ..consolidate.models import CreditNote, Invoice
from ..consolidate.parties import payment_of
from ..db import db
from ..due import Lane, Worked
from ..errors import NotFound
from ..events.models import Event
from ..faults import crash_point
from ..pagination import Page, paginate
from ..payments.models import Payment, Refund
from ..payouts import statement
from ..periods.models import PeriodRecord
from . import messages, payout_notices, transitions
from .models import (
    ACTION_REQUIRED,
    CREDIT_NOTE,
    DISPUTE,
    ENDPOINT_DISABLED,
    INVOICE,
    OVERDUE,
    PAYMENT_FAILED,
    PAYOUT_FAILED,
    PAYOUT_STATEMENT,
    PAYOUTS_AWAITING_REVIEW,
    PERIOD_SUMMARY,
    RECEIPT,
    REFUND,
    UNCOLLECTIBLE,
    USAGE_THRESHOLD,
    EmailDelivery,
)

log = logging.getLogger(__name__)

SEND_BATCH = 50
#: A claim's lease. A batch begins no message once half of it has passed (see the module doc).
LEASE = timedelta(minutes=5)
#: Retries: 1 min, 2, 4, … at most 4 hours apart, for a day after the delivery was recorded.
FIRST_RETRY, LONGEST_RETRY, RETRY_FOR = timedelta(minutes=1), timedelta(hours=4), timedelta(days=1)

_deliveries = EmailDelivery.__table__


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return min(FIRST_RETRY * 2 ** min(attempts - 1, 20), LONGEST_RETRY)


@dataclass(frozen=True)
class Claim:
    token: str
    ids: list[str]


def claim_deliveries(now: datetime, limit: int, lane: Lane | None = None) -> Claim:
    """Claim up to `limit` pending deliveries whose next attempt is due and that no worker
    holds, and commit. Workers claiming at once get different ones (SKIP LOCKED on
    PostgreSQL; SQLite serializes writers)."""
    token = secrets.token_hex(8)
    d = _deliveries.c
    ready = (sa.select(d.id).where(sa.text("email_deliveries.status = 'pending'"), d.next_attempt_at <= now,
                                   sa.or_(d.locked_until.is_(None), d.locked_until < now))
             .order_by(d.next_attempt_at, d.id).limit(limit))
    return Claim(token, due.claim_ready(_deliveries, ready, lane, locked_by=token,
                                     locked_until=now + due.lease(LEASE)))


class NotToBeSent(Exception):
    """This delivery must not be sent any more (its invoice was voided)."""


@dataclass
class _Outgoing:
    delivery_id: str
    message: Message
    attempts: int
    created_at: datetime


@dataclass
class _Results:
    sent: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    retries: list = field(default_factory=list)


def send_claimed(claim: Claim, adapters, now: datetime) -> Worked:
    """Build, send and record the deliveries of a claim. -> how many were sent, and how many
    failed (for good, or for now)."""
    results = _Results()
    outgoing = _build(claim, adapters, now, results)
    db.session.commit()  # no transaction stays open while the SMTP server is talked to
    deadline = time.monotonic() + due.lease(LEASE).total_seconds() / 2
    for livemode, batch in outgoing.items():
        outcomes = adapters.mailer.send_many([o.message for o in batch], livemode, deadline)
        for item, outcome in zip(batch, outcomes):
            _sort(item, outcome, now, results)
    crash_point("email.send.after_smtp")
    transitions.sent(claim.token, results.sent, now)
    transitions.failed(claim.token, results.failed)
    transitions.retry_later(claim.token, results.retries)
    db.session.commit()
    crash_point("email.record.after_commit")
    return Worked(done=len(results.sent), failed=len(results.failed) + sum(1 for r in results.retries if r[3]))


def _sort(item: _Outgoing, outcome, now: datetime, results: _Results) -> None:
    from .mailer import NotAttempted

    message_id = item.message["Message-ID"]
    if outcome is None:
        results.sent.append((item.delivery_id, message_id))
    elif isinstance(outcome, NotAttempted):
        results.retries.append((item.delivery_id, None, now, False))
    elif outcome.permanent:
        results.failed.append((item.delivery_id, f"refused: {outcome}", True))
    else:
        attempts = item.attempts + 1
        retry_at = now + retry_delay(attempts)
        if retry_at > item.created_at + RETRY_FOR:
            tried = plurals.counted(attempts, "attempt", "attempts")
            results.failed.append((item.delivery_id, f"gave up after {tried}: {outcome}", True))
        else:
            results.retries.append((item.delivery_id, str(outcome), retry_at, True))


def _build(claim: Claim, adapters, now: datetime, results: _Results) -> dict[bool, list[_Outgoing]]:
    deliveries = db.session.scalars(sa.select(EmailDelivery).where(
        EmailDelivery.id.in_(claim.ids), EmailDelivery.locked_by == claim.token).order_by(EmailDelivery.id)).all()
    invoice_ids = [d.invoice_id for d in deliveries if d.invoice_id]
    invoices = {i.id: i for i in db.session.scalars(sa.select(Invoice).where(Invoice.id.in_(invoice_ids)))} \
        if invoice_ids else {}
    settings: dict[tuple[str, bool], TenantSettings] = {}
    outgoing: dict[bool, list[_Outgoing]] = {}
    for delivery in deliveries:
        lane = (delivery.tenant_id, delivery.livemode)
        if lane not in settings:
            settings[lane] = db.session.get(TenantSettings, lane)
        try:
            message = _compose(delivery, settings[lane], invoices, adapters, now)
        except NotToBeSent as reason:
            results.failed.append((delivery.id, f"not sent: {reason}", False))
            continue
        except Exception as exc:  # a message that cannot be built (its PDF unreadable …): retried, recorded
            log.error("building email delivery %s failed: %s", delivery.id, exc, exc_info=exc)
            outcome = _build_failure(exc)
            _sort(_Outgoing(delivery.id, Message(), delivery.attempts, delivery.created_at), outcome, now,
                  results)
            continue
        outgoing.setdefault(delivery.livemode, []).append(
            _Outgoing(delivery.id, message, delivery.attempts, delivery.created_at))
    return outgoing


def _build_failure(exc: Exception):
    from .mailer import TransientFailure

    return TransientFailure(f"building the message failed: {type(exc).__name__}: {exc}")


def _compose(delivery: EmailDelivery, settings: TenantSettings, invoices: dict[str, Invoice], adapters,
             now: datetime) -> Message:
    mailer = adapters.mailer
    attachments: list[messages.Attachment] = []
    invoice = invoices[delivery.invoice_id] if delivery.invoice_id else None
    if invoice is not None and invoice.status == "void":
        raise NotToBeSent("the invoice was voided before its email was sent")
    if delivery.kind == OVERDUE and invoice.status == "paid":
        # Paid since it became overdue: the notice would mislead. Written off (uncollectible) it
        # is still owed: the notice goes, as it would have gone on time (a worker down or a
        # clock jump must not change what the customer is told).
        raise NotToBeSent("the invoice was paid before its overdue notice was sent")
    if delivery.kind == INVOICE:
        charged, instructions = payment_of(invoice, settings, invoice.customer)  # as its PDF says
        context = messages.invoice_context(invoice, settings, charged, instructions)
        attachments.append(messages.Attachment(f"{invoice.number}.pdf", adapters.storage.get(invoice.pdf_path)))
    else:
        event = db.session.scalars(sa.select(Event).where(Event.id == delivery.event_id)).one()
        if delivery.kind == PAYOUT_STATEMENT:  # rendered now, from the payout as it was paid
            context = {**statement.statement_of(event.object_id), "locale": settings.locale}
            attachments.append(messages.Attachment(statement.statement_filename(context),
                                                   statement.render_statement(adapters.renderer, context)))
        elif delivery.kind == CREDIT_NOTE:  # its PDF, rendered and stored the first time it is needed
            note = db.session.get(CreditNote, event.object_id)
            context = messages.credit_note_context(note, settings)
            attachments.append(messages.Attachment(f"{note.number}.pdf",
                                                   credit_note_service.render_pdf(note, adapters)))
        else:
            context = _context(delivery, event, invoice, settings)
    sender = messages.Sender.of(settings, mailer.default_from)
    return messages.build(delivery.kind, context, sender=sender, to=delivery.recipient,
                          message_id=messages.message_id(delivery.id, sender.domain), date_=now,
                          attachments=attachments)


def _context(delivery: EmailDelivery, event: Event, invoice: Invoice | None, settings: TenantSettings) -> dict:
    """What an email other than the invoice's shows, from its event (and its invoice, as it is
    now, for those about one)."""
    kind, data = delivery.kind, event.data
    if kind == PERIOD_SUMMARY:
        return messages.period_summary_context(
            period_summary(delivery.tenant_id, delivery.livemode, data["object"]), settings)
    if kind == ENDPOINT_DISABLED:
        return messages.endpoint_disabled_context(data.get("object") or {}, settings)
    if kind == RECEIPT:
        return messages.receipt_context(invoice, _latest_payment(invoice.id), settings)
    if kind == OVERDUE:
        return messages.overdue_context(invoice, settings)
    if kind == PAYMENT_FAILED:
        return messages.payment_failed_context(invoice, _payment(data.get("payment")), data, settings)
    if kind == ACTION_REQUIRED:
        return messages.action_required_context(invoice, _payment(data.get("payment")), settings)
    if kind == REFUND:
        refund = db.session.get(Refund, event.object_id)
        return messages.refund_context(invoice, refund, _payment(refund.payment_id), settings)
    if kind == UNCOLLECTIBLE:
        last = _latest_payment(invoice.id, "failed")
        return messages.uncollectible_context(invoice, last.failure_message if last else None, settings)
    if kind == DISPUTE:
        snapshot = data.get("object") or {}
        customer = invoice.customer if invoice is not None else None
        return messages.dispute_context(snapshot, data.get("dispute") or {}, customer, settings)
    if kind == PAYOUTS_AWAITING_REVIEW:
        return messages.payouts_awaiting_review_context(payout_notices.payout_review(event.object_id), settings)
    if kind == PAYOUT_FAILED:
        return messages.payout_failed_context(*payout_notices.payout_with_provider(event.object_id), settings)
    if kind == USAGE_THRESHOLD:
        crossing = data.get("object") or {}
        return messages.usage_threshold_context(crossing, db.session.get(Customer, crossing.get("customer")),
                                                settings)
    raise ValueError(f"unknown email kind {kind!r}")  # pragma: no cover - the kinds are a closed list


def _payment(payment_id: str | None) -> Payment | None:
    return db.session.get(Payment, payment_id) if payment_id else None


def _latest_payment(invoice_id: str, status: str = "succeeded") -> Payment | None:
    """The invoice's most recent payment in this status (by when it settled, then by id)."""
    return db.session.scalars(sa.select(Payment).where(Payment.invoice_id == invoice_id, Payment.status == status)
                              .order_by(Payment.settled_at.desc(), Payment.id.desc()).limit(1)).first()


# --- the period summary -------------------------------------------------------------------------

@dataclass(frozen=True)
class CurrencySummary:
    currency: str
    invoices: int
    open: int
    drafts: int
    total: int
    amount_due: int


@dataclass(frozen=True)
class PeriodSummary:
    start: date
    end: date
    currencies: list[CurrencySummary]
    without_address: int
    pdf_failures: int
    waiting: list[tuple[date, str]]


def period_summary(tenant_id: str, livemode: bool, period: dict) -> PeriodSummary:
    """A closed period as it stands now: its invoices per currency (void ones left out), the
    drafts awaiting review, the customers without an address, the PDFs that failed, and the
    lane's periods whose close waits (for an FX rate, …)."""
    start = date.fromisoformat(period["start"])
    i = Invoice.__table__.c
    is_ = lambda status: sa.func.sum(sa.case((i.status == status, 1), else_=0))  # noqa: E731
    rows = db.session.execute(
        sa.select(i.currency, sa.func.count(), is_("open"), is_("draft"), sa.func.sum(i.total),
                  sa.func.sum(i.amount_due))
        .where(i.tenant_id == tenant_id, i.livemode == livemode, i.period_start == start, i.status != "void")
        .group_by(i.currency).order_by(i.currency)).all()
    without_address = db.session.scalar(
        sa.select(sa.func.count()).select_from(Invoice).join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.period_start == start,
               Invoice.status != "void", Customer.email.is_(None)))
    pdf_failures = db.session.scalar(
        sa.select(sa.func.count()).where(i.tenant_id == tenant_id, i.livemode == livemode, i.period_start == start,
                                         i.pdf_sha256.is_(None), i.pdf_error.is_not(None)))
    waiting = db.session.execute(sa.select(PeriodRecord.start, PeriodRecord.waiting).where(
        PeriodRecord.tenant_id == tenant_id, PeriodRecord.livemode == livemode,
        PeriodRecord.waiting.is_not(None)).order_by(PeriodRecord.start)).all()
    return PeriodSummary(start, date.fromisoformat(period["end"]),
                         [CurrencySummary(c, n, int(o or 0), int(dr or 0), int(t or 0), int(a or 0))
                          for c, n, o, dr, t, a in rows],
                         int(without_address or 0), int(pdf_failures or 0), [(s, w) for s, w in waiting])


# --- reading them back ------------------------------------------------------------------------

def list_deliveries(principal: Principal, limit: int, starting_after: str | None = None, *,
                    status: str | None = None, event: str | None = None, invoice: str | None = None,
                    recipient: str | None = None) -> Page:
    """The tenant's deliveries in its mode, newest first, with optional equality filters."""
    query = sa.select(EmailDelivery).where(EmailDelivery.tenant_id == principal.tenant_id,
                                           EmailDelivery.livemode == principal.livemode)
    for column, value in ((EmailDelivery.status, status), (EmailDelivery.event_id, event),
                          (EmailDelivery.invoice_id, invoice), (EmailDelivery.recipient, recipient)):
        if value is not None:
            query = query.where(column == value)
    return paginate(query, EmailDelivery.id, limit, starting_after)


def get_delivery(principal: Principal, delivery_id: str) -> EmailDelivery:
    delivery = db.session.scalars(sa.select(EmailDelivery).where(
        EmailDelivery.id == delivery_id, EmailDelivery.tenant_id == principal.tenant_id,
        EmailDelivery.livemode == principal.livemode)).first()
    if delivery is None:
        raise NotFound(f"No such email delivery: {delivery_id!r}.")
    return delivery


def send_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """The queue's batch: claim ready deliveries and send them (none in a process without a
    mailer)."""
    if adapters.mailer is None:
        return Worked()
    claim = claim_deliveries(now, limit, lane)
    if claim.ids:
        crash_point("email.claim.after_commit")
    return send_claimed(claim, adapters, now) if claim.ids else Worked()

