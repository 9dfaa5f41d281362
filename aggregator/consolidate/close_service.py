"""The close: one consolidated invoice per customer with bills in an ended period."""
from __future__ import annotations

import gc
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from itertools import groupby
from typing import Callable, Sequence

import sqlalchemy as sa

from .. import money
from ..accounts.models import Customer, TenantSettings
from ..accounts.service import tenant_settings
from ..catalog.rating_service import rate_period
from ..db import db, locking, new_id, run
from ..errors import Conflict
from ..events.service import NewEvent
from ..faults import crash_point
from ..ingest.models import Bill
from ..metering.export_service import queue_export as queue_usage_export
from ..metering.rating_service import rate_usage
from ..periods import calendar as C
from ..periods import transitions as period_transitions
from ..periods.service import ensure_period_row, tenant_period
from ..revenue.shares import Share
from ..revenue.terms import RevenueShare
from ..revenue_sql import ShareGrouping
from . import parties, period_rates, transitions
from .document import INVOICE_TEMPLATE
from .facts import FinalizedInvoice
from .fx_service import rates_in_effect
from .invoices import BillTotal, CreditItem, InvoiceSummary, MissingRates, summarize_invoice, tax_rate_for
from .models import Credit, Invoice, InvoiceLine

log = logging.getLogger(__name__)

CHUNK_CUSTOMERS = 2000  # customers per transaction: bigger chunks revisit fewer bill pages (bench/README.md)


class PeriodNotEnded(Conflict):
    code = "period_not_ended"


@dataclass
class CloseReport:
    period: str
    closed: bool = False
    invoices_created: int = 0
    customers_waiting: int = 0
    missing_fx_rates: set[tuple[str, str]] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    pdfs: object = None  # the PDFs rendered after it, when the caller renders them

    @property
    def status(self) -> str:
        """The period's status after this run: closed, or still closing (customers wait)."""
        return "closed" if self.closed else "closing"


def close_period(tenant_id: str, livemode: bool, start: date, now: datetime,
                 chunk: int = CHUNK_CUSTOMERS,
                 on_chunk: Callable[[CloseReport], None] | None = None) -> CloseReport:
    """Build one invoice per customer with uncancelled bills in the period, as of the period's
    end: the invoices are created (and, under automatic review, finalized and numbered) at that
    instant and due on the period's charge day (or `payment_terms_days` after that day), whenever
    the close actually runs (`now`, the
    run's time on the tenant's clock, only dates the period's own closing_at and closed_at).

    The close writes one row per invoice (and its events) and nothing per bill: an invoice's
    bill lines are the bills of its customer and period that are not cancelled (derived on read,
    invoice_service.invoice_lines), and a bill is "invoiced" while that invoice exists
    (Bill.invoiced). This holds because the period is first marked closing, under the period row
    lock that intake and cancel take: no bill enters or leaves it afterwards (a void releases the
    bills of its own invoice only).

    Customers are invoiced in chunks of `chunk`, each in its own transaction, read in customer
    order along ix_bills_period and summed per currency in SQL (summarize_invoice). Exactly once
    and resumable: an invoice is unique per (tenant, mode, customer, period); each chunk holds
    the invoice sequence row lock, so concurrent closes of a tenant take turns per chunk and
    each skips the customers already invoiced. Running it again, concurrently or after a crash,
    continues where it stopped; a customer whose FX rate is missing waits for the next run.
    `on_chunk` is told the report so far after each chunk (a progress bar).
    """
    settings = tenant_settings(tenant_id, livemode)
    period = tenant_period(settings, start)
    if now < period.end_at:
        raise PeriodNotEnded(f"The period {start.isoformat()} ends at {period.end_at.isoformat()} "
                             "and cannot be closed before then.")
    ensure_period_row(tenant_id, livemode, period)
    if period_transitions.start_closing(tenant_id, livemode, start, now):
        rate_period(settings, period)  # subscriptions' fees become bills of the period, once
        rate_usage(settings, period)  # and their usage, once
    period_rates.record_rates(tenant_id, livemode, start)  # the rates its bills are invoiced on, once
    crash_point("close.rate.before_commit")
    db.session.commit()
    crash_point("close.start.after_commit")

    report = CloseReport(period.name)
    due_date = C.period_due_date(period, settings.charge_day, settings.payment_terms_days)
    context = _CloseContext(settings, period, due_date,
                            rates_in_effect(tenant_id, livemode, period.end),
                            period_rates.rates_of(tenant_id, livemode, start))
    after, waiting = "", 0
    while True:
        next_number = transitions.lock_sequence(tenant_id, livemode)
        upto = _chunk_end(context, after, chunk)
        if upto is None:
            db.session.rollback()
            break
        with _cyclic_gc_paused():
            waiting += _invoice_customers(context, after, upto, next_number, report)
            crash_point("close.chunk.before_commit")
            db.session.commit()
            crash_point("close.chunk.after_commit")
        after = upto
        if on_chunk:
            on_chunk(report)

    report.customers_waiting = waiting
    if waiting:
        period_transitions.wait(tenant_id, livemode, start, "missing_fx_rates" if report.missing_fx_rates else "errors")
        log.warning("close of %s waits: FX rates %s, errors %s", start, sorted(report.missing_fx_rates), report.errors)
    else:  # (a concurrent run may have closed it first: then this one announces nothing)
        if period_transitions.finish_closing(tenant_id, livemode, start, now, *_close_events(settings, period)):
            queue_usage_export(tenant_id, livemode, start, now)  # its usage export to storage, once
        report.closed = True
    crash_point("close.finish.before_commit")
    db.session.commit()
    crash_point("close.finish.after_commit")
    return report


