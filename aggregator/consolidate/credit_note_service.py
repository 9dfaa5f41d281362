"""Credit notes as invoicing keeps them: what is left to credit of an invoice, issuing a note
(numbered from its gapless sequence, with its `credit_note.created` event and the
CreditNoteIssued fact the ledger posts), what a `reduce_due` note does to its invoice and the
credit a `customer_balance` note leaves the customer; reading them back. The money of a
`refund` or `customer_balance` note moves by a refund (payments/crediting_service.py)."""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import bus
from ..accounts.models import Provider, TenantSettings
from ..auth import Principal
from ..db import db, dialect_insert, locking, new_id, run
from ..errors import Conflict
from ..events.service import NewEvent, record
from ..pagination import Page, one, paginate
from . import einvoice, transitions
from .credit_notes import (
    REASONS,
    Creditable,
    CreditableLine,
    NotCreditable,
    NoteAmounts,
    amount_split,
    credit_note_document,
    format_number,
)
from .einvoice_service import credit_note_einvoice_for, facturx_context
from .facts import CreditNoteIssued
from .lines import invoice_lines, invoice_parts_of
from .models import Credit, CreditNote, CreditNoteLine, CreditNoteSequence, Invoice
from .schemas import CreditNoteSchema

log = logging.getLogger(__name__)

CREDITABLE_STATES = ("open", "paid", "uncollectible")


def creditable_of(invoice: Invoice) -> tuple[Creditable, dict[str, CreditableLine]]:
    """What is left to credit of the invoice, as a whole and per bill line."""
    if invoice.status not in CREDITABLE_STATES:
        raise NotCreditable(f"Invoice {invoice.number or invoice.id} is {invoice.status}: only a finalized invoice "
                            "(open, paid or uncollectible) is corrected by a credit note.")
    credited = db.session.execute(sa.select(sa.func.coalesce(sa.func.sum(CreditNote.subtotal), 0),
                                            sa.func.coalesce(sa.func.sum(CreditNote.tax), 0))
                                  .where(CreditNote.invoice_id == invoice.id)).one()
    per_bill = dict(db.session.execute(
        sa.select(CreditNoteLine.bill_id, sa.func.sum(CreditNoteLine.amount))
        .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
        .where(CreditNote.invoice_id == invoice.id, CreditNoteLine.bill_id.is_not(None))
        .group_by(CreditNoteLine.bill_id)).all())
    lines = {line.bill_id: CreditableLine(line.bill_id, line.provider_id or "", line.description, line.amount,
                                          int(per_bill.get(line.bill_id) or 0))
             for line in invoice_lines([invoice])[invoice.id] if line.bill_id is not None and line.amount > 0}
    return Creditable(invoice.currency, Decimal(invoice.tax_rate), invoice.subtotal, invoice.tax,
                      int(credited[0]), int(credited[1])), lines


def collected(invoice: Invoice) -> int:
    """What the invoice collected, net of refunds: what a refund or a customer balance credit may take."""
    return max(min(invoice.amount_paid, invoice.amount_due) - invoice.amount_refunded, 0)


