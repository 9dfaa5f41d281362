"""Finance's payout review report for one invoicing period: what each provider is paid by the
payout runs of the period (PayoutRun.period_start == period), and a reconciliation of that money
with what was collected, per currency. It reads payouts in any status (pending review, approved,
paid, failed, canceled): a canceled or failed payout still paid its lines out of the period's
money; its amount is brought into a later payout, which is that period's business.

Rows. One row per provider and currency: the sums of its payouts of the period's runs (usually
one run), `bills` their line counts; `status` the payouts' status, or 'mixed' when they differ.

Reconciliation, per currency. The money is the period's runs' payout sources (each payment,
refund (negative) and settled invoice paid out in one of them, clamped to what its invoice
could collect): `collected` = Σ source amounts. Each source is attributed to its invoice's
parts exactly as build_payouts paid it out (collections.source_lines: shares.payment_lines of
its amount after what its invoice had collected before), so

    collected + converted_in == tax + provider_payouts + platform_revenue + credits_applied
                                + credits_carried + fx_difference + converted_out

where, over the sources' lines: tax is the tax part (the platform's, owed to the tax office);
provider_payouts Σ the bills' nets and platform_revenue Σ their fees, both in the bill's own
currency (a refund's lines are negative: its clawback and the fee given back); credits_applied
the carried customer credits applied (<= 0, the platform's); credits_carried the credit a
settled invoice carries to the customer's next one (>= 0). A bill converted onto an invoice in
another currency leaves the invoice currency as converted_out = money.convert(its collected
amount in its own currency, at its invoice's rate) and arrives in its own currency as
converted_in; the rounding between the two is the platform's fx_difference (shares rule 5,
shares.fx_difference). `balanced` holds when that identity is exact in the currency *and* its
provider_payouts equal Σ net of the period's payouts in the currency (the payouts table agrees
with the money), which build_payouts guarantees; False means something wrote payouts otherwise.

Outstanding. The period's finalized invoices not fully collected: an open one's amount still due
(uncollected) and an uncollectible one's (uncollectible), listed with their totals per currency.
Those are money no provider has been paid for: it is in a later period's runs if it comes.

The figures are pure functions of plain values (provider_rows, currency_totals, reconcile,
report_csv), tested without a database; payout_report reads them, report_pdf renders them.
"""
from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Iterable, Mapping, Sequence

import sqlalchemy as sa

from .. import csv_cells, money
from ..accounts.models import Customer, Provider
from ..accounts.service import tenant_settings
from ..auth import Principal
from ..consolidate.models import Invoice
from ..db import db, run
from ..errors import InvalidInput, NotFound
from ..ingest.models import Bill
from ..periods import calendar as C
from ..revenue import shares
from ..revenue.parts import InvoiceParts
from . import arithmetic
from .collections import source_lines
from .models import Payout, PayoutRun, PayoutSource

TEMPLATE = "payout_report.html"


@dataclass(frozen=True, kw_only=True)
class Figures:
    """A payout's amounts (payouts.models.Payout: the lines in the bills' currency), or their sums."""

    gross: int
    revenue_share_gross: int
    pass_through_gross: int
    fee: int
    credits: int
    clawback: int
    brought_forward: int
    net: int
    amount: int  # transferred (or to be)
    carry: int = 0  # a negative balance carried to the next payout (<= 0): amount + carry = net + brought_forward

    @property
    def charges(self) -> int:
        """Gross without the credits (the provider's negative bills, which gross includes)."""
        return arithmetic.charges(self)


_MONEY = tuple(f.name for f in fields(Figures))


def _summed(items: Sequence[Figures]) -> dict[str, int]:
    return {name: sum(getattr(item, name) for item in items) for name in _MONEY}


@dataclass(frozen=True)
class PlanFigures:
    """Of a row's lines, those of plan-rated bills (catalog/): what customers paid for the
    provider's plans (gross), the platform's share (the parent plans' fees, or the revenue-share
    cut of a plan without parent) and the provider's profit (net)."""

    gross: int = 0
    fee: int = 0
    net: int = 0

    def __add__(self, other: "PlanFigures") -> "PlanFigures":
        return PlanFigures(self.gross + other.gross, self.fee + other.fee, self.net + other.net)


