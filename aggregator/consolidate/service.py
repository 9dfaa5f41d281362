"""Period and invoice use cases. Each owns its transaction and is handed `now`."""
from __future__ import annotations

import functools
import hashlib
import json
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
from ..ingest.models import Bill
from ..pagination import Page, paginate
from . import periods as P
from .document import INVOICE_TEMPLATE
from .invoices import (BillItem, BillTotal, CreditItem, InvoiceSummary, Line, MissingRates, build_invoice,
                       summarize_invoice, tax_rate_for)
from .models import (INVOICE_STATES, PERIOD_STATES, Credit, FxRate, Invoice, InvoiceLine,
                     InvoiceSequence, PeriodRecord)

log = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 2000  # customers per transaction: bigger chunks revisit fewer bill pages (bench/README.md)


class PeriodNotEnded(Conflict):
    code = "period_not_ended"


class InvoiceNotEditable(Conflict):
    code = "invoice_not_editable"


def tenant_period(tenant: Tenant, start: date) -> P.Period:
    """The tenant's period starting on `start`; NotFound if none does, or if it ended before the
    tenant existed (it can hold no bill, and recording it would fix the tenant's calendar)."""
    try:
        period = P.period_starting(start, tenant.period_anchor_day, tenant.timezone)
    except ValueError as exc:
        raise NotFound(f"No period starts on {start.isoformat()}: periods start on day "
                       f"{tenant.period_anchor_day} of the month.") from exc
    if period.end_at <= tenant.created_at:
        raise NotFound(f"No period starting on {start.isoformat()}: it ended before the tenant was created.")
    return period


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
        status = period_status_locked(tenant_id, livemode, period.start)
        if status is None:
            _ensure_period_row(tenant_id, livemode, period)
            status = period_status_locked(tenant_id, livemode, period.start)
        if status == "open":
            return period
        period = P.next_period(period, anchor_day, tz)


def period_status_locked(tenant_id: str, livemode: bool, start: date) -> str | None:
    """The period's status, share-locked (PostgreSQL) until the transaction ends: the close
    cannot mark it closing meanwhile. None when nothing has happened in the period yet."""
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

    The close writes one row per invoice and nothing per bill: an invoice's bill lines are the
    bills of its customer and period that are not cancelled (derived on read, invoice_lines),
    and a bill is "invoiced" while that invoice exists (Bill.invoiced). This holds because the
    period is first marked closing, under the period row lock that intake and cancel take: no
    bill enters or leaves it afterwards (a void releases the bills of its own invoice only).

    Customers are invoiced in chunks of `chunk`, each in its own transaction, read in customer
    order along ix_bills_period and summed per currency in SQL (summarize_invoice). Exactly once
    and resumable: an invoice is unique per (tenant, mode, customer, period); each chunk holds
    the invoice sequence row lock, so concurrent closes of a tenant take turns per chunk and
    each skips the customers already invoiced. Running it again, concurrently or after a crash,
    continues where it stopped; a customer whose FX rate is missing waits for the next run.
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

    report = CloseReport(period.name)
    closed_on = now.astimezone(ZoneInfo(tenant.timezone)).date()
    context = _CloseContext(tenant, livemode, period, P.due_date(closed_on, tenant.charge_day),
                            rates_in_effect(tenant_id, livemode, period.end), now,
                            now.astimezone(ZoneInfo(tenant.timezone)).year)
    after, waiting = "", 0
    while True:
        next_number = _lock_sequence(tenant_id, livemode)
        upto = _chunk_end(context, after, chunk)
        if upto is None:
            db.session.rollback()
            break
        waiting += _invoice_customers(context, after, upto, next_number, report)
        db.session.commit()
        after = upto

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
    year: int  # of the invoice numbers