@contextmanager
def _cyclic_gc_paused():
    """Python's cyclic garbage collector paused while a chunk is invoiced, then run over what the
    chunk left (its youngest generations). A chunk makes hundreds of thousands of short-lived
    objects (bill groups, shares, postings, rows), freed by reference counting as it goes; the
    collector would otherwise traverse them again and again, which cost about as much CPU as
    the rest of the close's Python (bench/close.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            gc.collect(1)


def customers_to_invoice(tenant_id: str, livemode: bool, start: date) -> int:
    """How many customers with bills in the period have no invoice for it yet (what a close of
    it has left to do)."""
    tenant_settings(tenant_id, livemode)
    bills, invoices = Bill.__table__.c, Invoice.__table__.c
    invoiced = sa.select(invoices.customer_id).where(
        invoices.tenant_id == tenant_id, invoices.livemode == livemode, invoices.period_start == start)
    return run(sa.select(sa.func.count(sa.distinct(bills.customer_id))).where(
        bills.tenant_id == tenant_id, bills.livemode == livemode, bills.period_start == start,
        bills.status == "pending", bills.customer_id.not_in(invoiced))).scalar()


@dataclass(frozen=True)
class _CloseContext:
    settings: TenantSettings
    period: C.Period
    due_date: date
    rates: dict[tuple[str, str], Decimal]
    provider_rates: dict[str, Decimal] = field(default_factory=dict)  # the period's recorded terms

    @property
    def auto(self) -> bool:
        """Invoices are finalized at the close (and their journals posted)."""
        return self.settings.invoice_review == "auto"

    @property
    def tenant_id(self) -> str:
        return self.settings.tenant_id

    @property
    def livemode(self) -> bool:
        return self.settings.livemode

    @property
    def as_of(self) -> datetime:
        """The instant the period's invoices are dated: its end."""
        return self.period.end_at


def _chunk_end(ctx: _CloseContext, after: str, chunk: int) -> str | None:
    """The last of the next `chunk` customers with bills in the period (an index-only scan)."""
    bills = Bill.__table__.c
    customers = (sa.select(bills.customer_id).distinct()
                 .where(bills.tenant_id == ctx.tenant_id, bills.livemode == ctx.livemode,
                        bills.period_start == ctx.period.start, bills.customer_id > after)
                 .order_by(bills.customer_id).limit(chunk).subquery())
    return run(sa.select(sa.func.max(customers.c.customer_id))).scalar()