@dataclass(frozen=True, kw_only=True)
class ProviderRow(Figures):
    provider_id: str
    provider_name: str
    currency: str
    bills: int  # Σ line_count of its payouts
    status: str  # its payouts' status; 'mixed' when they differ
    payout_ids: tuple[str, ...]
    plan: PlanFigures = field(default_factory=lambda: PlanFigures())  # of it, what plan-rated bills paid


@dataclass(frozen=True, kw_only=True)
class CurrencyTotal(Figures):
    """The rows of one currency added up."""

    currency: str
    providers: int
    bills: int
    plan: PlanFigures = field(default_factory=lambda: PlanFigures())


@dataclass(frozen=True)
class OutstandingInvoice:
    invoice_id: str
    number: str | None
    customer: str  # its name, else its external id
    currency: str
    amount: int  # still due


@dataclass(frozen=True)
class Reconciliation:
    currency: str
    collected: int
    tax: int
    provider_payouts: int
    platform_revenue: int
    fx_difference: int
    credits_applied: int  # <= 0
    uncollected: int
    uncollectible: int
    balanced: bool
    credits_carried: int = 0  # >= 0
    converted_out: int = 0
    converted_in: int = 0
    payouts_net: int = 0  # Σ net of the period's payouts in the currency (== provider_payouts)
    sources: int = 0
    uncollected_invoices: tuple[OutstandingInvoice, ...] = ()
    uncollectible_invoices: tuple[OutstandingInvoice, ...] = ()

    @property
    def money_in(self) -> int:
        """The identity's left side: what was collected in the currency and converted into it."""
        return self.collected + self.converted_in

    @property
    def money_out(self) -> int:
        """The identity's right side: where that money went (balanced: equal to money_in)."""
        return (self.tax + self.provider_payouts + self.platform_revenue + self.credits_applied + self.credits_carried
                + self.fx_difference + self.converted_out)


@dataclass(frozen=True)
class PayoutReport:
    tenant_id: str
    livemode: bool
    tenant_name: str
    period_start: date
    period_end: date
    rows: list[ProviderRow]
    totals: list[CurrencyTotal]
    reconciliation: list[Reconciliation]
    locale: str = "en"


# --- the figures (pure) --------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class PayoutFigures(Figures):
    """What the report needs of one payout."""

    id: str
    provider_id: str
    currency: str
    status: str
    line_count: int


def provider_rows(payouts: Iterable[PayoutFigures], names: Mapping[str, str]) -> list[ProviderRow]:
    """One row per provider and currency, ordered by currency, provider name and id."""
    grouped: dict[tuple[str, str], list[PayoutFigures]] = defaultdict(list)
    for payout in payouts:
        grouped[payout.provider_id, payout.currency].append(payout)
    rows = []
    for (provider_id, currency), group in grouped.items():
        statuses = {p.status for p in group}
        rows.append(ProviderRow(
            provider_id=provider_id, provider_name=names.get(provider_id, provider_id), currency=currency,
            bills=sum(p.line_count for p in group), status=statuses.pop() if len(statuses) == 1 else "mixed",
            payout_ids=tuple(sorted(p.id for p in group)), **_summed(group)))
    return sorted(rows, key=lambda r: (r.currency, r.provider_name, r.provider_id))


def currency_totals(rows: Iterable[ProviderRow]) -> list[CurrencyTotal]:
    by_currency: dict[str, list[ProviderRow]] = defaultdict(list)
    for row in rows:
        by_currency[row.currency].append(row)
    return [CurrencyTotal(currency=currency, providers=len(group), bills=sum(r.bills for r in group),
                          plan=sum((r.plan for r in group), PlanFigures()), **_summed(group))
            for currency, group in sorted(by_currency.items())]


