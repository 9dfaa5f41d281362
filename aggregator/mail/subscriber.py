"""What is emailed when: a subscriber of the outbox that records deliveries, in the dispatcher's
transaction, and does no I/O (the deliveries queue sends them).

* A customer's invoice, with its PDF, once it is both finalized and rendered: on whichever of
  `invoice.finalized` and `invoice.pdf_ready` is dispatched second (each looks at the invoice as
  it is, and both record the delivery under the `invoice.finalized` event, so the unique
  (event, kind, recipient) keeps it to one). A PDF without finalization (a draft's) sends
  nothing; nor does a void invoice. A customer without an address gets a delivery recorded as
  failed ("no address"), so that it shows.
* The customer's payment emails, about its invoice (`CUSTOMER_EVENTS`): a receipt when it was
  paid with money (`invoice.paid` with an amount paid: not one paid with nothing due), "payment
  failed" (`invoice.payment_failed`), "action required" (`invoice.payment_action_required`) and
  a refund notice (`refund.succeeded`). Not for a void invoice; a customer without an address
  gets a delivery recorded as failed, as for its invoice.
* The customer's overdue notice (`invoice.overdue`), while the invoice is still open.
* The customer's credit note, its PDF attached (`credit_note.created`; not for a void invoice,
  nor at once a refund notice for a refund to its balance: the credit note says it).
* The customer's usage notice (`usage.threshold_reached`): its usage of a subscription reached
  a threshold of the included units (the subscription's customer, from the event; no address:
  recorded failed, as above).
* The tenant's notification settings (accounts/notifications.py) decide, per mode, whether the
  customer is sent its invoice (`invoice_generated`), a receipt (`payment_received`), an
  overdue notice (`payment_overdue`) and a usage notice (`usage_threshold`): turned off,
  nothing is recorded. They are read when the event is dispatched.
* The tenant's finance address: the summary of each closed period (`period.closed`), the
  notice of a disabled webhook endpoint (`webhook_endpoint.disabled`), an invoice marked
  uncollectible (`invoice.marked_uncollectible`) and a disputed charge (`invoice.disputed`);
  nothing when the tenant has no finance address in that mode, nor about a void invoice.
* Payouts: finance is told when a payout day's payouts await its review
  (`payouts.awaiting_review`, about the run) and when Stripe refused a payout's transfer
  (`payout.failed`), as above; a provider is sent its statement, the PDF attached, when its
  payout is paid (`payout.paid`) to the provider's address (none: nothing is recorded).

Each event is emailed at most once per kind and recipient: the deliveries' unique (event, kind,
recipient) makes a second dispatch of the same event record nothing.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import sqlalchemy as sa

from ..accounts.models import Customer, Provider, TenantSettings
from ..accounts.notifications import enabled_kinds
from ..consolidate.models import CreditNote, Invoice
from ..db import db
from ..events.models import Event
from ..payments.models import Refund
from ..payouts.models import Payout
from . import transitions
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
)

NO_ADDRESS = "no_address: the customer has no email address"

#: Events told to the tenant's finance address, and the kind of email each is.
FINANCE_EVENTS = {"period.closed": PERIOD_SUMMARY, "webhook_endpoint.disabled": ENDPOINT_DISABLED,
                  "invoice.marked_uncollectible": UNCOLLECTIBLE, "invoice.disputed": DISPUTE,
                  "payouts.awaiting_review": PAYOUTS_AWAITING_REVIEW, "payout.failed": PAYOUT_FAILED}

#: Events told to the customer of the invoice they are about (a refund's: its invoice's), and
#: the kind of email each is.
CUSTOMER_EVENTS = {"invoice.paid": RECEIPT, "invoice.payment_failed": PAYMENT_FAILED,
                   "invoice.payment_action_required": ACTION_REQUIRED, "refund.succeeded": REFUND,
                   "invoice.overdue": OVERDUE}

#: The customer emails a tenant may turn off, and the notification setting of each.
NOTIFICATIONS = {INVOICE: "invoice_generated", RECEIPT: "payment_received", OVERDUE: "payment_overdue",
                 USAGE_THRESHOLD: "usage_threshold"}

#: The event a customer's usage notice answers.
THRESHOLD_REACHED = "usage.threshold_reached"


def record_deliveries(events: Sequence[Event], now: datetime) -> None:
    rows = _invoice_emails({e.object_id for e in events
                            if e.type in ("invoice.finalized", "invoice.pdf_ready") and e.object_id})
    rows += _payment_emails([e for e in events if e.type in CUSTOMER_EVENTS and e.object_id])
    rows += _finance_emails([e for e in events if e.type in FINANCE_EVENTS])
    rows += _statement_emails([e for e in events if e.type == "payout.paid" and e.object_id])
    rows += _usage_emails([e for e in events if e.type == THRESHOLD_REACHED])
    rows += _credit_note_emails([e for e in events if e.type == "credit_note.created" and e.object_id])
    transitions.record(_as_configured(rows), now)


def _as_configured(rows: list[dict]) -> list[dict]:
    """The rows whose customer email the tenant's notification settings (in that mode) allow."""
    lanes = sorted({(r["tenant_id"], r["livemode"]) for r in rows if r["kind"] in NOTIFICATIONS})
    if not lanes:
        return rows
    enabled = {(s.tenant_id, s.livemode): enabled_kinds(s) for s in db.session.scalars(
        sa.select(TenantSettings).where(sa.tuple_(TenantSettings.tenant_id, TenantSettings.livemode).in_(lanes)))}
    return [r for r in rows if r["kind"] not in NOTIFICATIONS
            or NOTIFICATIONS[r["kind"]] in enabled.get((r["tenant_id"], r["livemode"]), ())]


