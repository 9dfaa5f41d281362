"""The guarded transitions of invoices: created (draft, or open at once under automatic
review), draft -> open (finalized: numbered from the gapless sequence), open -> paid |
uncollectible, uncollectible -> paid, -> void. The only code that writes an invoice's status,
and where each change's event is written, in the same transaction:
`invoice.created`, `invoice.finalized`, `invoice.paid`, `invoice.marked_uncollectible`,
`invoice.voided`; and the fact of each change that moves money (`facts.py`, published on
aggregator.bus: the ledger posts its journal before COMMIT): InvoicesFinalizedAtClose,
InvoicesFinalized, InvoiceWrittenOff, InvoiceVoided.

How an open invoice is collected (`collection`, `next_charge_at`, …) is payments' to write
(payments/transitions.py): each change here publishes its fact before its event is written, and
payments, subscribed, schedules the charges of invoices opened (`InvoicesOpened`) and stops
collecting those paid, written off or voided (`InvoicesPaid`, `InvoiceWrittenOff`,
`InvoiceVoided`), so the events show collection as it now stands."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import bus, due
from ..accounts.models import Customer, TenantSettings
from ..db import bulk_insert, db, dialect_insert, in_ids, json_for_bulk_insert, locking, new_ordered_id, run
from ..events.service import NewEvent, record
from ..periods.calendar import invoice_due_date
from ..states import guarded_update
from . import parties
from .facts import (
    FinalizedInvoice,
    InvoicesFinalized,
    InvoicesFinalizedAtClose,
    InvoicesOpened,
    InvoicesPaid,
    InvoiceVoided,
    InvoiceWrittenOff,
)
from .lines import invoice_parts_of, invoice_parts_of_many
from .models import INVOICE_STATES, Invoice, InvoiceSequence
from .snapshots import columns, invoice_snapshot

_invoices = Invoice.__table__


def format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:06d}"


def lock_sequence(tenant_id: str, livemode: bool) -> int:
    """Lock the tenant's invoice sequence row until the transaction ends (on SQLite, the
    database write lock) -> the next number."""
    db.session.execute(dialect_insert(InvoiceSequence.__table__).values(  # a write: SQLite's lock too
        tenant_id=tenant_id, livemode=livemode, next_number=1,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode"]))
    return db.session.scalar(locking(sa.select(InvoiceSequence.next_number).where(
        InvoiceSequence.tenant_id == tenant_id, InvoiceSequence.livemode == livemode)))


def _advance_sequence(tenant_id: str, livemode: bool, next_number: int) -> None:
    run(sa.update(InvoiceSequence.__table__)
        .where(InvoiceSequence.tenant_id == tenant_id, InvoiceSequence.livemode == livemode)
        .values(next_number=next_number))


def create_invoices(settings: TenantSettings, rows: list[dict], external_ids: dict[str, str],
                    as_of: datetime, first_number: int,
                    finalized: Sequence[FinalizedInvoice] = (),
                    shares: Sequence = (), converted: dict | None = None) -> None:
    """Store new invoices (rows of every column but the lifecycle's), each as of `as_of`:
    finalized at once with the numbers from `first_number` on under automatic review (the
    caller holds the sequence row lock, so they are gapless), drafts otherwise; with their
    `invoice.created` (and `invoice.finalized`) events. `external_ids`: customer id -> its
    external_id, for the events. Finalized, they are published as InvoicesFinalizedAtClose (the
    ledger posts them as one journal, whose id each keeps): `finalized` holds their amounts, one
    per row, `shares` the providers' shares of them all and `converted` their bills converted
    into the invoice's currency ((bill currency, invoice currency) -> (amount, invoiced))."""
    auto = settings.invoice_review == "auto"
    year = as_of.astimezone(ZoneInfo(settings.timezone)).year
    for offset, row in enumerate(rows):
        row.update(status="open" if auto else "draft", created_at=as_of, finalized_at=as_of if auto else None,
                   number=format_number(settings.invoice_prefix, year, first_number + offset) if auto else None)
    if auto and rows:
        if len(finalized) != len(rows):
            raise ValueError("Finalized invoices are posted to the ledger: pass their amounts, one per row.")
        journal_id = new_ordered_id("jrn")
        bus.publish(InvoicesFinalizedAtClose(settings.tenant_id, settings.livemode, journal_id, tuple(finalized),
                                             tuple(shares), converted or {}, rows[0]["number"], rows[-1]["number"],
                                             as_of))
        for row in rows:
            row["finalized_journal_id"] = journal_id
    as_json = json_for_bulk_insert()
    bulk_insert(_invoices, [{**row, "parties": as_json(row["parties"])} if row.get("parties") else row
                            for row in rows])
    if auto and rows:
        _advance_sequence(settings.tenant_id, settings.livemode, first_number + len(rows))
        bus.publish(InvoicesOpened(settings.tenant_id, settings.livemode, as_of,
                                   {row["id"]: row["due_date"] for row in rows}))
        collection = {invoice_id: (state, at) for invoice_id, state, at in run(
            sa.select(_invoices.c.id, _invoices.c.collection, _invoices.c.next_charge_at)
            .where(in_ids(_invoices.c.id, [row["id"] for row in rows])))}
        for row in rows:  # as payments scheduled it, for the events
            row["collection"], row["next_charge_at"] = collection[row["id"]]
    events = []
    for row in rows:
        snapshot = {"object": invoice_snapshot(row, external_ids[row["customer_id"]])}
        events.append(NewEvent("invoice.created", row["id"], snapshot))
        if auto:
            events.append(NewEvent("invoice.finalized", row["id"], snapshot))
    record(settings.tenant_id, settings.livemode, as_of, events)
    if auto or settings.auto_finalize_after_days is not None:
        due.nudge(settings.tenant_id, settings.livemode)  # their charge (or review deadline) is due work


def finalize_invoices(settings: TenantSettings, invoice_ids: Sequence[str], as_of: datetime) -> list[str]:
    """draft -> open, as of `as_of`, for those of these invoices still draft, numbering them
    from the gapless sequence in id order, with an `invoice.finalized` event each. Under payment
    terms their due date moves to the terms after `as_of`'s day (the day they are issued). The drafts
    and the sequence row stay locked until the caller's transaction commits; a rollback returns
    the numbers. Each keeps its parties, the tenant and its customer as they are now (its tax
    treatment was decided with its amounts, when the draft was made). -> the ids finalized here."""
    if not invoice_ids:
        return []
    tenant_id, livemode = settings.tenant_id, settings.livemode
    first = lock_sequence(tenant_id, livemode)
    found = run(locking(sa.select(_invoices.c.id, _invoices.c.due_date, _invoices.c.customer_id,
                                  _invoices.c.tax_treatment)
                        .where(_invoices.c.id.in_(list(invoice_ids)), _invoices.c.tenant_id == tenant_id,
                               _invoices.c.livemode == livemode, _invoices.c.status == "draft")
                        .order_by(_invoices.c.id))).all()
    if not found:
        return []
    drafts = [(invoice_id, due_date) for invoice_id, due_date, _, _ in found]
    seller = parties.seller(settings)
    buyers = {c.id: parties.buyer_of(c) for c in db.session.scalars(
        sa.select(Customer).where(in_ids(Customer.id, {customer_id for _, _, customer_id, _ in found})))}
    parties_of = {invoice_id: {"seller": seller, "buyer": buyers[customer_id]}
                  for invoice_id, _, customer_id, _ in found}
    # Reverse charged when the draft was made, its buyer kept now: a buyer whose EU VAT number was
    # removed meanwhile cannot be reverse charged on the document (EN 16931 BR-AE-02): exempt, at
    # the same zero tax.
    treatments = {invoice_id: parties.kept_treatment(treatment, buyers[customer_id])
                  for invoice_id, _, customer_id, treatment in found}
    _advance_sequence(tenant_id, livemode, first + len(drafts))
    issued_on = as_of.astimezone(ZoneInfo(settings.timezone)).date()
    if settings.payment_terms_days is not None:  # due after the invoice, now issued; else as the close set it
        drafts = [(invoice_id, invoice_due_date(issued_on, settings.charge_day, settings.payment_terms_days))
                  for invoice_id, _ in drafts]
    run(guarded_update(INVOICE_STATES, _invoices, "open", _invoices.c.id == sa.bindparam("invoice"))
        .values(finalized_at=as_of, number=sa.bindparam("number"), due_date=sa.bindparam("due"),
                parties=sa.bindparam("parties", type_=_invoices.c.parties.type),
                tax_treatment=sa.bindparam("treatment")),
        [{"invoice": invoice_id, "due": due_date, "parties": parties_of[invoice_id],
          "treatment": treatments[invoice_id],
          "number": format_number(settings.invoice_prefix, issued_on.year, first + offset)}
         for offset, (invoice_id, due_date) in enumerate(drafts)])
    ids = [invoice_id for invoice_id, _ in drafts]
    bus.publish(InvoicesOpened(tenant_id, livemode, as_of, dict(drafts)))
    invoices = db.session.scalars(sa.select(Invoice).where(in_ids(Invoice.id, ids)).order_by(Invoice.id)).all()
    parts = invoice_parts_of_many(invoices)
    bus.publish(InvoicesFinalized(tenant_id, livemode, tuple(FinalizedInvoice.of(i.id, i.customer_id, parts[i.id])
                                                             for i in invoices), as_of))
    _announce(settings, "invoice.finalized", ids, as_of)
    due.nudge(tenant_id, livemode)  # their charge is due work
    return ids


def mark_paid(settings: TenantSettings, invoice_ids: Sequence[str], as_of: datetime,
              details: dict | None = None) -> list[str]:
    """open | uncollectible -> paid, as of `as_of` (what was paid is already on the invoices),
    with an `invoice.paid` event each. -> the ids that changed (others were paid or void)."""
    if not invoice_ids:
        return []
    changed = db.session.execute(
        guarded_update(INVOICE_STATES, _invoices, "paid", in_ids(_invoices.c.id, invoice_ids))
        .values(paid_at=as_of)
        .returning(_invoices.c.id)).scalars().all()
    if changed:
        bus.publish(InvoicesPaid(settings.tenant_id, settings.livemode, tuple(changed), as_of))
    _announce(settings, "invoice.paid", changed, as_of, details)
    return list(changed)


def mark_uncollectible(settings: TenantSettings, invoice_id: str, as_of: datetime, details: dict | None = None) -> bool:
    """open -> uncollectible (every retry failed, or an operator gave up), with its
    `invoice.marked_uncollectible` event and the write-off of what it did not collect."""
    changed = db.session.execute(
        guarded_update(INVOICE_STATES, _invoices, "uncollectible", _invoices.c.id == invoice_id)).rowcount
    if changed:
        invoice = db.session.scalars(sa.select(Invoice).where(Invoice.id == invoice_id)
                                     .execution_options(populate_existing=True)).one()
        bus.publish(InvoiceWrittenOff(
            invoice.tenant_id, invoice.livemode, invoice.id, invoice.currency, invoice.amount_due, invoice.amount_paid,
            invoice_parts_of(invoice) if invoice.amount_paid < invoice.amount_due else None, as_of))
        _announce(settings, "invoice.marked_uncollectible", [invoice_id], as_of, details)
    return bool(changed)


def mark_disputed(settings: TenantSettings, invoice_id: str, as_of: datetime, dispute: dict) -> None:
    """Flag the invoice `disputed` (a charge of it is disputed with the customer's bank), with an
    `invoice.disputed` event (data: the invoice, and `dispute`)."""
    db.session.execute(sa.update(_invoices).where(_invoices.c.id == invoice_id).values(disputed=True)
                       .execution_options(synchronize_session=False))
    _announce(settings, "invoice.disputed", [invoice_id], as_of, {invoice_id: {"dispute": dispute}})


def clear_disputed(invoice_id: str) -> bool:
    """The dispute was decided for the merchant: the invoice is no longer flagged. -> whether it was."""
    return bool(db.session.execute(sa.update(_invoices).where(_invoices.c.id == invoice_id, _invoices.c.disputed)
                                   .values(disputed=False).execution_options(synchronize_session=False)).rowcount)


def void(invoice: Invoice, reason: str | None, now: datetime) -> bool:
    """-> void (from draft, open or uncollectible), with its `invoice.voided` event. -> whether
    it changed (False: it was void already)."""
    changed = db.session.execute(guarded_update(INVOICE_STATES, _invoices, "void", _invoices.c.id == invoice.id)
                                 .values(voided_at=now, void_reason=reason)).rowcount
    if changed:
        db.session.expire(invoice)
        at_close = (FinalizedInvoice.of(invoice.id, invoice.customer_id, invoice_parts_of(invoice))
                    if invoice.finalized_journal_id else None)  # its amounts are in its close chunk's journal
        bus.publish(InvoiceVoided(invoice.tenant_id, invoice.livemode, invoice.id, at_close, now))
        settings = db.session.get(TenantSettings, (invoice.tenant_id, invoice.livemode))
        _announce(settings, "invoice.voided", [invoice.id], now)
    return bool(changed)


def _announce(settings: TenantSettings, type_: str, invoice_ids: Sequence[str], created: datetime,
              details: dict | None = None) -> None:
    """Record `type_` for each invoice: data {"object": the invoice, **details[invoice id]}."""
    if not invoice_ids:
        return
    rows = db.session.execute(sa.select(Invoice, Customer.external_id)
                              .join(Customer, Customer.id == Invoice.customer_id)
                              .where(in_ids(Invoice.id, invoice_ids))
                              .execution_options(populate_existing=True)).all()
    record(settings.tenant_id, settings.livemode, created,
           [NewEvent(type_, invoice.id, {"object": invoice_snapshot(columns(invoice), external_id),
                                         **((details or {}).get(invoice.id) or {})})
            for invoice, external_id in sorted(rows, key=lambda r: r[0].id)])