@dataclass
class _Sums:
    collected: int = 0
    tax: int = 0
    provider_payouts: int = 0
    platform_revenue: int = 0
    fx_difference: int = 0
    credits_applied: int = 0
    credits_carried: int = 0
    converted_out: int = 0
    converted_in: int = 0
    sources: int = 0

    def balanced(self) -> bool:
        return self.collected + self.converted_in == (
            self.tax + self.provider_payouts + self.platform_revenue + self.credits_applied + self.credits_carried
            + self.fx_difference + self.converted_out)


def reconcile(attributed: Iterable[tuple[InvoiceParts, shares.Collection]],
              payouts_net: Mapping[str, int],
              outstanding: Sequence[tuple[str, OutstandingInvoice]] = ()) -> list[Reconciliation]:
    """Per currency: the sources' lines (each source's invoice parts and its Collection) summed
    as the module doc says; `payouts_net` currency -> Σ net of the period's payouts;
    `outstanding` (invoice status, invoice): the period's open and uncollectible invoices."""
    sums: dict[str, _Sums] = defaultdict(_Sums)
    for invoice, lines in attributed:
        s = sums[invoice.currency]
        s.sources += 1
        s.collected += lines.collected
        s.tax += lines.tax
        s.credits_applied += lines.credit
        s.credits_carried += lines.carried
        for bill, line in zip(invoice.bills, lines.bills, strict=True):
            own = sums[bill.currency]
            own.provider_payouts += line.net
            own.platform_revenue += line.fee
            if bill.fx_rate is not None and bill.currency != invoice.currency:
                fx = shares.fx_difference(line.collected, invoice.currency, line.amount, bill.currency, bill.fx_rate)
                s.fx_difference += fx
                s.converted_out += line.collected - fx
                own.converted_in += line.amount
    due: dict[tuple[str, str], list[OutstandingInvoice]] = defaultdict(list)
    for status, invoice in outstanding:
        due[invoice.currency, status].append(invoice)
    result = []
    for currency in sorted(set(sums) | set(payouts_net) | {currency for currency, _ in due}):
        s = sums.get(currency, _Sums())
        open_, lost = tuple(due[currency, "open"]), tuple(due[currency, "uncollectible"])
        net = payouts_net.get(currency, 0)
        result.append(Reconciliation(
            currency=currency, collected=s.collected, tax=s.tax, provider_payouts=s.provider_payouts,
            platform_revenue=s.platform_revenue, fx_difference=s.fx_difference, credits_applied=s.credits_applied,
            uncollected=sum(i.amount for i in open_), uncollectible=sum(i.amount for i in lost),
            balanced=s.balanced() and s.provider_payouts == net, credits_carried=s.credits_carried,
            converted_out=s.converted_out, converted_in=s.converted_in, payouts_net=net, sources=s.sources,
            uncollected_invoices=open_, uncollectible_invoices=lost))
    return result


# --- reading it ------------------------------------------------------------------------------------

