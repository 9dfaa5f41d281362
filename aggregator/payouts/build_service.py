"""Building a payout day's payouts: what was collected up to the payout day and not paid out
before, one payout per provider and currency (due work at the payout day's local midnight).

Sources. Money an invoice collected is paid out once: each succeeded payment, each succeeded
refund (negative) and each invoice settled without money (its credits cover it) becomes a row of
`payout_sources`, whose primary key is the payment's, refund's or invoice's id, in the run of the
first payout day at or after it happened (`at`: settled_at, or paid_at). What it collected of
its invoice is clamped to 0..total (an overpayment's excess is the customer's credit, not the
providers'), and `collected_before` is what the invoice's earlier sources collected: its lines
are shares.difference(collected_shares(K_before + amount), collected_shares(K_before)), so any
sequence of partial payments and refunds pays the providers exactly what one payment would have.

Fast path. A payment of a whole invoice at once (nothing collected before) or a settled invoice
pays each bill exactly its split (revenue/shares.py, rule 2 at K == T): those are grouped in SQL
as for the close's journal (revenue_sql.ShareGrouping) and each group split at once, exactly as
bill by bill. Only partial payments and refunds are attributed bill by bill in Python.

Balances brought forward. A paid payout's carry (<= 0: refunds beyond what it earned) and the
whole amount of a canceled or failed payout (nothing was sent) are brought into the provider's
next payout in the currency, each once (payout_carries' primary key).
"""
from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from .. import money
from ..accounts.models import Provider
from ..accounts.service import tenant_settings
from ..consolidate import period_rates
from ..consolidate.models import Invoice
from ..db import analyze, bulk_insert, db, dialect_insert, greatest, in_ids, least, new_id, run
from ..events.service import NewEvent, record
from ..faults import crash_point
from ..ingest.models import Bill
from ..payments.models import Payment, Refund
from ..periods import calendar as C
from ..revenue import shares
from ..revenue.terms import RevenueShare
from ..revenue_sql import ShareGrouping
from . import transitions
from .collections import source_lines
from .models import Payout, PayoutCarry, PayoutRun, PayoutSource

_sources, _runs, _payouts, _carries = (PayoutSource.__table__, PayoutRun.__table__, Payout.__table__,
                                       PayoutCarry.__table__)


@dataclass
class BuildReport:
    payout_date: date
    run_id: str | None = None
    sources: int = 0
    payouts: list[str] = field(default_factory=list)


# --- what waits ---------------------------------------------------------------------------------

def _unsourced(tenant_id: str | sa.BindParameter, livemode: bool | sa.BindParameter) -> list[sa.Select]:
    """(id, kind, invoice, amount, at, charge) of the sources not paid out yet: one SELECT each."""
    p, r, i = Payment.__table__.c, Refund.__table__.c, Invoice.__table__.c
    fresh = lambda column: ~sa.exists().where(_sources.c.source_id == column)  # noqa: E731
    def shaped(id_, kind, invoice_id, amount, at, charge):
        return sa.select(id_.label("id"), sa.literal(kind).label("kind"), invoice_id.label("invoice_id"),
                         amount.label("amount"), at.label("at"), charge.label("charge"))
    no_charge = sa.null().cast(sa.String(255))
    return [
        shaped(p.id, "payment", p.invoice_id, p.amount, p.settled_at, p.stripe_charge_id)
        .where(p.tenant_id == tenant_id, p.livemode == livemode, p.status == "succeeded", fresh(p.id)),
        shaped(r.id, "refund", r.invoice_id, -r.amount, r.settled_at, no_charge)
        .where(r.tenant_id == tenant_id, r.livemode == livemode, r.status == "succeeded", fresh(r.id)),
        shaped(i.id, "settled", i.id, sa.literal(0, sa.BigInteger), i.paid_at, no_charge)
        .where(i.tenant_id == tenant_id, i.livemode == livemode, i.status == "paid", i.total == 0, fresh(i.id)),
    ]