def _invoice_customers(ctx: _CloseContext, after: str, upto: str, next_number: int,
                       report: CloseReport) -> int:
    """Invoice the customers in (after, upto] not invoiced yet -> how many must wait (missing
    rates or an amount beyond storage). The caller holds the sequence lock: `next_number` is
    the next invoice number, and no other close writes invoices until it commits."""
    invoices, bills, customers = Invoice.__table__.c, Bill.__table__.c, Customer.__table__.c
    done = set(run(sa.select(invoices.customer_id).where(
        invoices.tenant_id == ctx.tenant_id, invoices.livemode == ctx.livemode,
        invoices.period_start == ctx.period.start, invoices.customer_id > after,
        invoices.customer_id <= upto)).scalars())
    # bills are summed per customer and currency, those in another currency than the customer's
    # per amount too (each is converted and rounded on its own), as summarize_invoice takes them
    foreign_amount = sa.case((bills.currency == customers.currency, None), else_=bills.amount)
    rows = run(
        sa.select(bills.customer_id, bills.currency, sa.func.sum(bills.amount), sa.func.count())
        .join_from(Bill.__table__, Customer.__table__, customers.id == bills.customer_id)
        .where(bills.tenant_id == ctx.tenant_id, bills.livemode == ctx.livemode,
               bills.period_start == ctx.period.start, bills.status == "pending",
               bills.customer_id > after, bills.customer_id <= upto)
        .group_by(bills.customer_id, bills.currency, foreign_amount)
        .order_by(bills.customer_id)).all()
    terms_of = {row[0]: row[1:] for row in run(
        sa.select(customers.id, customers.currency, customers.tax_exempt, customers.tax_rate, customers.external_id,
                  customers.name, customers.address, customers.tax_ids,
                  sa.and_(customers.stripe_customer_id.is_not(None), customers.stripe_payment_method.is_not(None)))
        .where(customers.tenant_id == ctx.tenant_id, customers.livemode == ctx.livemode,
               customers.id > after, customers.id <= upto))}
    credits: dict[str, list[CreditItem]] = {}
    for row in run(locking(
            sa.select(Credit.id, Credit.customer_id, Credit.amount, Credit.currency, Credit.kind, Invoice.number)
            .join(Invoice, Invoice.id == Credit.source_invoice_id)
            .where(Credit.tenant_id == ctx.tenant_id, Credit.livemode == ctx.livemode,
                   Credit.customer_id > after, Credit.customer_id <= upto,
                   Credit.applied_invoice_id.is_(None))
            .order_by(Credit.id), of=Credit)).all():
        credits.setdefault(row.customer_id, []).append(CreditItem(
            row.id, row.amount, row.currency,
            f"Overpayment of invoice {row.number}" if row.kind == "overpayment"
            else f"Credit carried from invoice {row.number or row.id}"))

    default_rate = money.parse_rate(ctx.settings.default_tax_rate)
    summaries: list[tuple[str, InvoiceSummary]] = []
    converted: dict[tuple[str, str], list[int]] = {}  # (bill currency, invoice currency) -> [amount, invoiced]
    external_ids: dict[str, str] = {}
    buyers: dict[str, tuple[str, dict]] = {}  # customer id -> (tax treatment, the buyer as invoices name it)
    waiting = 0
    for customer_id, group in groupby(rows, key=lambda r: r[0]):
        if customer_id in done:
            continue
        group = list(group)
        currency, exempt, own_rate, external_ids[customer_id], name, address, tax_ids, card = terms_of[customer_id]
        treatment, rate = parties.treatment(
            ctx.settings, address, exempt, tax_ids,
            tax_rate_for(default_rate, money.parse_rate(own_rate) if own_rate else None, exempt))
        buyers[customer_id] = treatment, parties.buyer(name, external_ids[customer_id], address, tax_ids,
                                                             bool(card))
        try:
            totals = [BillTotal(r[1], int(r[2]), r[3]) for r in group]  # SUM: numeric
            summaries.append((customer_id, summarize_invoice(currency, rate, totals, credits.get(customer_id, ()),
                                                             ctx.rates)))
            for bill in totals:  # converted, each line on its own, as summarize_invoice did
                if bill.currency != currency:
                    pair = converted.setdefault((bill.currency, currency), [0, 0])
                    pair[0] += bill.amount
                    pair[1] += money.convert(bill.amount // bill.count, bill.currency, currency,
                                             ctx.rates[(bill.currency, currency)]) * bill.count
        except MissingRates as missing:
            report.missing_fx_rates |= missing.pairs
            waiting += 1
        except money.MoneyError as exc:  # e.g. a conversion beyond any storable amount
            report.errors.append(f"customer {customer_id}: {exc}")
            waiting += 1
    if summaries:
        invoiced = {customer_id for customer_id, _ in summaries}
        shares = _chunk_shares(ctx, after, upto, set(terms_of) - invoiced) if ctx.auto else ()
        _store_invoices(ctx, summaries, external_ids, next_number, shares,
                        {pair: (amount, invoiced) for pair, (amount, invoiced) in converted.items()}, buyers)
        report.invoices_created += len(summaries)
    return waiting


