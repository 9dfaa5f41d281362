"""Period and invoice use cases. Each owns its transaction and is handed `now`."""
from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import groupby
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import money
from ..accounts.models import Customer, Tenant
from ..auth import Principal
from ..db import bulk_insert, db, dialect_insert, locking, new_id, run, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from ..ingest.models import BILL_STATES, Bill
from ..pagination import Page, paginate
from . import periods as P
from .document import INVOICE_TEMPLATE
from .invoices import BillItem, CreditItem, InvoiceDraft, MissingRates, build_invoice, tax_rate_for
from .models import (INVOICE_STATES, PERIOD_STATES, Credit, FxRate, Invoice, InvoiceLine,
                     InvoiceSequence, PeriodRecord)

log = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 500


class PeriodNotEnded(Conflict):
    code = "period_not_ended"


class InvoiceNotEditable(Conflict):
    code = "invoice_not_editable"


def tenant_period(tenant: Tenant, start: date) -> P.Period:
    try:
        return P.period_starting(start, tenant.period_anchor_day, tenant.timezone)
    except ValueError as exc:
        raise NotFound(f"No period starts on {start.isoformat()}: periods start on day "
                       f"{tenant.period_anchor_day} of the month.") from exc


def _ensure_period_row(tenant_id: str, livemode: bool, period: P.Period) -> None:
    db.session.execute(dialect_insert(PeriodRecord.__table__).values(
        tenant_id=tenant_id, livemode=livemode, start=period.start, end=period.end,
        start_at=period.start_at, end_at=period.end_at, status="open",
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode", "start"]))


# --- intake side -------------------------------------------------------------------------

def claim_open_period(tenant_id: str, livemode: bool, now: datetime, anchor_day: int,
                      tz: str) -> P.Period:
    """The period a bill received `now` belongs to: the one containing `now`, or, if that one is
    already closing, the next open one. Runs inside the caller's transaction and holds a share
    lock on the period row until it commits, so a close cannot start in between."""
    period = P.period_containing(now, anchor_day, tz)
    sqlite = db.session.get_bind().dialect.name == "sqlite"
    while True:
        if sqlite:  # take SQLite's write lock before reading the status it must rely on
            _ensure_period_row(tenant_id, livemode, period)
        status = _period_status_locked(tenant_id, livemode, period.start)
        if status is None:
            _ensure_period_row(tenant_id, livemode, period)
            status = _period_status_locked(tenant_id, livemode, period.start)
        if status == "open":
            return period
        period = P.next_period(period, anchor_day, tz)


def _period_status_locked(tenant_id: str, livemode: bool, start: date) -> str | None:
    return run(_period_status_query(db.session.get_bind().dialect.name),
               {"tenant_id": tenant_id, "livemode": livemode, "start": start}).scalar()


@functools.cache
def _period_status_query(dialect: str) -> sa.Select:
    """Built once per dialect: intake runs it for every bill."""
    periods = PeriodRecord.__table__.c
    query = sa.select(periods.status).where(
        periods.tenant_id == sa.bindparam("tenant_id"), periods.livemode == sa.bindparam("livemode"),
        periods.start == sa.bindparam("start"))
    return query.with_for_update(read=True) if dialect == "postgresql" else query


# --- the close ---------------------------------------------------------------------------

@dataclass
class CloseReport:
    period: str
    status: str = "closing"
    invoices_created: int = 0
    customers_waiting: int = 0
    missing_fx_rates: set[tuple[str, str]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    pdfs: "RenderReport | None" = None


def close_period(tenant_id: str, livemode: bool, start: date, now: datetime,
                 chunk: int = CHUNK_CUSTOMERS) -> CloseReport:
    """Build one invoice per customer with uncancelled bills in the period.

    Exactly once and resumable: the period is first marked closing (no bill enters it after
    that), then customers are invoiced in chunks, each chunk in its own transaction; an invoice
    is unique per (tenant, mode, customer, period) and its bills move from pending to invoiced
    with it. Running it again, concurrently or after a crash, continues where it stopped.
    """
    tenant = db.session.get(Tenant, tenant_id)
    period = tenant_period(tenant, start)
    if now < period.end_at:
        raise PeriodNotEnded(f"The period {start.isoformat()} ends at {period.end_at.isoformat()} "
                             "and cannot be closed before then.")
    _ensure_period_row(tenant_id, livemode, period)
    db.session.execute(sa.update(PeriodRecord).where(
        PeriodRecord.tenant_id == tenant_id, PeriodRecord.livemode == livemode,
        PeriodRecord.start == start, PeriodRecord.status.in_(PERIOD_STATES.sources("closing")),
    ).values(status="closing", closing_at=now))
    db.session.commit()

    rates = rates_in_effect(tenant_id, livemode, period.end)
    report = CloseReport(period.name)
    closed_on = now.astimezone(ZoneInfo(tenant.timezone)).date()
    context = _CloseContext(tenant, livemode, period, P.due_date(closed_on, tenant.charge_day), rates, now)
    after = ""
    while True:
        customer_ids = db.session.scalars(
            sa.select(Bill.customer_id).distinct().where(
                Bill.tenant_id == tenant_id, Bill.livemode == livemode,
                Bill.period_start == start, Bill.status == "pending", Bill.customer_id > after)
            .order_by(Bill.customer_id).limit(chunk)).all()
        if not customer_ids:
            break
        _invoice_customers(context, customer_ids, report)
        db.session.commit()
        after = customer_ids[-1]

    waiting = db.session.scalar(sa.select(sa.func.count(sa.distinct(Bill.customer_id))).where(
        Bill.tenant_id == tenant_id, Bill.livemode == livemode, Bill.period_start == start,
        Bill.status == "pending"))
    report.customers_waiting = waiting
    if not waiting:
        db.session.execute(sa.update(PeriodRecord).where(
            PeriodRecord.tenant_id == tenant_id, PeriodRecord.livemode == livemode,
            PeriodRecord.start == start, PeriodRecord.status == "closing",
        ).values(status="closed", closed_at=now))
        report.status = "closed"
    db.session.commit()
    if report.missing_fx_rates:
        log.warning("close of %s waits for FX rates %s", start, sorted(report.missing_fx_rates))
    return report


@dataclass(frozen=True)
class _CloseContext:
    tenant: Tenant
    livemode: bool
    period: P.Period
    due_date: date
    rates: dict[tuple[str, str], Decimal]
    now: datetime


def _invoice_customers(ctx: _CloseContext, customer_ids: list[str], report: CloseReport) -> None:
    tenant = ctx.tenant
    write_lock()
    bill_rows = db.session.execute(locking(
        sa.select(Bill.id, Bill.customer_id, Bill.provider_id, Bill.amount, Bill.currency,
                  Bill.description, Bill.service_period_start, Bill.service_period_end)
        .where(Bill.tenant_id == tenant.id, Bill.livemode == ctx.livemode,
               Bill.period_start == ctx.period.start, Bill.status == "pending",
               Bill.customer_id.in_(customer_ids))
        .order_by(Bill.customer_id))).all()
    customers = {c.id: c for c in db.session.execute(
        sa.select(Customer.id, Customer.currency, Customer.tax_exempt, Customer.tax_rate)
        .where(Customer.id.in_(customer_ids))).all()}
    credits: dict[str, list[CreditItem]] = {}
    for row in db.session.execute(locking(
            sa.select(Credit.id, Credit.customer_id, Credit.amount, Credit.currency, Invoice.number)
            .join(Invoice, Invoice.id == Credit.source_invoice_id)
            .where(Credit.customer_id.in_(customer_ids), Credit.applied_invoice_id.is_(None))
            .order_by(Credit.id), of=Credit)).all():
        credits.setdefault(row.customer_id, []).append(CreditItem(
            row.id, row.amount, row.currency, f"Credit carried from invoice {row.number or row.id}"))

    default_rate = money.parse_rate(tenant.default_tax_rate)
    drafts: list[tuple[str, InvoiceDraft]] = []
    for customer_id, rows in groupby(bill_rows, key=lambda r: r.customer_id):
        customer = customers[customer_id]
        rate = tax_rate_for(default_rate, money.parse_rate(customer.tax_rate) if customer.tax_rate else None,
                            customer.tax_exempt)
        items = [BillItem(r.id, r.provider_id, r.amount, r.currency, r.description,
                          r.service_period_start, r.service_period_end) for r in rows]
        try:
            drafts.append((customer_id, build_invoice(customer.currency, rate, items,
                                                      credits.get(customer_id, []), ctx.rates)))
        except MissingRates as missing:
            report.missing_fx_rates |= missing.pairs
        except money.MoneyError as exc:  # e.g. a conversion beyond any storable amount
            report.errors.append(f"customer {customer_id}: {exc}")
    if not drafts:
        return
    _store_invoices(ctx, drafts, report)


def _store_invoices(ctx: _CloseContext, drafts: list[tuple[str, InvoiceDraft]], report: CloseReport) -> None:
    tenant, period = ctx.tenant, ctx.period
    invoice_rows = [{
        "id": new_id("inv"), "tenant_id": tenant.id, "livemode": ctx.livemode,
        "customer_id": customer_id, "period_start": period.start, "period_end": period.end,
        "status": "draft", "currency": d.currency, "tax_rate": money.format_rate(d.tax_rate),
        "subtotal": d.totals.subtotal, "tax": d.totals.tax, "total": d.totals.total,
        "amount_due": d.totals.total, "carried_credit": d.totals.carried_credit,
        "due_date": ctx.due_date, "created_at": ctx.now, "template": INVOICE_TEMPLATE,
    } for customer_id, d in drafts]
    table = Invoice.__table__
    created = dict(db.session.execute(
        dialect_insert(table).on_conflict_do_nothing(
            index_elements=["tenant_id", "livemode", "customer_id", "period_start"])
        .returning(table.c.customer_id, table.c.id), invoice_rows).all())
    if not created:
        return
    line_rows, credit_rows, applied = [], [], []
    for customer_id, draft in drafts:
        invoice_id = created.get(customer_id)
        if invoice_id is None:
            continue
        for position, line in enumerate(draft.lines):
            line_rows.append({
                "invoice_id": invoice_id, "position": position, "kind": line.kind,
                "bill_id": line.bill_id, "provider_id": line.provider_id, "credit_id": line.credit_id,
                "description": line.description, "service_start": line.service_start,
                "service_end": line.service_end, "amount": line.amount,
                "original_amount": line.original_amount, "original_currency": line.original_currency,
                "fx_rate": money.format_rate(line.fx_rate) if line.fx_rate is not None else None,
            })
            if line.credit_id:
                applied.append({"credit_id": line.credit_id, "invoice_id": invoice_id})
        if draft.totals.carried_credit:
            credit_rows.append({
                "id": new_id("cred"), "tenant_id": tenant.id, "livemode": ctx.livemode,
                "customer_id": customer_id, "amount": draft.totals.carried_credit,
                "currency": draft.currency, "source_invoice_id": invoice_id, "created_at": ctx.now})
    bulk_insert(InvoiceLine.__table__, line_rows)
    if credit_rows:
        db.session.execute(sa.insert(Credit.__table__), credit_rows)
    for item in applied:
        db.session.execute(sa.update(Credit).where(Credit.id == item["credit_id"])
                           .values(applied_invoice_id=item["invoice_id"]))
    bills = Bill.__table__.c
    db.session.execute(  # per customer, along ix_bills_period: no scan of the whole period
        sa.update(Bill.__table__)
        .where(bills.tenant_id == tenant.id, bills.livemode == ctx.livemode,
               bills.period_start == period.start, bills.status == "pending",
               bills.customer_id == sa.bindparam("customer"))
        .values(status="invoiced", invoice_id=sa.bindparam("invoice")),
        [{"customer": customer_id, "invoice": invoice_id} for customer_id, invoice_id in created.items()])
    report.invoices_created += len(created)
    if tenant.invoice_review == "auto":
        _number_invoices(tenant, ctx.livemode, sorted(created.values()), ctx.now)


# --- finalization and numbering -------------------------------------------------------------

def _format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:06d}"


def _number_invoices(tenant: Tenant, livemode: bool, invoice_ids: list[str], now: datetime) -> list[str]:
    """draft -> open for those of these invoices still draft, numbering them from the gapless
    sequence. The drafts and the sequence row stay locked until the caller's transaction
    commits; a rollback returns the numbers. -> the ids that were finalized here."""
    if not invoice_ids:
        return []
    db.session.execute(dialect_insert(InvoiceSequence.__table__).values(  # a write: SQLite's lock too
        tenant_id=tenant.id, livemode=livemode, next_number=1,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode"]))
    invoices = Invoice.__table__.c
    drafts = run(locking(sa.select(invoices.id).where(invoices.id.in_(invoice_ids), invoices.status == "draft")
                         .order_by(invoices.id))).scalars().all()
    if not drafts:
        return []
    first = db.session.scalar(
        sa.update(InvoiceSequence)
        .where(InvoiceSequence.tenant_id == tenant.id, InvoiceSequence.livemode == livemode)
        .values(next_number=InvoiceSequence.next_number + len(drafts))
        .returning(InvoiceSequence.next_number)) - len(drafts)
    year = now.astimezone(ZoneInfo(tenant.timezone)).year
    run(sa.update(Invoice.__table__)
        .where(invoices.id == sa.bindparam("invoice"), invoices.status == "draft")
        .values(status="open", finalized_at=now, number=sa.bindparam("number")),
        [{"invoice": invoice_id, "number": _format_number(tenant.invoice_prefix, year, first + offset)}
         for offset, invoice_id in enumerate(drafts)])
    return list(drafts)


def _scoped_invoices(principal: Principal) -> sa.Select:
    return sa.select(Invoice).where(Invoice.tenant_id == principal.tenant_id,
                                    Invoice.livemode == principal.livemode)


def get_invoice(principal: Principal, invoice_id: str) -> Invoice:
    invoice = db.session.scalars(_scoped_invoices(principal).where(Invoice.id == invoice_id)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    return invoice


def list_invoices(principal: Principal, limit: int, starting_after: str | None = None,
                  period: date | None = None, customer: str | None = None,
                  status: str | None = None) -> Page:
    query = _scoped_invoices(principal)
    if period:
        query = query.where(Invoice.period_start == period)
    if customer:
        query = query.join(Invoice.customer).where(
            sa.or_(Customer.id == customer, Customer.external_id == customer))
    if status:
        query = query.where(Invoice.status == status)
    return paginate(query, Invoice.id, limit, starting_after)


def finalize_invoice(principal: Principal, invoice_id: str, now: datetime) -> Invoice:
    """draft -> open, with the next number. Finalizing an open invoice again is a no-op."""
    invoice = get_invoice(principal, invoice_id)
    if invoice.status != "open":
        INVOICE_STATES.check(invoice.status, "open")
        tenant = db.session.get(Tenant, principal.tenant_id)
        _number_invoices(tenant, principal.livemode, [invoice.id], now)
    db.session.commit()
    db.session.refresh(invoice)
    if invoice.status != "open":  # voided meanwhile by another request
        INVOICE_STATES.check(invoice.status, "open")
    return invoice


def finalize_due_drafts(tenant_id: str, livemode: bool, now: datetime) -> int:
    """Finalize drafts older than the tenant's auto_finalize_after_days (manual review)."""
    tenant = db.session.get(Tenant, tenant_id)
    if tenant.invoice_review != "manual" or tenant.auto_finalize_after_days is None:
        return 0
    cutoff = now - timedelta(days=tenant.auto_finalize_after_days)
    ids = db.session.scalars(sa.select(Invoice.id).where(
        Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.status == "draft",
        Invoice.created_at <= cutoff).order_by(Invoice.id)).all()
    _number_invoices(tenant, livemode, list(ids), now)
    db.session.commit()
    return len(ids)


def void_invoice(principal: Principal, invoice_id: str, reason: str | None, now: datetime) -> Invoice:
    """Void a draft, or an open invoice with a reason. Its bills are released: pending again, in
    the period open now, so the provider can cancel or re-bill them. Credits it applied are
    released; the credit it carried forward, if not yet used, is withdrawn."""
    write_lock()
    invoice = db.session.scalars(locking(
        _scoped_invoices(principal).where(Invoice.id == invoice_id), of=Invoice)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    if invoice.status == "void":
        return invoice
    INVOICE_STATES.check(invoice.status, "void")
    if invoice.status != "draft" and not reason:
        raise InvalidInput.on("reason", "Voiding a finalized invoice needs a reason.", "reason_required")
    carried = db.session.scalars(locking(sa.select(Credit).where(Credit.source_invoice_id == invoice.id))).first()
    if carried is not None and carried.applied_invoice_id is not None:
        raise InvoiceNotEditable(
            f"This invoice's credit was already used by invoice {carried.applied_invoice_id}; "
            "void that invoice first.")
    if carried is not None:
        db.session.delete(carried)
    tenant = db.session.get(Tenant, principal.tenant_id)
    period = claim_open_period(principal.tenant_id, principal.livemode, now,
                               tenant.period_anchor_day, tenant.timezone)
    invoiced_bills = sa.select(InvoiceLine.bill_id).where(  # via the lines' index, not a bills scan
        InvoiceLine.invoice_id == invoice.id, InvoiceLine.bill_id.is_not(None))
    db.session.execute(
        sa.update(Bill).where(Bill.id.in_(invoiced_bills), Bill.invoice_id == invoice.id,
                              Bill.status.in_(BILL_STATES.sources("pending")))
        .values(status="pending", invoice_id=None, period_start=period.start)
        .execution_options(synchronize_session=False))
    db.session.execute(sa.update(Credit).where(Credit.applied_invoice_id == invoice.id)
                       .values(applied_invoice_id=None))
    invoice.status, invoice.voided_at, invoice.void_reason = "void", now, reason
    db.session.commit()
    return invoice


# --- FX rates --------------------------------------------------------------------------------

def set_fx_rate(principal: Principal, base: str, quote: str, rate: Decimal, effective_date: date,
                now: datetime) -> FxRate:
    """Record the rate (quote per one base) in effect from `effective_date`; re-sending the same
    pair and date replaces the rate."""
    if base == quote:
        raise InvalidInput.on("quote", "The quote currency must differ from the base.")
    existing = db.session.scalars(sa.select(FxRate).where(
        FxRate.tenant_id == principal.tenant_id, FxRate.livemode == principal.livemode,
        FxRate.base == base, FxRate.quote == quote, FxRate.effective_date == effective_date)).first()
    if existing is None:
        existing = FxRate(tenant_id=principal.tenant_id, livemode=principal.livemode, base=base,
                          quote=quote, effective_date=effective_date)
        db.session.add(existing)
    existing.rate, existing.created_at = money.format_rate(rate), now
    db.session.commit()
    return existing


def list_fx_rates(principal: Principal, limit: int, starting_after: str | None = None) -> Page:
    return paginate(sa.select(FxRate).where(FxRate.tenant_id == principal.tenant_id,
                                            FxRate.livemode == principal.livemode),
                    FxRate.id, limit, starting_after)


def rates_in_effect(tenant_id: str, livemode: bool, on: date) -> dict[tuple[str, str], Decimal]:
    """For each pair, the rate with the latest effective date on or before `on`."""
    rows = db.session.execute(sa.select(FxRate.base, FxRate.quote, FxRate.rate, FxRate.effective_date)
                              .where(FxRate.tenant_id == tenant_id, FxRate.livemode == livemode,
                                     FxRate.effective_date <= on)
                              .order_by(FxRate.effective_date)).all()
    return {(r.base, r.quote): Decimal(r.rate) for r in rows}


# --- what is due -------------------------------------------------------------------------

def ended_periods(tenant_id: str, livemode: bool, now: datetime) -> list[date]:
    return list(db.session.scalars(sa.select(PeriodRecord.start).where(
        PeriodRecord.tenant_id == tenant_id, PeriodRecord.livemode == livemode,
        PeriodRecord.end_at <= now, PeriodRecord.status != "closed").order_by(PeriodRecord.start)))


def close_ended_periods(tenant_id: str, livemode: bool, now: datetime) -> list[CloseReport]:
    return [close_period(tenant_id, livemode, start, now) for start in ended_periods(tenant_id, livemode, now)]


def parse_period_name(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise NotFound(f"No such period: {text!r} (periods are named by their start date, "
                       "e.g. 2026-10-25).") from exc



# --- PDF documents ------------------------------------------------------------------------

@dataclass
class RenderReport:
    rendered: int = 0
    failed: int = 0


def _address_lines(address: dict | None) -> list[str]:
    if not address:
        return []
    city = " ".join(filter(None, [address.get("city"), address.get("state"), address.get("postal_code")]))
    return [line for line in (address.get("line1"), address.get("line2"), city, address.get("country")) if line]


def invoice_document_for(invoice: Invoice) -> dict:
    from ..accounts.models import Provider
    from .document import DocumentLine, invoice_document

    tenant = db.session.get(Tenant, invoice.tenant_id)
    provider_ids = {l.provider_id for l in invoice.lines if l.provider_id}
    names = dict(db.session.execute(sa.select(Provider.id, Provider.name)
                                    .where(Provider.id.in_(provider_ids))).all()) if provider_ids else {}
    customer = invoice.customer
    issued = invoice.finalized_at or invoice.created_at
    return invoice_document(
        invoice={"number": invoice.number, "currency": invoice.currency,
                 "issue_date": issued.astimezone(ZoneInfo(tenant.timezone)).date(),
                 "period_start": invoice.period_start, "period_end": invoice.period_end,
                 "due_date": invoice.due_date, "subtotal": invoice.subtotal, "tax": invoice.tax,
                 "tax_rate": invoice.tax_rate, "total": invoice.total, "amount_due": invoice.amount_due,
                 "carried_credit": invoice.carried_credit},
        lines=[DocumentLine(l.kind, l.provider_id, l.description, l.service_start, l.service_end,
                            l.amount, l.original_amount, l.original_currency, l.fx_rate)
               for l in invoice.lines],
        provider_names=names,
        tenant={"legal_name": tenant.legal_name or tenant.name, "logo": tenant.logo,
                "address_lines": _address_lines(tenant.address)},
        customer={"name": customer.name or customer.external_id, "email": customer.email,
                  "external_id": customer.external_id, "address_lines": _address_lines(customer.address)},
        locale=tenant.locale,
    )


def render_pdfs(tenant_id: str, livemode: bool, renderer, storage, limit: int | None = None,
                only: list[str] | None = None) -> RenderReport:
    """Render the PDF of every finalized invoice that has none yet. A failure is recorded on the
    invoice and retried by the next run; it never blocks finalization. Once stored, a PDF is
    never replaced (the conditional update keeps the first one that was recorded)."""
    report = RenderReport()
    query = (sa.select(Invoice.id).where(Invoice.tenant_id == tenant_id, Invoice.livemode == livemode,
                                         Invoice.number.is_not(None), Invoice.pdf_sha256.is_(None))
             .order_by(Invoice.id))
    if only is not None:
        query = query.where(Invoice.id.in_(only))
    ids = db.session.scalars(query.limit(limit) if limit else query).all()
    for invoice_id in ids:
        invoice = db.session.get(Invoice, invoice_id)
        mode = "live" if livemode else "test"
        try:
            pdf = renderer.render(invoice.template, invoice_document_for(invoice))
            digest = hashlib.sha256(pdf).hexdigest()
            key = f"invoices/{tenant_id}/{mode}/{invoice_id}-{digest[:16]}.pdf"
            storage.put(key, pdf)
        except Exception as exc:  # renderer or storage trouble: record it, carry on, retry later
            log.exception("rendering or storing the PDF of invoice %s failed", invoice_id)
            invoice.pdf_error = f"{type(exc).__name__}: {exc}"[:500]
            db.session.commit()
            report.failed += 1
            continue
        db.session.execute(sa.update(Invoice).where(Invoice.id == invoice_id, Invoice.pdf_sha256.is_(None))
                           .values(pdf_path=key, pdf_sha256=digest, pdf_error=None)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        report.rendered += 1
    return report


def invoice_pdf(principal: Principal, invoice_id: str, storage) -> bytes:
    invoice = get_invoice(principal, invoice_id)
    if invoice.pdf_path is None:
        raise NotFound("This invoice has no PDF yet: drafts have none, and a finalized invoice's "
                       "PDF is rendered shortly after finalization.", code="pdf_not_ready")
    return storage.get(invoice.pdf_path)


def close_and_render(tenant_id: str, livemode: bool, start: date, now: datetime, renderer,
                     storage) -> CloseReport:
    """The close as operators run it (API, CLI): close, then render the finalized invoices' PDFs."""
    report = close_period(tenant_id, livemode, start, now)
    report.pdfs = render_pdfs(tenant_id, livemode, renderer, storage)
    return report


# --- everything that became due --------------------------------------------------------------

@dataclass
class DueWork:
    closes: list[CloseReport]
    finalized: int
    pdfs: RenderReport


def run_due_work(tenant_id: str, livemode: bool, now: datetime, renderer, storage) -> DueWork:
    """What the scheduler (and the test clock) run: close ended periods, finalize drafts whose
    review time is over, render missing PDFs."""
    closes = close_ended_periods(tenant_id, livemode, now)
    finalized = finalize_due_drafts(tenant_id, livemode, now)
    return DueWork(closes, finalized, render_pdfs(tenant_id, livemode, renderer, storage))