def next_payout_due(tenant_id: str, livemode: bool) -> tuple[date, datetime] | None:
    """The payout day of the earliest money not paid out yet (or of a canceled or failed
    payout's amount not brought forward yet), and its instant (local midnight): the first
    payout day at or after it that has no run yet (money arriving late for a payout day
    already built waits for the next one)."""
    *earliest, latest = run(_waiting_select(), {"tenant_id": tenant_id, "livemode": livemode}).one()
    earliest = [at for at in earliest if at is not None]
    if not earliest:
        return None
    settings = tenant_settings(tenant_id, livemode)
    day = C.payout_date_for(min(earliest), settings.payout_day, settings.timezone)
    if latest is not None:
        day = max(day, C.payout_date_for(latest + timedelta(microseconds=1), settings.payout_day, settings.timezone))
    return day, C.local_midnight(day, settings.timezone)


@functools.cache
def _waiting_select() -> sa.Select:
    """Built once (the due work asks it of each lane several times a catch-up; building and
    compiling it cost more than running it): one row, in one round trip, of the earliest `at`
    of each kind of source not paid out yet, the earliest end of a canceled or failed payout
    not brought forward yet, and the lane's latest run's due instant. Parameters: tenant_id,
    livemode."""
    tenant_id, livemode = sa.bindparam("tenant_id"), sa.bindparam("livemode")
    earliest = [sa.select(sa.func.min(sub.c.at)).scalar_subquery()
                for sub in (q.subquery() for q in _unsourced(tenant_id, livemode))]
    p = _payouts.c
    earliest.append(sa.select(sa.func.min(sa.func.coalesce(p.failed_at, p.canceled_at))).where(
        p.tenant_id == tenant_id, p.livemode == livemode, p.status.in_(["canceled", "failed"]),
        p.net + p.brought_forward > 0, ~sa.exists().where(_carries.c.from_payout_id == p.id)).scalar_subquery())
    latest = sa.select(sa.func.max(_runs.c.due_at)).where(_runs.c.tenant_id == tenant_id,
                                                          _runs.c.livemode == livemode).scalar_subquery()
    return sa.select(*earliest, latest)


# --- the build ------------------------------------------------------------------------------------

@dataclass
class _Totals:
    line_count: int = 0
    gross: int = 0
    revenue_share_gross: int = 0
    pass_through_gross: int = 0
    fee: int = 0
    credits: int = 0
    clawback: int = 0
    sources: set = field(default_factory=set)  # the sources its lines come from
    charge: str | None = None  # the Stripe charge of its only source, if that is a charge

    def add(self, amount: int, fee: int, revenue_share: bool) -> None:
        """One bill's line."""
        self.add_group(amount, fee, revenue_share, 1, amount < 0)

    def add_group(self, gross: int, fee: int, revenue_share: bool, count: int, credits: bool) -> None:
        """`count` lines of one sign adding up to `gross` and `fee`."""
        self.line_count += count
        self.gross += gross
        self.fee += fee
        if revenue_share:
            self.revenue_share_gross += gross
        else:
            self.pass_through_gross += gross
        if credits:
            self.credits += gross

    @property
    def net(self) -> int:
        return self.gross - self.fee + self.clawback