def _chunk_shares(ctx: _CloseContext, after: str, upto: str, not_invoiced: set[str]) -> list[Share]:
    """The providers' shares of the chunk's invoices (its journal's), summed per provider and bill
    currency, with no row per bill nor per invoice: the database groups the chunk's bills for
    their shares (revenue_sql.ShareGrouping) and each group is split at once, exactly as bill by
    bill, by its provider's terms recorded for the period."""
    bills = Bill.__table__.c
    grouping = ShareGrouping(Bill.__table__, {(p,): RevenueShare(rate) for p, rate in ctx.provider_rates.items()},
                             own_fee=bills.platform_fee)
    query = grouping.select(sa.select().where(
        bills.tenant_id == ctx.tenant_id, bills.livemode == ctx.livemode, bills.period_start == ctx.period.start,
        bills.status == "pending", bills.customer_id > after, bills.customer_id <= upto))
    if not_invoiced:
        query = query.where(bills.customer_id.not_in(sorted(not_invoiced)))
    sums: dict[tuple[str, str], list[int]] = {}
    for group in grouping.groups(run(query)):
        total = sums.setdefault((group.provider_id, group.currency), [0, 0])
        total[0] += group.split.net
        total[1] += group.split.fee
    return [Share(p, c, net, fee, net + fee) for (p, c), (net, fee) in sorted(sums.items())]


def _store_invoices(ctx: _CloseContext, summaries: list[tuple[str, InvoiceSummary]],
                    external_ids: dict[str, str], first: int, shares: Sequence[Share],
                    converted: dict[tuple[str, str], tuple[int, int]], buyers: dict[str, tuple[str, dict]]) -> None:
    """One invoice per customer (see transitions.create_invoices), then the credits. A duplicate
    invoice could only come from a writer that ignored the sequence lock: the unique constraint
    refuses it and the chunk rolls back. Each keeps its tax treatment (its tax depends on it)
    and, finalized at once, its parties: the seller and `buyers`' buyer as they are now."""
    invoice_rows, credit_rows, applied, finalized = [], [], [], []
    seller = parties.seller(ctx.settings) if ctx.auto else None
    for customer_id, s in summaries:
        treatment, buyer = buyers[customer_id]
        invoice_id = new_id("inv")
        if ctx.auto:
            finalized.append(FinalizedInvoice(
                invoice_id, customer_id, s.currency, s.totals.total, s.totals.tax,
                -sum(line.amount for line in s.credit_lines), s.totals.carried_credit, ()))
        invoice_rows.append({
            "id": invoice_id, "tenant_id": ctx.tenant_id, "livemode": ctx.livemode,
            "customer_id": customer_id, "period_start": ctx.period.start, "period_end": ctx.period.end,
            "currency": s.currency, "tax_rate": money.format_rate(s.tax_rate), "subtotal": s.totals.subtotal,
            "tax": s.totals.tax, "total": s.totals.total, "amount_due": s.totals.total,
            "carried_credit": s.totals.carried_credit, "due_date": ctx.due_date, "template": INVOICE_TEMPLATE,
            "fx_rates": _rates_text(s.rates), "tax_treatment": treatment,
            "parties": {"seller": seller, "buyer": buyer} if ctx.auto else None,
        })
        for position, line in enumerate(s.credit_lines):
            applied.append({"invoice_id": invoice_id, "position": position, "kind": "credit",
                            "credit_id": line.credit_id, "description": line.description,
                            "amount": line.amount})
        if s.totals.carried_credit:
            credit_rows.append({
                "id": new_id("cred"), "tenant_id": ctx.tenant_id, "livemode": ctx.livemode,
                "customer_id": customer_id, "amount": s.totals.carried_credit,
                "currency": s.currency, "source_invoice_id": invoice_id, "created_at": ctx.as_of})
    transitions.create_invoices(ctx.settings, invoice_rows, external_ids, ctx.as_of, first, finalized, shares,
                                converted)
    if applied:  # credit lines are stored (void releases the credits they applied)
        run(sa.insert(InvoiceLine.__table__), applied)
        run(sa.update(Credit.__table__).where(Credit.id == sa.bindparam("credit"))
            .values(applied_invoice_id=sa.bindparam("invoice")),
            [{"credit": line["credit_id"], "invoice": line["invoice_id"]} for line in applied])
    if credit_rows:
        run(sa.insert(Credit.__table__), credit_rows)


