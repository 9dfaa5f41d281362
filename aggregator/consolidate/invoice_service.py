"""Invoice use cases: reading invoices with their lines, finalizing and voiding them."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from .. import money
from ..accounts.models import Customer, TenantSettings
from ..auth import Principal
from ..db import db, locking, run, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from ..ingest.models import Bill
from ..pagination import Page, paginate
from ..periods.service import claim_open_period
from ..states import InvalidTransition
from . import transitions
from .credit_note_service import has_credit_notes
from .credit_notes import void_allowed
from .lines import invoice_lines
from .models import INVOICE_STATES, Credit, Invoice, InvoiceLine


class InvoiceNotEditable(Conflict):
    code = "invoice_not_editable"


class InvoiceHasPayments(Conflict):
    code = "invoice_has_payments"


class VoidNotAllowed(Conflict):
    code = "void_not_allowed"


def _scoped_invoices(principal: Principal) -> sa.Select:
    return sa.select(Invoice).where(Invoice.tenant_id == principal.tenant_id,
                                    Invoice.livemode == principal.livemode)


def find_invoice(principal: Principal, invoice_id: str) -> Invoice:
    invoice = db.session.scalars(_scoped_invoices(principal).where(Invoice.id == invoice_id)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    return invoice


# --- lines ------------------------------------------------------------------------------------

def rate_text(rate: Decimal | None) -> str | None:
    return None if rate is None else money.format_rate(rate)


def with_lines(invoices: list[Invoice]) -> list[Invoice]:
    """Attach each invoice's lines as `invoice.lines` (not a column: see invoice_lines)."""
    lines = invoice_lines(invoices)
    for invoice in invoices:
        invoice.lines = lines[invoice.id]
    return invoices


# --- reading ---------------------------------------------------------------------------------

def get_invoice(principal: Principal, invoice_id: str) -> Invoice:
    """The invoice with its lines."""
    return with_lines([find_invoice(principal, invoice_id)])[0]


def list_invoices(principal: Principal, limit: int, starting_after: str | None = None,
                  period: date | None = None, customer: str | None = None,
                  status: str | None = None, overdue: bool | None = None) -> Page:
    """Newest first; filtered by period, customer, status, and whether overdue (open, past the
    end of its due date)."""
    query = _scoped_invoices(principal)
    if overdue is not None:
        is_overdue = sa.and_(Invoice.status == "open", Invoice.overdue_at.is_not(None))
        query = query.where(is_overdue if overdue else sa.not_(is_overdue))
    if period:
        query = query.where(Invoice.period_start == period)
    if customer:
        query = query.join(Invoice.customer).where(
            sa.or_(Customer.id == customer, Customer.external_id == customer))
    if status:
        query = query.where(Invoice.status == status)
    page = paginate(query, Invoice.id, limit, starting_after)
    return Page(with_lines(list(page.data)), page.has_more)


# --- finalizing ------------------------------------------------------------------------------

def finalize_invoice(principal: Principal, invoice_id: str, now: datetime) -> Invoice:
    """draft -> open as of `now`, with the next number. Finalizing an open invoice again is a no-op."""
    invoice = find_invoice(principal, invoice_id)
    if invoice.status != "open":
        INVOICE_STATES.check(invoice.status, "open")
        settings = db.session.get(TenantSettings, (principal.tenant_id, principal.livemode))
        transitions.finalize_invoices(settings, [invoice.id], now)
    db.session.commit()
    db.session.refresh(invoice)
    if invoice.status != "open":  # voided meanwhile by another request
        INVOICE_STATES.check(invoice.status, "open")
    return with_lines([invoice])[0]


def review_deadline(settings: TenantSettings) -> timedelta | None:
    """How long a draft waits for review before it is finalized by itself (None: until finalized)."""
    if settings.invoice_review != "manual" or settings.auto_finalize_after_days is None:
        return None
    return timedelta(days=settings.auto_finalize_after_days)


def oldest_draft_deadline(tenant_id: str, livemode: bool) -> datetime | None:
    """When the lane's oldest draft's review window ends (the due instant of its finalization)."""
    settings = db.session.get(TenantSettings, (tenant_id, livemode))
    window = review_deadline(settings) if settings else None
    if window is None:
        return None
    oldest = db.session.scalar(sa.select(sa.func.min(Invoice.created_at)).where(
        Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.status == "draft"))
    return oldest + window if oldest is not None else None


def finalize_drafts_due(tenant_id: str, livemode: bool, due_at: datetime) -> int:
    """Finalize, as of `due_at`, the drafts whose review window has ended by then."""
    settings = db.session.get(TenantSettings, (tenant_id, livemode))
    window = review_deadline(settings)
    if window is None:
        return 0
    ids = db.session.scalars(sa.select(Invoice.id).where(
        Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.status == "draft",
        Invoice.created_at <= due_at - window).order_by(Invoice.id)).all()
    finalized = transitions.finalize_invoices(settings, list(ids), due_at)
    db.session.commit()
    return len(finalized)