def build_payouts(tenant_id: str, livemode: bool, payout_date: date) -> BuildReport:
    """Gather what was collected up to `payout_date` (its local midnight, the instant the
    payouts are dated, whenever this runs) into one payout per provider and currency, in one
    transaction. Exactly once: the run is unique per payout day, and each source is paid out in
    one run only (its primary key); running it again does nothing (a run's row is written in the
    transaction that builds it, so a payout day is built whole or not at all, once; money arriving
    late for it waits for the next payout day). Under payout_auto_approve the payouts are approved at once."""
    settings = tenant_settings(tenant_id, livemode)
    due_at = C.local_midnight(payout_date, settings.timezone)
    period = C.payout_period(payout_date, settings.period_anchor_day, settings.timezone)
    run_id = new_id("prun")
    created = run(dialect_insert(_runs).values(
        id=run_id, tenant_id=tenant_id, livemode=livemode, payout_date=payout_date, period_start=period.start,
        due_at=due_at, created_at=due_at).on_conflict_do_nothing().returning(_runs.c.id)).scalar()
    if created is None:  # built before (or by a concurrent run, which we waited for): done
        db.session.rollback()
        return BuildReport(payout_date)
    report = BuildReport(payout_date, run_id)
    report.sources = _take_sources(tenant_id, livemode, run_id, due_at)
    totals: dict[tuple[str, str], _Totals] = defaultdict(_Totals)
    if report.sources:
        _whole_collections(tenant_id, livemode, run_id, totals)
        _partial_collections(tenant_id, livemode, run_id, totals)
    forward = _brought_forward(tenant_id, livemode)
    rows, carries = _payout_rows(tenant_id, livemode, run_id, due_at, totals, forward)
    created = transitions.create_payouts(tenant_id, livemode, rows, due_at)
    if carries:
        bulk_insert(_carries, carries)
    report.payouts = [p.id for p in created]
    from .service import approve_and_settle  # the same path as finance's approval
    # nothing to transfer (a negative balance carried): nothing to review, settled at once
    approve_and_settle(tenant_id, livemode, [p.id for p in created if p.method == "none"], due_at, "system")
    to_review = [p for p in created if p.method != "none"]
    if settings.payout_auto_approve:
        approve_and_settle(tenant_id, livemode, [p.id for p in to_review], due_at, "auto")
    elif to_review:
        record(tenant_id, livemode, due_at, [_awaiting_review(run_id, payout_date, period.start, to_review)])
    crash_point("payout.build.before_commit")
    db.session.commit()
    crash_point("payout.build.after_commit")
    return report


def _candidates(tenant_id: str, livemode: bool, due_at: datetime) -> sa.Subquery:
    """The sources up to `due_at` not paid out yet (one subquery: id, kind, invoice_id, amount, at,
    charge)."""
    return sa.union_all(*(q.where(q.selected_columns[4] <= due_at) for q in _unsourced(tenant_id, livemode))) \
        .subquery("candidates")


def _take_sources(tenant_id: str, livemode: bool, run_id: str, due_at: datetime) -> int:
    """Claim for this run the sources up to `due_at` not paid out yet, with what each collected of
    its invoice (clamped to 0..total) after what its invoice's earlier sources collected. The
    common case, in one INSERT … SELECT: an invoice's only source, paid out for the first time (a
    payment, or a settled invoice): collected_before 0, amount at most its total. The others
    (several sources, or one after earlier ones; every refund) are few, ordered by time and
    claimed here one by one. -> how many were claimed."""
    candidates = _candidates(tenant_id, livemode, due_at)
    counted = sa.select(candidates, sa.func.count().over(partition_by=candidates.c.invoice_id).label("n")) \
        .subquery("counted")
    c, i, s = counted.c, Invoice.__table__.c, _sources.c
    simple = (sa.select(c.id, c.kind, sa.literal(run_id), sa.literal(tenant_id), sa.literal(livemode), c.invoice_id,
                        greatest(least(c.amount, i.total), 0),
                        sa.literal(0, sa.BigInteger), c.at, c.charge)
              .join(Invoice.__table__, i.id == c.invoice_id)
              .where(c.n == 1, c.kind != "refund", ~sa.exists().where(s.invoice_id == c.invoice_id)))
    db.session.execute(sa.insert(_sources).from_select(
        ["source_id", "kind", "run_id", "tenant_id", "livemode", "invoice_id", "amount", "collected_before", "at",
         "stripe_charge_id"], simple))
    _take_the_rest(tenant_id, livemode, run_id, due_at)
    analyze(_sources)  # the planner learns the run's size (else it plans the join below for one row)
    return run(sa.select(sa.func.count()).where(s.run_id == run_id)).scalar()