def _rates_text(rates: dict[str, Decimal]) -> str | None:
    return json.dumps({c: money.format_rate(r) for c, r in sorted(rates.items())}) if rates else None


def _close_events(settings: TenantSettings, period: C.Period) -> tuple[NewEvent, list[NewEvent]]:
    """`period.closed` (the period, with its invoices' count and totals per currency) and, per
    provider, `bills.invoiced`: how many of its bills were invoiced and their sums, per currency
    (one event per provider, never one per bill). Every pending bill of a closed period is
    invoiced: the close made an invoice for each of its customers."""
    invoices, bills = Invoice.__table__.c, Bill.__table__.c
    totals = run(sa.select(invoices.currency, sa.func.count(), sa.func.sum(invoices.total),
                           sa.func.sum(invoices.amount_due))
                 .where(invoices.tenant_id == settings.tenant_id, invoices.livemode == settings.livemode,
                        invoices.period_start == period.start, invoices.status != "void")
                 .group_by(invoices.currency).order_by(invoices.currency)).all()
    period_data = {"object": "period", "start": period.start.isoformat(), "end": period.end.isoformat(),
                   "start_at": period.start_at.isoformat(), "end_at": period.end_at.isoformat(),
                   "livemode": settings.livemode}
    closed = NewEvent("period.closed", None, {"object": {
        **period_data, "status": "closed", "invoice_count": sum(r[1] for r in totals),
        "totals": [{"currency": c, "invoices": n, "total": money.format_amount(int(t), c),
                    "amount_due": money.format_amount(int(d), c)} for c, n, t, d in totals]}})
    shared = sa.func.sum(sa.case((bills.revenue_share, bills.amount), else_=0))
    by_provider = run(sa.select(bills.provider_id, bills.currency, sa.func.count(), sa.func.sum(bills.amount), shared)
                      .where(bills.tenant_id == settings.tenant_id, bills.livemode == settings.livemode,
                             bills.period_start == period.start, bills.status == "pending")
                      .group_by(bills.provider_id, bills.currency)
                      .order_by(bills.provider_id, bills.currency)).all()
    invoiced = []
    for provider_id, group in groupby(by_provider, key=lambda r: r[0]):
        group = list(group)
        invoiced.append(NewEvent("bills.invoiced", None, {"object": {
            "object": "bills_invoiced", "provider": provider_id, "period": period_data,
            "bill_count": sum(r[2] for r in group),
            "currencies": [{"currency": c, "bill_count": n, "amount": money.format_amount(int(a), c),
                            "revenue_share_amount": money.format_amount(int(s), c),
                            "pass_through_amount": money.format_amount(int(a) - int(s), c)}
                           for _, c, n, a, s in group]}}, provider_id=provider_id))
    return closed, invoiced