def payout_report(principal: Principal, period: date) -> PayoutReport:
    """The report of the payouts of `period` (an invoicing period's start date) in the
    principal's tenant and mode; a period without payouts gives an empty report."""
    settings = tenant_settings(principal.tenant_id, principal.livemode)
    if not 1970 <= period.year <= 2200:
        raise InvalidInput.on("period", "Use a period between 1970 and 2200.")
    if period.day != settings.period_anchor_day:
        raise NotFound(f"{period.isoformat()} is not the start of an invoicing period: this tenant's "
                       f"periods start on day {settings.period_anchor_day} of a month.")
    end = C.period_starting(period, settings.period_anchor_day, settings.timezone).end
    scope = (PayoutRun.tenant_id == principal.tenant_id, PayoutRun.livemode == principal.livemode,
             PayoutRun.period_start == period)
    runs = sa.select(PayoutRun.id).where(*scope)
    payouts = [PayoutFigures(id=p.id, provider_id=p.provider_id, currency=p.currency, status=p.status,
                             line_count=p.line_count, **{name: getattr(p, name) for name in _MONEY})
               for p in db.session.scalars(sa.select(Payout).where(Payout.run_id.in_(runs)).order_by(Payout.id))]
    names = dict(run(sa.select(Provider.id, Provider.name).where(
        Provider.tenant_id == principal.tenant_id, Provider.livemode == principal.livemode)).all())
    nets: dict[str, int] = defaultdict(int)
    for payout in payouts:
        nets[payout.currency] += payout.net
    sources = db.session.scalars(sa.select(PayoutSource).where(PayoutSource.run_id.in_(runs))
                                 .order_by(PayoutSource.source_id)).all()
    plan_bills = _plan_bills(principal, sources)
    plans: dict[tuple[str, str], PlanFigures] = defaultdict(PlanFigures)

    def attributed():
        for _, parts, lines in source_lines(sources):
            for bill, line in zip(parts.bills, lines.bills, strict=True):
                if bill.bill_id in plan_bills:
                    plans[bill.provider_id, bill.currency] += PlanFigures(line.amount, line.fee, line.net)
            yield parts, lines

    reconciliation = reconcile(attributed(), nets, _outstanding(principal, period))
    rows = [replace(row, plan=plans.get((row.provider_id, row.currency), PlanFigures()))
            for row in provider_rows(payouts, names)]
    return PayoutReport(principal.tenant_id, principal.livemode, settings.legal_name or settings.name, period, end,
                        rows, currency_totals(rows), reconciliation, settings.locale)


def _plan_bills(principal: Principal, sources: Sequence[PayoutSource]) -> set[str]:
    """The ids of the plan-rated bills (a plan's fees and its priced usage) among those the
    sources' invoices may hold."""
    if not sources:
        return set()
    oldest = run(sa.select(sa.func.min(Invoice.period_start)).where(
        Invoice.id.in_({s.invoice_id for s in sources}))).scalar()
    b = Bill.__table__.c
    return set(run(sa.select(b.id).where(b.tenant_id == principal.tenant_id, b.livemode == principal.livemode,
                                         b.source.in_(["subscription", "usage"]),  # fees and usage
                                         b.period_start >= oldest)).scalars())


def _outstanding(principal: Principal, period: date) -> list[tuple[str, OutstandingInvoice]]:
    """The period's open and uncollectible invoices with an amount still due."""
    due = Invoice.amount_due - Invoice.amount_paid
    found = run(sa.select(Invoice.status, Invoice.id, Invoice.number, Customer.name, Customer.external_id,
                          Invoice.currency, due)
                .join(Customer, Customer.id == Invoice.customer_id)
                .where(Invoice.tenant_id == principal.tenant_id, Invoice.livemode == principal.livemode,
                       Invoice.period_start == period, Invoice.status.in_(["open", "uncollectible"]), due > 0)
                .order_by(Invoice.number, Invoice.id)).all()
    return [(status, OutstandingInvoice(invoice_id, number, name or external_id, currency, int(amount)))
            for status, invoice_id, number, name, external_id, currency, amount in found]


# --- documents -------------------------------------------------------------------------------------

_PLAN = ("gross", "fee", "net")
#: The amounts in the order of their arithmetic (payouts/arithmetic.py): charges + credits = gross;
#: gross - fee + clawback = net; net + brought_forward = amount + carry. Then gross's split.
CSV_AMOUNTS = ("charges", "credits", "gross", "fee", "clawback", "net", "brought_forward", "carry", "amount",
               "revenue_share_gross", "pass_through_gross")
_CSV_COLUMNS = ["provider_id", "provider_name", "currency", "bills", *CSV_AMOUNTS, "status", "payout_ids",
                "plan_gross", "plan_fee", "plan_profit"]