# --- voiding ---------------------------------------------------------------------------------

def void_invoice(principal: Principal, invoice_id: str, reason: str | None, now: datetime) -> Invoice:
    """Void a draft, or an open invoice with a reason, if nothing was paid on it (`409
    invoice_has_payments`: refund instead). Its lines are frozen (stored as rows), then its bills
    are released: pending in the period open now, so the provider can cancel or re-bill them.
    Credits it applied are released; the credit it carried forward, if not yet used, is
    withdrawn."""
    write_lock()
    invoice = db.session.scalars(locking(
        _scoped_invoices(principal).where(Invoice.id == invoice_id), of=Invoice)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    if invoice.status == "void":  # voided before: the same request again is answered as it was
        if invoice.void_reason != reason:  # another caller's void, not this one's
            raise InvalidTransition(f"Invoice {invoice.number or invoice.id} is void already (another request "
                                    "voided it).")
        return with_lines([invoice])[0]
    if invoice.amount_paid > 0:
        raise InvoiceHasPayments(f"Invoice {invoice.number or invoice.id} has payments "
                                 f"({money.format_amount(invoice.amount_paid, invoice.currency)} {invoice.currency}): "
                                 "refund them rather than void it.")
    INVOICE_STATES.check(invoice.status, "void")
    if invoice.status != "draft":
        settings = db.session.get(TenantSettings, (principal.tenant_id, principal.livemode))
        if not void_allowed(settings.void_finalized, settings.country):
            raise VoidNotAllowed(f"Invoice {invoice.number} is finalized and this tenant's tax regime keeps issued "
                                 "invoices: correct it by a credit note (POST /v1/invoices/{id}/credit_notes).")
        if has_credit_notes(invoice.id):
            raise VoidNotAllowed(f"Invoice {invoice.number} has credit notes: correct it by another credit note.")
    if invoice.status != "draft" and not reason:
        raise InvalidInput.on("reason", "Voiding a finalized invoice needs a reason.", "reason_required")
    carried = db.session.scalars(locking(sa.select(Credit).where(Credit.source_invoice_id == invoice.id))).first()
    if carried is not None and carried.applied_invoice_id is not None:
        raise InvoiceNotEditable(
            f"This invoice's credit was already used by invoice {carried.applied_invoice_id}; "
            "void that invoice first.")
    if carried is not None:
        db.session.delete(carried)
    settings = db.session.get(TenantSettings, (principal.tenant_id, principal.livemode))
    period = claim_open_period(principal.tenant_id, principal.livemode, now,
                               settings.period_anchor_day, settings.timezone)
    snapshot = invoice_lines([invoice])[invoice.id]
    run(sa.delete(InvoiceLine.__table__).where(InvoiceLine.invoice_id == invoice.id))
    if snapshot:
        run(sa.insert(InvoiceLine.__table__), [{
            "invoice_id": invoice.id, "position": position, "kind": line.kind, "bill_id": line.bill_id,
            "provider_id": line.provider_id, "credit_id": line.credit_id, "description": line.description,
            "service_start": line.service_start, "service_end": line.service_end, "amount": line.amount,
            "original_amount": line.original_amount, "original_currency": line.original_currency,
            "fx_rate": rate_text(line.fx_rate),
        } for position, line in enumerate(snapshot)])
    db.session.execute(
        sa.update(Bill).where(Bill.tenant_id == invoice.tenant_id, Bill.livemode == invoice.livemode,
                              Bill.period_start == invoice.period_start, Bill.customer_id == invoice.customer_id,
                              Bill.status == "pending")
        .values(period_start=period.start)
        .execution_options(synchronize_session=False))
    db.session.execute(sa.update(Credit).where(Credit.applied_invoice_id == invoice.id)
                       .values(applied_invoice_id=None))
    if not transitions.void(invoice, reason, now):  # cannot happen under the lock; never answered as done
        db.session.rollback()
        raise InvalidTransition(f"Invoice {invoice_id} changed while it was being voided.")
    db.session.commit()
    db.session.expire(invoice, ["stored_lines"])
    return with_lines([invoice])[0]


def credit_balance(customer_id: str) -> int:
    """The customer's credits not yet applied to an invoice (its `credit_balance`)."""
    return int(db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Credit.amount), 0)).where(
        Credit.customer_id == customer_id, Credit.applied_invoice_id.is_(None))) or 0)  # PostgreSQL's SUM: numeric
