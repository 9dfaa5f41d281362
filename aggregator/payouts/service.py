"""Payouts' use cases: reading them (a provider's key sees only its own: its statement),
finance's review (approve one or a whole period, cancel), recording a bank transfer paid.
Building them is build_service (due work); sending them by Stripe is send_service (a queue)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Sequence

import sqlalchemy as sa

from ..accounts.models import Customer
from ..auth import Principal
from ..db import db, in_ids, locking, write_lock
from ..errors import Conflict
from ..faults import crash_point
from ..ingest.models import Bill
from ..pagination import Page, one, paginate
from ..states import InvalidTransition
from . import transitions
from .collections import source_lines
from .models import Payout, PayoutRun, PayoutSource


class PayoutNotBankTransfer(Conflict):
    code = "payout_not_bank_transfer"


# --- reading ------------------------------------------------------------------------------------

def _scoped(principal: Principal) -> sa.Select:
    query = sa.select(Payout).where(Payout.tenant_id == principal.tenant_id, Payout.livemode == principal.livemode)
    if principal.role == "provider":
        query = query.where(Payout.provider_id == principal.provider_id)
    return query


def list_payouts(principal: Principal, limit: int, starting_after: str | None = None, period: date | None = None,
                 provider: str | None = None, status: str | None = None) -> Page:
    query = _scoped(principal)
    if period is not None:
        query = query.join(PayoutRun, PayoutRun.id == Payout.run_id).where(PayoutRun.period_start == period)
    if provider is not None:
        query = query.where(Payout.provider_id == provider)
    if status is not None:
        query = query.where(Payout.status == status)
    return paginate(query, Payout.id, limit, starting_after)


def get_payout(principal: Principal, payout_id: str) -> Payout:
    return one(_scoped(principal), Payout.id, payout_id, "payout")


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """A bill's part of one source (payment, refund, settled invoice) of a payout, with what its
    provider knows the bill by: its customer (name, else external id), description and service
    period."""

    bill_id: str
    invoice_id: str
    source_id: str
    revenue_share: bool
    currency: str
    amount: int
    fee: int
    net: int
    customer: str = ""
    description: str = ""
    service_period_start: date | None = None
    service_period_end: date | None = None


def payout_lines(principal: Principal, payout_id: str, limit: int, starting_after: str | None = None) -> Page:
    """A payout's lines, derived from its run's sources (stored once per payment, not per bill):
    its provider's bills in its currency, ordered by (source, bill); `starting_after` is a
    line's "source/bill"."""
    payout = get_payout(principal, payout_id)
    sources = PayoutSource.__table__.c
    query = (sa.select(PayoutSource).where(sources.run_id == payout.run_id).order_by(sources.source_id))
    after_source, _, after_bill = (starting_after or "").partition("/")
    if after_source:
        query = query.where(sources.source_id >= after_source)
    lines: list[PayoutLine] = []
    for source, parts, attributed in source_lines(db.session.scalars(query).all()):
        mine = [b for b in parts.bills if b.provider_id == payout.provider_id and b.currency == payout.currency]
        by_bill = {b.bill_id: b for b in attributed.bills}
        for bill in sorted(mine, key=lambda b: b.bill_id):
            if (source.source_id, bill.bill_id) <= (after_source, after_bill):
                continue
            line = by_bill[bill.bill_id]
            lines.append(PayoutLine(bill.bill_id, source.invoice_id, source.source_id, bill.revenue_share,
                                    bill.currency, line.amount, line.fee, line.net))
            if len(lines) > limit:
                return Page(_described(lines[:limit]), True)
    return Page(_described(lines), False)


def _described(lines: list[PayoutLine]) -> list[PayoutLine]:
    """The lines with their bills' customer, description and service period (one query)."""
    bill_ids = sorted({line.bill_id for line in lines})
    if not bill_ids:
        return lines
    rows = db.session.execute(
        sa.select(Bill.id, Customer.name, Customer.external_id, Bill.description, Bill.service_period_start,
                  Bill.service_period_end)
        .join(Customer, sa.and_(Customer.id == Bill.customer_id, Customer.tenant_id == Bill.tenant_id,
                                Customer.livemode == Bill.livemode))
        .where(in_ids(Bill.id, bill_ids))).all()
    facts = {bill_id: (name or external_id, description or "", start, end)
             for bill_id, name, external_id, description, start, end in rows}
    return [replace(line, customer=facts[line.bill_id][0], description=facts[line.bill_id][1],
                    service_period_start=facts[line.bill_id][2], service_period_end=facts[line.bill_id][3])
            if line.bill_id in facts else line for line in lines]