def _lock_sequence(tenant_id: str, livemode: bool) -> int:
    """Lock the tenant's invoice sequence row until the transaction ends (on SQLite, the
    database write lock) -> the next number."""
    db.session.execute(dialect_insert(InvoiceSequence.__table__).values(  # a write: SQLite's lock too
        tenant_id=tenant_id, livemode=livemode, next_number=1,
    ).on_conflict_do_nothing(index_elements=["tenant_id", "livemode"]))
    return db.session.scalar(locking(sa.select(InvoiceSequence.next_number).where(
        InvoiceSequence.tenant_id == tenant_id, InvoiceSequence.livemode == livemode)))


def _chunk_end(ctx: _CloseContext, after: str, chunk: int) -> str | None:
    """The last of the next `chunk` customers with bills in the period (an index-only scan)."""
    bills = Bill.__table__.c
    customers = (sa.select(bills.customer_id).distinct()
                 .where(bills.tenant_id == ctx.tenant.id, bills.livemode == ctx.livemode,
                        bills.period_start == ctx.period.start, bills.customer_id > after)
                 .order_by(bills.customer_id).limit(chunk).subquery())
    return run(sa.select(sa.func.max(customers.c.customer_id))).scalar()


def _invoice_customers(ctx: _CloseContext, after: str, upto: str, next_number: int,
                       report: CloseReport) -> int:
    """Invoice the customers in (after, upto] not invoiced yet -> how many must wait (missing
    rates or an amount beyond storage). The caller holds the sequence lock: `next_number` is
    the next invoice number, and no other close writes invoices until it commits."""
    tenant = ctx.tenant
    invoices, bills, customers = Invoice.__table__.c, Bill.__table__.c, Customer.__table__.c
    done = set(run(sa.select(invoices.customer_id).where(
        invoices.tenant_id == tenant.id, invoices.livemode == ctx.livemode,
        invoices.period_start == ctx.period.start, invoices.customer_id > after,
        invoices.customer_id <= upto)).scalars())
    foreign_amount = sa.case((bills.currency == customers.currency, None), else_=bills.amount)
    rows = run(
        sa.select(bills.customer_id, customers.currency, customers.tax_exempt, customers.tax_rate,
                  bills.currency, sa.func.sum(bills.amount), sa.func.count())
        .join_from(Bill.__table__, Customer.__table__, customers.id == bills.customer_id)
        .where(bills.tenant_id == tenant.id, bills.livemode == ctx.livemode,
               bills.period_start == ctx.period.start, bills.status == "pending",
               bills.customer_id > after, bills.customer_id <= upto)
        .group_by(bills.customer_id, customers.currency, customers.tax_exempt, customers.tax_rate,
                  bills.currency, foreign_amount)
        .order_by(bills.customer_id)).all()
    credits: dict[str, list[CreditItem]] = {}
    for row in run(locking(
            sa.select(Credit.id, Credit.customer_id, Credit.amount, Credit.currency, Invoice.number)
            .join(Invoice, Invoice.id == Credit.source_invoice_id)
            .where(Credit.tenant_id == tenant.id, Credit.livemode == ctx.livemode,
                   Credit.customer_id > after, Credit.customer_id <= upto,
                   Credit.applied_invoice_id.is_(None))
            .order_by(Credit.id), of=Credit)).all():
        credits.setdefault(row.customer_id, []).append(CreditItem(
            row.id, row.amount, row.currency, f"Credit carried from invoice {row.number or row.id}"))

    default_rate = money.parse_rate(tenant.default_tax_rate)
    summaries: list[tuple[str, InvoiceSummary]] = []
    waiting = 0
    for customer_id, group in groupby(rows, key=lambda r: r[0]):
        if customer_id in done:
            continue
        group = list(group)
        _, currency, exempt, own_rate, *_ = group[0]
        rate = tax_rate_for(default_rate, money.parse_rate(own_rate) if own_rate else None, exempt)
        try:
            summaries.append((customer_id, summarize_invoice(
                currency, rate, [BillTotal(r[4], int(r[5]), r[6]) for r in group],  # SUM: numeric
                credits.get(customer_id, ()), ctx.rates)))
        except MissingRates as missing:
            report.missing_fx_rates |= missing.pairs
            waiting += 1
        except money.MoneyError as exc:  # e.g. a conversion beyond any storable amount
            report.errors.append(f"customer {customer_id}: {exc}")
            waiting += 1
    if summaries:
        _store_invoices(ctx, summaries, next_number)
        report.invoices_created += len(summaries)
    return waiting


