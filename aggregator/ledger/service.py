"""Posting journals (in the caller's transaction) and reading the books: balances, the trial
balance and the journals.

Posting is one call in each handler of a fact that moves money (`handlers.py`), in the
transaction of the state change that published it: `post(tenant_id, livemode, journal, now)`.

What is enforced where:
- balanced per currency: `journal.Journal` refuses to exist otherwise; on PostgreSQL the database
  checks it again after each INSERT or COPY statement, per journal (a statement-level trigger,
  migration 0012), whatever wrote the rows: a journal's entries are written in one statement;
- append-only: database triggers on both databases (migration 0009);
- one journal of a kind per object: a unique constraint (a second posting is an IntegrityError,
  which the caller's re-run treats as "already done");
- a provider's payable never goes negative (the platform never owes a provider less than
  nothing): checked here, before the entries are written, for each provider payable the journal
  debits, under a lock of that account (PostgreSQL: a transaction-scoped advisory lock per
  tenant, mode, account and currency, taken in a fixed order; SQLite: its database write lock).
  Credits to a payable take no lock: they can only raise it. A refund or credit reads what each
  provider is owed with `lock_provider_payables` and builds its journal with it: what it claws
  back beyond that goes to the provider's clawback account (recovered from its next payouts).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

import sqlalchemy as sa

from .. import money
from ..auth import Principal
from ..db import advisory_locks, bulk_insert, db, new_ordered_id
from ..errors import Conflict
from ..pagination import Page, one, paginate
from . import journal as books
from .models import LedgerEntry, LedgerJournal

ENTRY_COLUMNS = ("journal_id", "tenant_id", "livemode", "account", "currency", "amount")


class ProviderPayableNegative(Conflict):
    code = "provider_payable_negative"


# --- posting ------------------------------------------------------------------------------------

def post(tenant_id: str, livemode: bool, journal: books.Journal, posted_at: datetime,
         journal_id: str | None = None) -> str:
    """Write `journal` in the caller's transaction, as of `posted_at` (the tenant's clock), with
    the id `journal_id` (a close's chunk names it: its invoices keep it) or a new one. -> its id."""
    return post_many(tenant_id, livemode, [journal], posted_at, [journal_id] if journal_id else None)[0]


def post_many(tenant_id: str, livemode: bool, journals: Sequence[books.Journal], posted_at: datetime,
              ids: Sequence[str] | None = None) -> list[str]:
    """Write several journals of one tenant and mode in the caller's transaction (two bulk
    inserts: the close posts one per invoice), with the `ids` given or new ones. -> their ids,
    in order."""
    if not journals:
        return []
    for journal in journals:  # a Journal is balanced by construction; a hand-made one is not trusted
        books.check_balanced(journal.postings)
    _check_provider_payables(tenant_id, livemode, journals)
    ids = list(ids) if ids is not None else [new_ordered_id("jrn") for _ in journals]
    # the journals by INSERT, so that one posted before (the unique kind and object) is an
    # IntegrityError on both databases; their entries, the bulk, by COPY on PostgreSQL
    db.session.connection().execute(sa.insert(LedgerJournal.__table__), [
        {"id": journal_id, "tenant_id": tenant_id, "livemode": livemode, "kind": j.kind,
         "object_type": j.object_type, "object_id": j.object_id, "memo": j.memo, "posted_at": posted_at}
        for journal_id, j in zip(ids, journals)])
    bulk_insert(LedgerEntry.__table__, [
        (journal_id, tenant_id, livemode, p.account, p.currency, p.amount)
        for journal_id, j in zip(ids, journals) for p in j.postings], ENTRY_COLUMNS)
    return ids


def _check_provider_payables(tenant_id: str, livemode: bool, journals: Sequence[books.Journal]) -> None:
    """Refuse journals that would leave a provider payable with a debit balance."""
    change: dict[tuple[str, str], int] = defaultdict(int)
    for journal in journals:
        for p in journal.postings:
            if books.is_provider_payable(p.account):
                change[p.account, p.currency] += p.amount
    debited = [key for key, amount in change.items() if amount > 0]
    for (account, currency), balance in _locked_balances(tenant_id, livemode, debited).items():
        if balance + change[account, currency] > 0:
            raise ProviderPayableNegative(
                f"{account} would owe the platform "
                f"{money.format_amount(balance + change[account, currency], currency)} "
                f"{currency}: the platform owes it {money.format_amount(-balance, currency)}.")


def lock_provider_payables(tenant_id: str, livemode: bool,
                           providers: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """What the platform owes each (provider id, currency) now, with those payables locked
    until the transaction ends: the `owed` a refund or credit journal is built with, so that a
    clawback beyond it goes to the provider's clawback account."""
    keys = {(books.provider_payable(provider_id), currency): (provider_id, currency)
            for provider_id, currency in providers}
    return {keys[key]: -balance for key, balance in _locked_balances(tenant_id, livemode, list(keys)).items()}


def payout_journal(tenant_id: str, livemode: bool, payout_id: str, provider_id: str, currency: str,
                   amount: int) -> books.Journal:
    """The `payout_sent` journal of `amount` paid to a provider, with the payable and clawback
    accounts locked. recovered = min(owed back, owed - amount):
    - what the provider owed back (its clawback balance, from refunds beyond what it was owed
      when they happened) is recovered out of what the platform owes it beyond the payout (the
      payout's amount already had those refunds taken off: its lines are net of them);
    - a payout beyond what the platform owes now (money refunded, or an invoice written off,
      after the payout was built from what had been collected) is debited to the payable only
      down to zero, the rest to the clawback account (negative `recovered`): what the provider now
      owes back, taken from its next payouts (whose lines carry that refund)."""
    payable, clawback = books.provider_payable(provider_id), books.provider_clawback(provider_id)
    balances = _locked_balances(tenant_id, livemode, [(payable, currency), (clawback, currency)])
    owed, owed_back = -balances[payable, currency], balances[clawback, currency]
    recovered = min(owed_back, owed - amount)
    return books.payout_sent(payout_id, provider_id, currency, amount, recovered)


def _locked_balances(tenant_id: str, livemode: bool, accounts: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """The balances of (account, currency) pairs, read under a lock of each that is held until
    the transaction ends (PostgreSQL: advisory locks taken in a fixed order, so two postings
    never wait for each other; SQLite: its database write lock)."""
    accounts = sorted(set(accounts))
    if not accounts:
        return {}
    advisory_locks([f"ledger:{tenant_id}:{livemode}:{account}:{currency}" for account, currency in accounts])
    return _balances_of(tenant_id, livemode, accounts)


def _balances_of(tenant_id: str, livemode: bool, accounts: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    balances = {key: 0 for key in accounts}
    rows = db.session.execute(
        sa.select(LedgerEntry.account, LedgerEntry.currency, sa.func.sum(LedgerEntry.amount))
        .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.livemode == livemode,
               LedgerEntry.account.in_(sorted({a for a, _ in accounts})))
        .group_by(LedgerEntry.account, LedgerEntry.currency)).all()
    for account, currency, total in rows:
        if (account, currency) in balances:
            balances[account, currency] = int(total)
    return balances


# --- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    """Sums in one currency: of debits and of credits (both ≥ 0), and the balance (debits −
    credits: positive is a debit balance)."""

    currency: str
    debits: int
    credits: int

    @property
    def balance(self) -> int:
        return self.debits - self.credits


@dataclass(frozen=True, slots=True)
class AccountBalance(CurrencyTotal):
    """An account in one currency."""

    account: str

    @property
    def type(self) -> str:
        return books.account_type(self.account).name

    @property
    def normal_side(self) -> str:
        return books.account_type(self.account).normal


@dataclass(frozen=True)
class TrialBalance:
    """Every account's debits, credits and balance per currency, and the totals per currency:
    the books balance when each currency's debits equal its credits."""

    accounts: list[AccountBalance]
    totals: list[CurrencyTotal] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return all(total.balance == 0 for total in self.totals)


def _matches(column, account: str):
    """`account` names one account ("provider_payable:prov_…") or all of a code
    ("provider_payable")."""
    return sa.or_(column == account, column.startswith(account + ":", autoescape=True))


def _account_balances(tenant_id: str, livemode: bool, account: str | None = None,
                      currency: str | None = None) -> list[AccountBalance]:
    debit_amount = sa.case((LedgerEntry.amount > 0, LedgerEntry.amount), else_=0)
    credit_amount = sa.case((LedgerEntry.amount < 0, -LedgerEntry.amount), else_=0)
    query = (sa.select(LedgerEntry.account, LedgerEntry.currency, sa.func.sum(debit_amount),
                       sa.func.sum(credit_amount))
             .where(LedgerEntry.tenant_id == tenant_id, LedgerEntry.livemode == livemode)
             .group_by(LedgerEntry.account, LedgerEntry.currency)
             .order_by(LedgerEntry.account, LedgerEntry.currency))
    if account:
        query = query.where(_matches(LedgerEntry.account, account))
    if currency:
        query = query.where(LedgerEntry.currency == currency)
    return [AccountBalance(currency=c, debits=int(d), credits=int(cr), account=a)
            for a, c, d, cr in db.session.execute(query)]


def balances(principal: Principal, account: str | None = None, currency: str | None = None) -> list[AccountBalance]:
    """The balances of the caller's tenant and mode, per account and currency (one GROUP BY);
    `account` is an account or a code ("provider_payable": every provider's)."""
    return _account_balances(principal.tenant_id, principal.livemode, account, currency)


def trial_balance(principal: Principal) -> TrialBalance:
    rows = _account_balances(principal.tenant_id, principal.livemode)
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        sums[row.currency][0] += row.debits
        sums[row.currency][1] += row.credits
    return TrialBalance(rows, [CurrencyTotal(c, d, cr) for c, (d, cr) in sorted(sums.items())])


def list_journals(principal: Principal, limit: int, starting_after: str | None = None, kind: str | None = None,
                  object: str | None = None, account: str | None = None, posted_gte: datetime | None = None,
                  posted_lt: datetime | None = None) -> Page:
    """The journals of the caller's tenant and mode, newest first, with their entries."""
    query = sa.select(LedgerJournal).where(LedgerJournal.tenant_id == principal.tenant_id,
                                           LedgerJournal.livemode == principal.livemode)
    if kind:
        query = query.where(LedgerJournal.kind == kind)
    if object:
        query = query.where(LedgerJournal.object_id == object)
    if account:
        query = query.where(sa.exists().where(LedgerEntry.journal_id == LedgerJournal.id,
                                              _matches(LedgerEntry.account, account)))
    if posted_gte:
        query = query.where(LedgerJournal.posted_at >= posted_gte)
    if posted_lt:
        query = query.where(LedgerJournal.posted_at < posted_lt)
    return paginate(query, LedgerJournal.id, limit, starting_after)


def get_journal(principal: Principal, journal_id: str) -> LedgerJournal:
    return one(sa.select(LedgerJournal).where(LedgerJournal.tenant_id == principal.tenant_id,
                                              LedgerJournal.livemode == principal.livemode),
               LedgerJournal.id, journal_id, "journal")