# --- finance's review -------------------------------------------------------------------------------

def approve_and_settle(tenant_id: str, livemode: bool, payout_ids: Sequence[str], now: datetime,
                       by: str) -> list[Payout]:
    """Approve these payouts (those awaiting review), in the caller's transaction: a payout with
    nothing to transfer is paid at once; a Stripe one is sent by the payout.send queue; a bank
    transfer one waits for finance to record it paid. -> the payouts approved here."""
    approved = transitions.approve(tenant_id, livemode, payout_ids, now, by)
    for payout in approved:
        if payout.method == "none":
            transitions.mark_paid(payout, now)
    return approved


def approve_payout(principal: Principal, payout_id: str, now: datetime) -> Payout:
    """Finance approves one payout. Approving it again changes nothing (409: it is approved)."""
    payout = _locked(principal, payout_id)
    if payout.status != "pending_review" or not approve_and_settle(principal.tenant_id, principal.livemode,
                                                                   [payout.id], now, principal.key_id):
        raise _refused(payout, "only a payout pending review can be approved.")
    db.session.commit()
    crash_point("payout.approve.after_commit")
    return get_payout(principal, payout_id)


def approve_period(principal: Principal, period: date, now: datetime) -> list[Payout]:
    """Finance approves every payout of a period that awaits review. -> those approved now."""
    ids = db.session.scalars(_scoped(principal).with_only_columns(Payout.id)
                             .join(PayoutRun, PayoutRun.id == Payout.run_id)
                             .where(PayoutRun.period_start == period, Payout.status == "pending_review")
                             .order_by(Payout.id)).all()
    approved = approve_and_settle(principal.tenant_id, principal.livemode, ids, now, principal.key_id)
    db.session.commit()
    crash_point("payout.approve.after_commit")
    return approved


def cancel_payout(principal: Principal, payout_id: str, now: datetime) -> Payout:
    """Cancel a payout before it is sent: its amount is brought into the provider's next payout."""
    payout = _locked(principal, payout_id)
    if not transitions.cancel(principal.tenant_id, principal.livemode, payout.id, now):
        db.session.rollback()
        payout = _current(principal, payout_id)
        raise InvalidTransition(f"This payout is {payout.status.replace('_', ' ')}"
                                f"{' and its transfer was requested' if payout.requests else ''}: it cannot be "
                                "canceled.")
    db.session.commit()
    return get_payout(principal, payout_id)


def record_bank_transfer(principal: Principal, payout_id: str, reference: str, now: datetime) -> Payout:
    """Finance records an approved bank-transfer payout as paid, with the transfer's reference."""
    payout = _locked(principal, payout_id)
    if payout.method != "bank_transfer":
        raise PayoutNotBankTransfer(f"This payout is sent by {'Stripe' if payout.method == 'stripe' else 'nobody'}"
                                    ": only a bank-transfer payout is recorded paid by finance.")
    if payout.status != "approved" or not transitions.mark_paid(payout, now, reference=reference):
        raise _refused(payout, "only an approved payout can be recorded paid.")
    db.session.commit()
    return get_payout(principal, payout_id)


def _locked(principal: Principal, payout_id: str) -> Payout:
    """The payout, read under the lock its change needs: its row (PostgreSQL) or the database's
    write lock taken before the read (SQLite), so that of concurrent callers one changes it and
    the others read what it became."""
    if principal.role != "admin":  # pragma: no cover - the blueprint admits admin keys only
        raise InvalidTransition("Only the platform's finance reviews payouts.")
    write_lock()
    return _current(principal, payout_id, lock=True)


def _current(principal: Principal, payout_id: str, *, lock: bool = False) -> Payout:
    query = _scoped(principal)
    return one((locking(query, of=Payout) if lock else query).execution_options(populate_existing=True), Payout.id,
               payout_id, "payout")


def _refused(payout: Payout, rule: str) -> InvalidTransition:
    """409 for a change this caller did not make: the payout's state as it is now (never what
    another caller recorded on it, such as its reference), and the rule. The transaction ends."""
    db.session.rollback()
    status = db.session.scalar(sa.select(Payout.status).where(Payout.id == payout.id))
    return InvalidTransition(f"This payout is {status.replace('_', ' ')}: {rule}")