def _store_invoices(ctx: _CloseContext, summaries: list[tuple[str, InvoiceSummary]], first: int) -> None:
    """One invoice row per customer (COPY on PostgreSQL), finalized at once under automatic
    review with the numbers from `first` on (the caller holds the sequence row lock, so they
    are gapless); then the credits. A duplicate invoice could only come from a writer that
    ignored the sequence lock: the unique constraint refuses it and the chunk rolls back."""
    tenant, period = ctx.tenant, ctx.period
    auto = tenant.invoice_review == "auto"
    invoice_rows, credit_rows, applied = [], [], []
    for offset, (customer_id, s) in enumerate(summaries):
        invoice_id = new_id("inv")
        invoice_rows.append({
            "id": invoice_id, "tenant_id": tenant.id, "livemode": ctx.livemode,
            "customer_id": customer_id, "period_start": period.start, "period_end": period.end,
            "number": _format_number(tenant.invoice_prefix, ctx.year, first + offset) if auto else None,
            "status": "open" if auto else "draft", "currency": s.currency,
            "tax_rate": money.format_rate(s.tax_rate), "subtotal": s.totals.subtotal, "tax": s.totals.tax,
            "total": s.totals.total, "amount_due": s.totals.total, "carried_credit": s.totals.carried_credit,
            "due_date": ctx.due_date, "created_at": ctx.now, "finalized_at": ctx.now if auto else None,
            "template": INVOICE_TEMPLATE, "fx_rates": _rates_text(s.rates),
        })
        for position, line in enumerate(s.credit_lines):
            applied.append({"invoice_id": invoice_id, "position": position, "kind": "credit",
                            "credit_id": line.credit_id, "description": line.description,
                            "amount": line.amount})
        if s.totals.carried_credit:
            credit_rows.append({
                "id": new_id("cred"), "tenant_id": tenant.id, "livemode": ctx.livemode,
                "customer_id": customer_id, "amount": s.totals.carried_credit,
                "currency": s.currency, "source_invoice_id": invoice_id, "created_at": ctx.now})
    bulk_insert(Invoice.__table__, invoice_rows)
    if auto:
        run(sa.update(InvoiceSequence.__table__)
            .where(InvoiceSequence.tenant_id == tenant.id, InvoiceSequence.livemode == ctx.livemode)
            .values(next_number=first + len(invoice_rows)))
    if applied:  # credit lines are stored (void releases the credits they applied)
        run(sa.insert(InvoiceLine.__table__), applied)
        run(sa.update(Credit.__table__).where(Credit.id == sa.bindparam("credit"))
            .values(applied_invoice_id=sa.bindparam("invoice")),
            [{"credit": line["credit_id"], "invoice": line["invoice_id"]} for line in applied])
    if credit_rows:
        run(sa.insert(Credit.__table__), credit_rows)


def _rate_text(rate: Decimal | None) -> str | None:
    return None if rate is None else money.format_rate(rate)


def _rates_text(rates: dict[str, Decimal]) -> str | None:
    return json.dumps({c: money.format_rate(r) for c, r in sorted(rates.items())}) if rates else None


def _recorded_rates(invoice: Invoice) -> dict[tuple[str, str], Decimal]:
    """The rates the close converted the invoice's bills at, as build_invoice takes them."""
    if not invoice.fx_rates:
        return {}
    return {(base, invoice.currency): Decimal(rate) for base, rate in json.loads(invoice.fx_rates).items()}


# --- finalization and numbering -------------------------------------------------------------