def _take_the_rest(tenant_id: str, livemode: bool, run_id: str, due_at: datetime) -> None:
    c = _candidates(tenant_id, livemode, due_at).c
    found = sorted(run(sa.select(c.id, c.kind, c.invoice_id, c.amount, c.at, c.charge)).all(),
                   key=lambda r: (r[2], r[4], r[0]))
    if not found:
        return
    invoice_ids = sorted({r[2] for r in found})
    invoices = Invoice.__table__.c
    total_of = dict(run(sa.select(invoices.id, invoices.total).where(in_ids(invoices.id, invoice_ids))).all())
    before = _collected_so_far(tenant_id, livemode, invoice_ids)
    rows = []
    for source_id, kind, invoice_id, amount, at, charge in found:
        collected = before.get(invoice_id, 0)
        after = min(max(collected + int(amount), 0), total_of[invoice_id])
        rows.append({"source_id": source_id, "kind": kind, "run_id": run_id, "tenant_id": tenant_id,
                     "livemode": livemode, "invoice_id": invoice_id, "amount": after - collected,
                     "collected_before": collected, "at": at, "stripe_charge_id": charge})
        before[invoice_id] = after
    bulk_insert(_sources, rows)


def _collected_so_far(tenant_id: str, livemode: bool, invoice_ids: list[str]) -> dict[str, int]:
    """invoice id -> what its sources paid out before (or being paid out) collected, net."""
    return {invoice_id: int(total) for invoice_id, total in run(
        sa.select(_sources.c.invoice_id, sa.func.sum(_sources.c.amount))
        .where(_sources.c.tenant_id == tenant_id, _sources.c.livemode == livemode,
               in_ids(_sources.c.invoice_id, invoice_ids))
        .group_by(_sources.c.invoice_id)).all()}


def _whole(sources, invoices):
    """Sources that collect their whole invoice at once: each bill gets exactly its split."""
    return sa.or_(sources.kind == "settled",
                  sa.and_(sources.kind == "payment", sources.collected_before == 0, sources.amount == invoices.total))


def _whole_collections(tenant_id: str, livemode: bool, run_id: str, totals: dict) -> None:
    """The fast path: the bills of the run's whole collections, each exactly its split. The
    database groups them for their shares (revenue_sql.ShareGrouping), by period too (its terms);
    each group is split at once, exactly as bill by bill, streamed (flat memory)."""
    s, i, b = _sources.c, Invoice.__table__.c, Bill.__table__.c
    periods = [start for (start,) in run(sa.select(i.period_start).distinct().select_from(_sources)
                                          .join(Invoice.__table__, i.id == s.invoice_id).where(s.run_id == run_id))]
    policies = {(provider_id, start): RevenueShare(rate)
                for start in periods for provider_id, rate in period_rates.rates_of(tenant_id, livemode, start).items()}
    joined = (sa.select().select_from(_sources)
              .join(Invoice.__table__, i.id == s.invoice_id)
              .join(Bill.__table__, sa.and_(b.tenant_id == i.tenant_id, b.livemode == i.livemode,
                                            b.customer_id == i.customer_id, b.period_start == i.period_start,
                                            b.status == "pending"))
              .where(s.run_id == run_id, _whole(s, i)))
    grouping = ShareGrouping(Bill.__table__, policies, by=[b.period_start], missing=RevenueShare(Decimal(0)),
                             own_fee=b.platform_fee)
    for group in grouping.groups(db.session.execute(grouping.select(joined),
                                                    execution_options={"yield_per": 10_000})):
        totals[group.provider_id, group.currency].add_group(group.gross, group.split.fee, group.revenue_share,
                                                            group.count, group.negative)
    for provider_id, currency, first, last, charge in run(
            joined.add_columns(b.provider_id, b.currency, sa.func.min(s.source_id), sa.func.max(s.source_id),
                               sa.func.max(s.stripe_charge_id))
            .group_by(b.provider_id, b.currency)):
        t = totals[provider_id, currency]
        t.sources.update({first, last})
        t.charge = charge