def report_csv(report: PayoutReport) -> str:
    """One line per provider and currency, then one `total` line per currency; amounts as
    decimal strings (as the API gives them), in the order of their arithmetic."""
    out = io.StringIO()
    writer = csv_cells.writer(out, lineterminator="\r\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        writer.writerow([row.provider_id, row.provider_name, row.currency, row.bills,
                         *(money.format_amount(getattr(row, name), row.currency) for name in CSV_AMOUNTS),
                         row.status, " ".join(row.payout_ids),
                         *(money.format_amount(getattr(row.plan, name), row.currency) for name in _PLAN)])
    for total in report.totals:
        writer.writerow(["total", f"{total.providers} providers", total.currency, total.bills,
                         *(money.format_amount(getattr(total, name), total.currency) for name in CSV_AMOUNTS), "", "",
                         *(money.format_amount(getattr(total.plan, name), total.currency) for name in _PLAN)])
    return out.getvalue()


#: The report's columns of arithmetic (payouts/arithmetic.py's steps, a column each), in order.
ARITHMETIC_COLUMNS = (("charges", "Charges"), ("credits", "Credits"), ("gross", "Gross"), ("fee", "Fee"),
                      ("clawback", "Clawback"), ("net", "Net"), ("brought_forward", "Brought fwd"),
                      ("carry", "Carried"), ("amount", "Payout"))


def arithmetic_cells(figures: Figures, show) -> dict[str, dict]:
    """key -> {"amount": displayed, "sum": is a subtotal} of a row's arithmetic, each step signed
    as it adds (the fee negative; a negative balance carried positive, bringing the payout to 0)."""
    cells = {step.key: {"amount": show(step.amount), "sum": step.is_sum} for step in arithmetic.steps(figures)}
    cells.setdefault("carry", {"amount": show(0), "sum": False})
    return cells


def report_document(report: PayoutReport) -> dict:
    """The template's context: amounts displayed in the tenant's locale, and each row's net in
    minor units for the chart's bars (the template scales them)."""
    show = lambda minor, currency: money.display(minor, currency, report.locale)  # noqa: E731
    rows = [{"name": r.provider_name, "currency": r.currency, "bills": r.bills, "status": r.status.replace("_", " "),
             "net_minor": r.net, **{name: show(getattr(r, name), r.currency) for name in _MONEY},
             "cells": arithmetic_cells(r, lambda minor, c=r.currency: show(minor, c)),
             "plan": {name: show(getattr(r.plan, name), r.currency) for name in _PLAN} if r.plan.gross else None}
            for r in report.rows]
    totals = [{"currency": t.currency, "providers": t.providers, "bills": t.bills,
               "cells": arithmetic_cells(t, lambda minor, c=t.currency: show(minor, c)),
               **{name: show(getattr(t, name), t.currency) for name in _MONEY}} for t in report.totals]
    reconciliation = []
    for r in report.reconciliation:
        amounts = {f.name: show(getattr(r, f.name), r.currency) for f in fields(Reconciliation)
                   if isinstance(getattr(r, f.name), int) and not isinstance(getattr(r, f.name), bool)
                   and f.name != "sources"}
        outstanding = [{"kind": kind, "number": i.number or i.invoice_id, "customer": i.customer,
                        "amount": show(i.amount, i.currency)}
                       for kind, invoices in (("Uncollected", r.uncollected_invoices),
                                              ("Uncollectible", r.uncollectible_invoices)) for i in invoices]
        amounts.update(money_in=show(r.money_in, r.currency), money_out=show(r.money_out, r.currency))
        reconciliation.append({"currency": r.currency, "balanced": r.balanced, "sources": r.sources,
                               "converted": bool(r.converted_in or r.converted_out), "outstanding": outstanding,
                               **amounts})
    return {"tenant_name": report.tenant_name, "mode": "live" if report.livemode else "test",
            "period_start": report.period_start.isoformat(), "period_end": report.period_end.isoformat(),
            "currencies": [t.currency for t in report.totals], "rows": rows, "totals": totals,
            "columns": ARITHMETIC_COLUMNS,
            "plans": [row for row in rows if row["plan"]],
            "reconciliation": reconciliation}


def report_pdf(report: PayoutReport, renderer) -> bytes:
    """The report as a PDF, by the app's renderer (consolidate.render.WeasyPrintRenderer)."""
    return renderer.render(TEMPLATE, report_document(report))