def _format_number(prefix: str, year: int, sequence: int) -> str:
    return f"{prefix}-{year}-{sequence:06d}"


def _number_invoices(tenant: Tenant, livemode: bool, invoice_ids: list[str], now: datetime) -> list[str]:
    """draft -> open for those of these invoices still draft, numbering them from the gapless
    sequence. The drafts and the sequence row stay locked until the caller's transaction
    commits; a rollback returns the numbers. -> the ids that were finalized here."""
    if not invoice_ids:
        return []
    first = _lock_sequence(tenant.id, livemode)
    invoices = Invoice.__table__.c
    drafts = run(locking(sa.select(invoices.id).where(invoices.id.in_(invoice_ids), invoices.status == "draft")
                         .order_by(invoices.id))).scalars().all()
    if not drafts:
        return []
    run(sa.update(InvoiceSequence.__table__)
        .where(InvoiceSequence.tenant_id == tenant.id, InvoiceSequence.livemode == livemode)
        .values(next_number=first + len(drafts)))
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


def _stored_line(row: InvoiceLine, currency: str) -> Line:
    return Line(row.kind, row.amount, currency, row.description, row.bill_id, row.provider_id, row.credit_id,
                row.service_start, row.service_end, row.original_amount, row.original_currency,
                Decimal(row.fx_rate) if row.fx_rate is not None else None)


def invoice_lines(invoices: list[Invoice]) -> dict[str, list[Line]]:
    """invoice id -> its lines. A void invoice's lines are its stored snapshot. Otherwise the
    bill lines are the bills of its customer and period that are not cancelled, built by the
    function that computed its totals at the close (build_invoice, with the recorded rates),
    followed by its stored credit lines. One query per period for all the invoices given."""
    lines = {i.id: [] for i in invoices}
    live = [i for i in invoices if i.status != "void"]
    bills = Bill.__table__.c
    for (tenant_id, livemode, start), group in groupby(
            sorted(live, key=lambda i: (i.tenant_id, i.livemode, i.period_start)),
            key=lambda i: (i.tenant_id, i.livemode, i.period_start)):
        by_customer = {i.customer_id: i for i in group}
        items: dict[str, list[BillItem]] = {c: [] for c in by_customer}
        for r in run(sa.select(bills.customer_id, bills.id, bills.provider_id, bills.amount, bills.currency,
                               bills.description, bills.service_period_start, bills.service_period_end)
                     .where(bills.tenant_id == tenant_id, bills.livemode == livemode,
                            bills.period_start == start, bills.status == "pending",
                            bills.customer_id.in_(list(by_customer)))):
            items[r[0]].append(BillItem(*r[1:]))
        for customer_id, invoice in by_customer.items():
            draft = build_invoice(invoice.currency, Decimal(invoice.tax_rate), items[customer_id], [],
                                  _recorded_rates(invoice))
            lines[invoice.id] = list(draft.lines)
    for invoice in invoices:
        lines[invoice.id] += [_stored_line(l, invoice.currency) for l in invoice.stored_lines
                              if invoice.status == "void" or l.kind == "credit"]
    return lines


def with_lines(invoices: list[Invoice]) -> list[Invoice]:
    """Attach each invoice's lines as `invoice.lines` (not a column: see invoice_lines)."""
    lines = invoice_lines(invoices)
    for invoice in invoices:
        invoice.lines = lines[invoice.id]
    return invoices


def get_invoice(principal: Principal, invoice_id: str) -> Invoice:
    """The invoice with its lines."""
    invoice = _find_invoice(principal, invoice_id)
    return with_lines([invoice])[0]


def _find_invoice(principal: Principal, invoice_id: str) -> Invoice:
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
    page = paginate(query, Invoice.id, limit, starting_after)
    return Page(with_lines(list(page.data)), page.has_more)