def _partial_collections(tenant_id: str, livemode: bool, run_id: str, totals: dict) -> None:
    """Partial payments and refunds, bill by bill (revenue/shares.py rule 3): few, read from the run."""
    s, i = _sources.c, Invoice.__table__.c
    partial = db.session.scalars(
        sa.select(PayoutSource).join(Invoice, Invoice.id == PayoutSource.invoice_id)
        .where(s.run_id == run_id, sa.not_(_whole(s, i))).order_by(s.invoice_id, s.at, s.source_id)).all()
    for source, parts, lines in source_lines(partial):
        revenue_share = {b.bill_id: b.revenue_share for b in parts.bills}
        for line in lines.bills:
            t = totals[line.provider_id, line.currency]
            if source.kind == "refund":
                t.line_count += 1
                t.clawback += line.net
            else:
                t.add(line.amount, line.fee, revenue_share[line.bill_id])
            t.sources.add(source.source_id)
            t.charge = source.stripe_charge_id


def _brought_forward(tenant_id: str, livemode: bool) -> dict[tuple[str, str], list[tuple[str, int]]]:
    """(provider, currency) -> the finished payouts whose balance is not brought forward yet:
    a paid one's carry, a canceled or failed one's whole amount (net + what it brought)."""
    p = _payouts.c
    balance = sa.case((p.status == "paid", p.carry), else_=p.net + p.brought_forward)
    forward: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
    for payout_id, provider_id, currency, amount in run(
            sa.select(p.id, p.provider_id, p.currency, balance)
            .where(p.tenant_id == tenant_id, p.livemode == livemode,
                   sa.or_(p.status.in_(["canceled", "failed"]), sa.and_(p.status == "paid", p.carry < 0)),
                   ~sa.exists().where(_carries.c.from_payout_id == p.id))
            .order_by(p.id)):
        if amount:
            forward[provider_id, currency].append((payout_id, int(amount)))
    return forward


def _payout_rows(tenant_id: str, livemode: bool, run_id: str, due_at: datetime, totals: dict,
                 forward: dict) -> tuple[list[dict], list[dict]]:
    """One payout per provider and currency with lines, or with a positive balance to bring."""
    accounts = dict(run(sa.select(Provider.id, Provider.stripe_account_id).where(
        Provider.tenant_id == tenant_id, Provider.livemode == livemode)).all())
    rows, carries = [], []
    for key in sorted(set(totals) | {k for k, v in forward.items() if sum(a for _, a in v) > 0}):
        provider_id, currency = key
        t = totals.get(key) or _Totals()
        brought = forward.get(key, [])
        carried = sum(a for _, a in brought)
        result = shares.payout([t.net, max(carried, 0)], min(carried, 0))
        payout_id = new_id("po")
        account = accounts.get(provider_id)
        rows.append({
            "id": payout_id, "tenant_id": tenant_id, "livemode": livemode, "run_id": run_id,
            "provider_id": provider_id, "currency": currency, "line_count": t.line_count, "gross": t.gross,
            "revenue_share_gross": t.revenue_share_gross, "pass_through_gross": t.pass_through_gross,
            "fee": t.fee, "credits": t.credits, "clawback": t.clawback, "net": t.net, "brought_forward": carried,
            "amount": result.transfer, "carry": result.carry,
            "method": "none" if not result.transfer else "stripe" if account else "bank_transfer",
            "stripe_account_id": account if result.transfer else None,
            "source_transaction": t.charge if len(t.sources) == 1 and not carried else None,
            "idempotency_key": f"payout-{payout_id}", "created_at": due_at})
        carries += [{"from_payout_id": source, "into_payout_id": payout_id, "amount": amount}
                    for source, amount in brought]
    return rows, carries


def _awaiting_review(run_id: str, payout_date: date, period_start: date, payouts: list[Payout]) -> NewEvent:
    """`payouts.awaiting_review`: the run's payouts, for finance (its email) and its webhooks."""
    by_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in payouts:
        by_currency[p.currency][0] += 1
        by_currency[p.currency][1] += p.amount
    return NewEvent("payouts.awaiting_review", run_id, {"object": {
        "object": "payout_run", "id": run_id, "payout_date": payout_date.isoformat(),
        "period": period_start.isoformat(), "payout_count": len(payouts),
        "totals": [{"currency": c, "payouts": n, "amount": money.format_amount(a, c)}
                   for c, (n, a) in sorted(by_currency.items())]}})