def _invoice_emails(invoice_ids: set[str]) -> list[dict]:
    if not invoice_ids:
        return []
    finalized = sa.orm.aliased(Event)
    found = db.session.execute(
        sa.select(Invoice.id, Invoice.tenant_id, Invoice.livemode, Customer.email, finalized.id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .join(finalized, sa.and_(finalized.object_id == Invoice.id, finalized.type == "invoice.finalized"))
        .where(Invoice.id.in_(sorted(invoice_ids)), Invoice.pdf_sha256.is_not(None),
               Invoice.number.is_not(None), Invoice.status != "void")).all()
    return [{"tenant_id": tenant_id, "livemode": livemode, "event_id": event_id, "kind": INVOICE,
             "recipient": email or "", "invoice_id": invoice_id, "unsendable": None if email else NO_ADDRESS}
            for invoice_id, tenant_id, livemode, email, event_id in found]


def _payment_emails(events: Sequence[Event]) -> list[dict]:
    if not events:
        return []
    invoice_of = {e.id: e.object_id for e in events if e.type.startswith("invoice.")}
    refunds = {e.id: e.object_id for e in events if e.type == "refund.succeeded"}
    if refunds:  # a refund to the customer's balance is told by its credit note's email
        refunded = dict(db.session.execute(sa.select(Refund.id, Refund.invoice_id)
                                           .where(Refund.id.in_(sorted(set(refunds.values()))),
                                                  Refund.gateway != "balance")).all())
        invoice_of.update((event_id, refunded.get(refund_id)) for event_id, refund_id in refunds.items())
    found = {row.id: row for row in db.session.execute(
        sa.select(Invoice.id, Invoice.status, Invoice.amount_paid, Customer.email)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.id.in_(sorted({i for i in invoice_of.values() if i})))).all()}
    rows = []
    for e in events:
        invoice = found.get(invoice_of.get(e.id))
        if invoice is None or invoice.status == "void":
            continue
        if e.type == "invoice.paid" and not invoice.amount_paid:
            continue  # paid with nothing due: no receipt
        if e.type == "invoice.overdue" and invoice.status == "paid":
            continue  # paid before the event was dispatched (written off: still owed, told)
        rows.append({"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id,
                     "kind": CUSTOMER_EVENTS[e.type], "recipient": invoice.email or "", "invoice_id": invoice.id,
                     "unsendable": None if invoice.email else NO_ADDRESS})
    return rows