def finalize_invoice(principal: Principal, invoice_id: str, now: datetime) -> Invoice:
    """draft -> open, with the next number. Finalizing an open invoice again is a no-op."""
    invoice = _find_invoice(principal, invoice_id)
    if invoice.status != "open":
        INVOICE_STATES.check(invoice.status, "open")
        tenant = db.session.get(Tenant, principal.tenant_id)
        _number_invoices(tenant, principal.livemode, [invoice.id], now)
    db.session.commit()
    db.session.refresh(invoice)
    if invoice.status != "open":  # voided meanwhile by another request
        INVOICE_STATES.check(invoice.status, "open")
    return with_lines([invoice])[0]


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
    """Void a draft, or an open invoice with a reason. Its lines are frozen (stored as rows), then
    its bills are released: pending in the period open now, so the provider can cancel or re-bill
    them. Credits it applied are released; the credit it carried forward, if not yet used, is
    withdrawn."""
    write_lock()
    invoice = db.session.scalars(locking(
        _scoped_invoices(principal).where(Invoice.id == invoice_id), of=Invoice)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    if invoice.status == "void":
        return with_lines([invoice])[0]
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
    snapshot = invoice_lines([invoice])[invoice.id]
    run(sa.delete(InvoiceLine.__table__).where(InvoiceLine.invoice_id == invoice.id))
    if snapshot:
        run(sa.insert(InvoiceLine.__table__), [{
            "invoice_id": invoice.id, "position": position, "kind": l.kind, "bill_id": l.bill_id,
            "provider_id": l.provider_id, "credit_id": l.credit_id, "description": l.description,
            "service_start": l.service_start, "service_end": l.service_end, "amount": l.amount,
            "original_amount": l.original_amount, "original_currency": l.original_currency,
            "fx_rate": _rate_text(l.fx_rate),
        } for position, l in enumerate(snapshot)])
    db.session.execute(
        sa.update(Bill).where(Bill.tenant_id == invoice.tenant_id, Bill.livemode == invoice.livemode,
                              Bill.period_start == invoice.period_start, Bill.customer_id == invoice.customer_id,
                              Bill.status == "pending")
        .values(period_start=period.start)
        .execution_options(synchronize_session=False))
    db.session.execute(sa.update(Credit).where(Credit.applied_invoice_id == invoice.id)
                       .values(applied_invoice_id=None))
    invoice.status, invoice.voided_at, invoice.void_reason = "void", now, reason
    db.session.commit()
    db.session.expire(invoice, ["stored_lines"])
    return with_lines([invoice])[0]


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


@dataclass(frozen=True)
class PeriodView:
    """A period as operators see it: its bounds, its state, and whether it has ended on the
    tenant's clock (an ended period still open is waiting for its close)."""

    start: date
    end: date
    start_at: datetime
    end_at: datetime
    status: str
    ended: bool
    livemode: bool
    closing_at: datetime | None = None
    closed_at: datetime | None = None


def _period_view(record: PeriodRecord, now: datetime) -> PeriodView:
    return PeriodView(record.start, record.end, record.start_at, record.end_at, record.status,
                      now >= record.end_at, record.livemode, record.closing_at, record.closed_at)


def list_periods(principal: Principal, now: datetime, limit: int, starting_after: date | None = None,
                 status: str | None = None) -> Page:
    """The periods in which something has happened (a bill, a close), newest first; paginated by
    period name (`starting_after` = a period's start date)."""
    query = sa.select(PeriodRecord).where(PeriodRecord.tenant_id == principal.tenant_id,
                                          PeriodRecord.livemode == principal.livemode)
    if status:
        query = query.where(PeriodRecord.status == status)
    page = paginate(query, PeriodRecord.start, limit, starting_after)
    return Page([_period_view(r, now) for r in page.data], page.has_more)


def get_period(principal: Principal, start: date, now: datetime) -> PeriodView:
    """The tenant's period starting on `start`: recorded, or (nothing has happened in it yet)
    open, as its calendar defines it."""
    record = db.session.get(PeriodRecord, (principal.tenant_id, principal.livemode, start))
    if record is not None:
        return _period_view(record, now)
    period = tenant_period(db.session.get(Tenant, principal.tenant_id), start)
    return PeriodView(period.start, period.end, period.start_at, period.end_at, "open",
                      now >= period.end_at, principal.livemode)


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
    lines = invoice_lines([invoice])[invoice.id]
    provider_ids = {l.provider_id for l in lines if l.provider_id}
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
                            l.amount, l.original_amount, l.original_currency, _rate_text(l.fx_rate))
               for l in lines],
        provider_names=names,
        tenant={"legal_name": tenant.legal_name or tenant.name, "logo": tenant.logo,
                "address_lines": _address_lines(tenant.address)},
        customer={"name": customer.name or customer.external_id, "email": customer.email,
                  "external_id": customer.external_id, "address_lines": _address_lines(customer.address)},
        locale=tenant.locale,
    )