def _next_number(tenant_id: str, livemode: bool, year: int) -> int:
    """Lock the tenant's credit note sequence of `year` until the transaction ends (SQLite: the
    write lock) and advance it -> the number taken. A rollback gives it back: gapless."""
    db.session.execute(dialect_insert(CreditNoteSequence.__table__).values(
        tenant_id=tenant_id, livemode=livemode, year=year, next_number=1,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode", "year"]))
    where = (CreditNoteSequence.tenant_id == tenant_id, CreditNoteSequence.livemode == livemode,
             CreditNoteSequence.year == year)
    number = db.session.scalar(locking(sa.select(CreditNoteSequence.next_number).where(*where)))
    run(sa.update(CreditNoteSequence.__table__).where(*where).values(next_number=number + 1))
    return number


def issue(invoice: Invoice, amounts: NoteAmounts, *, reason: str, memo: str | None, settlement: str,
          as_of: datetime, idempotency_key: str | None = None, refund_id: str | None = None) -> CreditNote:
    """Issue a credit note of `amounts` for the invoice (locked by the caller, its amounts checked
    against what is left to credit and to settle), in the caller's transaction: numbered, its
    `reduce_due` applied to the invoice (paid if nothing more is due) or its `customer_balance`
    credit stored, the fact published (the ledger's journal) and `credit_note.created` recorded."""
    settings = db.session.get(TenantSettings, (invoice.tenant_id, invoice.livemode))
    year = as_of.astimezone(ZoneInfo(settings.timezone)).year
    number = format_number(settings.invoice_prefix, year, _next_number(invoice.tenant_id, invoice.livemode, year))
    note = CreditNote(id=new_id("cn"), tenant_id=invoice.tenant_id, livemode=invoice.livemode,
                      invoice_id=invoice.id, customer_id=invoice.customer_id, number=number,
                      currency=invoice.currency, reason=reason, memo=memo, settlement=settlement,
                      subtotal=amounts.subtotal, tax=amounts.tax, total=amounts.total, refund_id=refund_id,
                      idempotency_key=idempotency_key, created_at=as_of, template="credit_note_v1.html")
    db.session.add(note)
    db.session.flush()  # the idempotency key's and the number's uniqueness are checked here
    if amounts.lines:
        run(sa.insert(CreditNoteLine.__table__), [
            {"credit_note_id": note.id, "position": position, "bill_id": line.bill_id,
             "provider_id": line.provider_id, "description": line.description[:1000], "amount": line.amount}
            for position, line in enumerate(amounts.lines)])
    amount_due = invoice.amount_due
    parts = invoice_parts_of(invoice)
    if settlement == "reduce_due":
        run(sa.update(Invoice.__table__).where(Invoice.id == invoice.id)
            .values(amount_due=Invoice.__table__.c.amount_due - amounts.total))
    elif settlement == "customer_balance":
        db.session.add(Credit(id=new_id("cred"), tenant_id=invoice.tenant_id, livemode=invoice.livemode,
                              customer_id=invoice.customer_id, amount=amounts.total, currency=invoice.currency,
                              source_invoice_id=invoice.id, kind="credit_note", source_credit_note_id=note.id,
                              created_at=as_of))
    bus.publish(CreditNoteIssued(invoice.tenant_id, invoice.livemode, note.id, invoice.id, invoice.currency,
                                 settlement, amounts.total, amount_due, parts, as_of))
    db.session.flush()
    db.session.expire(invoice)
    db.session.refresh(note)
    if settlement == "reduce_due" and invoice.status == "open" and invoice.amount_paid >= invoice.amount_due:
        transitions.mark_paid(settings, [invoice.id], as_of)
    record(invoice.tenant_id, invoice.livemode, as_of,
           [NewEvent("credit_note.created", note.id, {"object": CreditNoteSchema().dump(note)})])
    return note


def issue_for_refund(invoice: Invoice, refund_id: str, amount: int, reason: str | None,
                     as_of: datetime) -> CreditNote | None:
    """The credit note of a refund asked for by itself, as it succeeds (settlement `refund`, an
    amount of the invoice as a whole): at most what is left to credit (a refund from before credit
    notes existed credited nothing); none when nothing is left. The invoice is locked first: a
    Stripe refund settles in a transaction of its own, and two settling at once credit in turn."""
    db.session.execute(locking(sa.select(Invoice.id).where(Invoice.id == invoice.id)))
    db.session.refresh(invoice)
    try:
        left, _ = creditable_of(invoice)
    except NotCreditable:
        return None
    total = min(amount, left.total_left)
    if total <= 0:
        return None
    return issue(invoice, amount_split(left, total, f"Refund of invoice {invoice.number}"),
                 reason=reason if reason in REASONS else "other", memo=None, settlement="refund", as_of=as_of,
                 refund_id=refund_id)


def link_refund(note: CreditNote, refund_id: str) -> None:
    """The refund that settles the note (created after it, in its transaction)."""
    run(sa.update(CreditNote.__table__).where(CreditNote.id == note.id).values(refund_id=refund_id))
    db.session.expire(note, ["refund_id"])


# --- reading -----------------------------------------------------------------------------------

def _scoped(principal: Principal) -> sa.Select:
    return sa.select(CreditNote).where(CreditNote.tenant_id == principal.tenant_id,
                                       CreditNote.livemode == principal.livemode)


def get_credit_note(principal: Principal, credit_note_id: str) -> CreditNote:
    return one(_scoped(principal), CreditNote.id, credit_note_id, "credit note")


def by_idempotency_key(tenant_id: str, livemode: bool, key: str) -> CreditNote | None:
    return db.session.scalars(sa.select(CreditNote).where(
        CreditNote.tenant_id == tenant_id, CreditNote.livemode == livemode, CreditNote.idempotency_key == key)
        .execution_options(populate_existing=True)).first()


def list_credit_notes(principal: Principal, limit: int, starting_after: str | None = None,
                      invoice: str | None = None, customer: str | None = None) -> Page:
    """Newest first; filtered by invoice or customer."""
    query = _scoped(principal)
    if invoice:
        query = query.where(CreditNote.invoice_id == invoice)
    if customer:
        query = query.where(CreditNote.customer_id == customer)
    return paginate(query, CreditNote.id, limit, starting_after)


def has_credit_notes(invoice_id: str) -> bool:
    return db.session.scalar(sa.select(sa.exists().where(CreditNote.invoice_id == invoice_id))) or False


# --- the PDF -----------------------------------------------------------------------------------

def credit_note_document_for(note: CreditNote) -> dict:
    """The credit note's template values: seller and buyer as its invoice records them (its
    `parties`, else the settings and customer as they are now)."""
    settings = db.session.get(TenantSettings, (note.tenant_id, note.livemode))
    invoice, customer = note.invoice, note.customer
    parties = invoice.parties or {}
    seller, buyer = parties.get("seller") or {}, parties.get("buyer") or {}
    provider_ids = {line.provider_id for line in note.lines if line.provider_id}
    names = dict(db.session.execute(sa.select(Provider.id, Provider.name)
                                    .where(Provider.id.in_(provider_ids))).all()) if provider_ids else {}
    zone = ZoneInfo(settings.timezone)
    return credit_note_document(
        note={"number": note.number, "currency": note.currency, "issue_date": note.created_at.astimezone(zone).date(),
              "invoice_number": invoice.number,
              "invoice_date": (invoice.finalized_at or invoice.created_at).astimezone(zone).date(),
              "reason": note.reason, "memo": note.memo, "settlement": note.settlement, "subtotal": note.subtotal,
              "tax": note.tax, "tax_rate": invoice.tax_rate, "total": note.total,
              "tax_name": seller.get("tax_name") or settings.tax_name},
        lines=[{"description": line.description, "provider_id": line.provider_id, "amount": line.amount}
               for line in note.lines],
        provider_names=names,
        tenant={"legal_name": seller.get("legal_name") or settings.legal_name or settings.name,
                "address_lines": _address_lines(seller.get("address") or settings.address),
                "tax_ids": _tax_ids(seller.get("tax_ids") or settings.tax_ids)},
        customer={"name": buyer.get("name") or customer.name or customer.external_id, "email": customer.email,
                  "address_lines": _address_lines(buyer.get("address") or customer.address),
                  "tax_ids": _tax_ids(buyer.get("tax_ids") or customer.tax_ids)},
        locale=settings.locale)


def _address_lines(address: dict | None) -> list[str]:
    if not address:
        return []
    city = " ".join(filter(None, [address.get("city"), address.get("state"), address.get("postal_code")]))
    return [line for line in (address.get("line1"), address.get("line2"), city, address.get("country")) if line]


def _tax_ids(tax_ids) -> list[str]:
    return [f"{t.get('type', '').replace('_', ' ').upper()} {t.get('value', '')}".strip()
            for t in tax_ids or () if isinstance(t, dict)]


def render_pdf(note: CreditNote, adapters) -> bytes:
    """Render and store the note's PDF, once (a note never changes: the first stored is kept),
    in the caller's transaction. -> its bytes."""
    if note.pdf_path is not None:
        return adapters.storage.get(note.pdf_path)
    pdf = adapters.renderer.render(note.template, facturx_context(  # a Factur-X PDF/A-3b, as invoices' are
        credit_note_document_for(note), einvoice.to_cii(credit_note_einvoice_for(note))))
    digest = hashlib.sha256(pdf).hexdigest()
    key = f"credit_notes/{note.tenant_id}/{'live' if note.livemode else 'test'}/{note.id}-{digest[:16]}.pdf"
    adapters.storage.put(key, pdf)
    stored = run(sa.update(CreditNote.__table__).where(CreditNote.id == note.id, CreditNote.pdf_sha256.is_(None))
                 .values(pdf_path=key, pdf_sha256=digest, pdf_error=None)).rowcount
    db.session.refresh(note)
    return pdf if stored else adapters.storage.get(note.pdf_path)


def credit_note_pdf(principal: Principal, credit_note_id: str, adapters) -> tuple[CreditNote, bytes]:
    """The note and its PDF, rendered now if it has none yet (a failure is recorded on the note
    and answered as such, never as a 500)."""
    note = get_credit_note(principal, credit_note_id)
    if note.pdf_path is not None:
        return note, adapters.storage.get(note.pdf_path)
    try:
        pdf = render_pdf(note, adapters)
        db.session.commit()
    except Exception as exc:  # rendering or storage trouble: recorded, answered 409, tried again next time
        db.session.rollback()
        log.error("rendering the PDF of credit note %s failed: %s: %s", credit_note_id, type(exc).__name__, exc,
                  exc_info=exc)
        run(sa.update(CreditNote.__table__).where(CreditNote.id == credit_note_id)
            .values(pdf_error=f"{type(exc).__name__}: {exc}"[:500]))
        db.session.commit()
        raise PdfNotReady(f"The credit note's PDF could not be rendered ({type(exc).__name__}); try again.") from exc
    return note, pdf


class PdfNotReady(Conflict):
    code = "pdf_not_ready"