def _finance_emails(events: Sequence[Event]) -> list[dict]:
    """Events about an invoice carry it (`invoice_id`), unless it is unknown here: its email is
    then built from the event's snapshot alone."""
    if not events:
        return []
    lanes = {(e.tenant_id, e.livemode) for e in events}
    finance = dict(((t, m), address) for t, m, address in db.session.execute(
        sa.select(TenantSettings.tenant_id, TenantSettings.livemode, TenantSettings.finance_email)
        .where(sa.tuple_(TenantSettings.tenant_id, TenantSettings.livemode).in_(sorted(lanes)))).all())
    about = sorted({e.object_id for e in events if e.type.startswith("invoice.") and e.object_id})
    statuses = dict(db.session.execute(sa.select(Invoice.id, Invoice.status).where(Invoice.id.in_(about))).all()) \
        if about else {}
    rows = []
    for e in events:
        address = finance.get((e.tenant_id, e.livemode))
        invoice_id = e.object_id if e.type.startswith("invoice.") and e.object_id in statuses else None
        if not address or (invoice_id and statuses[invoice_id] == "void"):
            continue
        rows.append({"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id,
                     "kind": FINANCE_EVENTS[e.type], "recipient": address, "invoice_id": invoice_id})
    return rows


def _statement_emails(events: Sequence[Event]) -> list[dict]:
    """A paid payout's statement, to its provider's address (a provider without one: none)."""
    if not events:
        return []
    addresses = dict(db.session.execute(
        sa.select(Payout.id, Provider.email)
        .join(Provider, sa.and_(Provider.tenant_id == Payout.tenant_id, Provider.livemode == Payout.livemode,
                                Provider.id == Payout.provider_id))
        .where(Payout.id.in_(sorted({e.object_id for e in events})))).all())
    return [{"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id, "kind": PAYOUT_STATEMENT,
             "recipient": addresses[e.object_id]} for e in events if addresses.get(e.object_id)]


def _usage_emails(events: Sequence[Event]) -> list[dict]:
    """A threshold reached, to the subscription's customer (the event's `customer`)."""
    customers = {(e.data.get("object") or {}).get("customer") for e in events} - {None}
    if not customers:
        return []
    addresses = dict(db.session.execute(sa.select(Customer.id, Customer.email)
                                        .where(Customer.id.in_(sorted(customers)))).all())
    rows = []
    for e in events:
        customer = (e.data.get("object") or {}).get("customer")
        if customer not in addresses:
            continue
        email = addresses[customer]
        rows.append({"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id, "kind": USAGE_THRESHOLD,
                     "recipient": email or "", "invoice_id": None, "unsendable": None if email else NO_ADDRESS})
    return rows


def _credit_note_emails(events: Sequence[Event]) -> list[dict]:
    """A credit note, to its invoice's customer (no address: recorded failed, as for its invoice)."""
    if not events:
        return []
    found = {row.id: row for row in db.session.execute(
        sa.select(CreditNote.id, CreditNote.invoice_id, Invoice.status, Customer.email)
        .join(Invoice, Invoice.id == CreditNote.invoice_id).join(Customer, Customer.id == CreditNote.customer_id)
        .where(CreditNote.id.in_(sorted({e.object_id for e in events})))).all()}
    rows = []
    for e in events:
        note = found.get(e.object_id)
        if note is None or note.status == "void":
            continue
        rows.append({"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id, "kind": CREDIT_NOTE,
                     "recipient": note.email or "", "invoice_id": note.invoice_id,
                     "unsendable": None if note.email else NO_ADDRESS})
    return rows