def render_pdfs(tenant_id: str, livemode: bool, renderer, storage, limit: int | None = None,
                only: list[str] | None = None, processes: int = 1) -> RenderReport:
    """Render the PDF of every finalized invoice that has none yet. A failure is recorded on the
    invoice and retried by the next run; it never blocks finalization. Once stored, a PDF is
    never replaced (the conditional update keeps the first one that was recorded).

    Invoices go to the renderer in batches (`render_many`): with `processes` > 1 each batch is
    rendered on that many cores; documents are built and results stored here, one batch in
    memory at a time."""
    report = RenderReport()
    query = (sa.select(Invoice.id).where(Invoice.tenant_id == tenant_id, Invoice.livemode == livemode,
                                         Invoice.number.is_not(None), Invoice.pdf_sha256.is_(None))
             .order_by(Invoice.id))
    if only is not None:
        query = query.where(Invoice.id.in_(only))
    ids = db.session.scalars(query.limit(limit) if limit else query).all()
    batch = RENDER_BATCH_PER_PROCESS * max(1, processes)
    for first in range(0, len(ids), batch):
        invoices = [db.session.get(Invoice, invoice_id) for invoice_id in ids[first:first + batch]]
        jobs, built = [], []
        for invoice in invoices:
            try:
                jobs.append((invoice.template, invoice_document_for(invoice)))
                built.append(invoice)
            except Exception as exc:  # a document that cannot be built: recorded like a failed render
                _record_pdf_failure(invoice, exc, report)
        for invoice, result in zip(built, renderer.render_many(jobs, processes=processes)):
            _store_pdf(tenant_id, livemode, invoice, result, storage, report)
    return report


RENDER_BATCH_PER_PROCESS = 100  # invoices per worker process per batch


def _store_pdf(tenant_id: str, livemode: bool, invoice: Invoice, result: bytes | Exception, storage,
               report: RenderReport) -> None:
    if isinstance(result, Exception):
        _record_pdf_failure(invoice, result, report)
        return
    digest = hashlib.sha256(result).hexdigest()
    key = f"invoices/{tenant_id}/{'live' if livemode else 'test'}/{invoice.id}-{digest[:16]}.pdf"
    try:
        storage.put(key, result)
    except Exception as exc:  # storage trouble: record it, carry on, retry later
        _record_pdf_failure(invoice, exc, report)
        return
    db.session.execute(sa.update(Invoice).where(Invoice.id == invoice.id, Invoice.pdf_sha256.is_(None))
                       .values(pdf_path=key, pdf_sha256=digest, pdf_error=None)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    report.rendered += 1


def _record_pdf_failure(invoice: Invoice, exc: BaseException, report: RenderReport) -> None:
    log.error("rendering or storing the PDF of invoice %s failed: %s: %s", invoice.id, type(exc).__name__, exc,
              exc_info=exc)
    invoice.pdf_error = f"{type(exc).__name__}: {exc}"[:500]
    db.session.commit()
    report.failed += 1


def invoice_pdf(principal: Principal, invoice_id: str, storage) -> bytes:
    invoice = _find_invoice(principal, invoice_id)
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
