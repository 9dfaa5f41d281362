"""Double-entry journals, the chart of accounts and the standard journals: pure values, no I/O.

A posting's amount is signed integer minor units (a debit positive, a credit negative); a journal
balances in each currency on its own, or `Unbalanced` is raised (amounts are never plugged). The
chart of accounts and the rule book (which transition posts what, and why it balances) are in
docs/money.md, "The ledger"."""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from .. import money
from ..revenue.shares import Share

# --- accounts ---------------------------------------------------------------------------------

RECEIVABLE = "receivable"
CASH = "cash"
TAX_PAYABLE = "tax_payable"
PLATFORM_REVENUE = "platform_revenue"
REFUNDS = "refunds"
FX = "fx"
PROVIDER_PAYABLE = "provider_payable"
PROVIDER_CLAWBACK = "provider_clawback"
CUSTOMER_CREDIT = "customer_credit"


@dataclass(frozen=True, slots=True)
class AccountType:
    name: str  # asset, liability, revenue, contra_revenue, clearing
    normal: str  # debit, credit, either


#: code (or code prefix before ":") -> its type and normal side
CHART: dict[str, AccountType] = {
    RECEIVABLE: AccountType("asset", "debit"),
    CASH: AccountType("asset", "debit"),
    TAX_PAYABLE: AccountType("liability", "credit"),
    PROVIDER_PAYABLE: AccountType("liability", "credit"),
    PROVIDER_CLAWBACK: AccountType("asset", "debit"),
    CUSTOMER_CREDIT: AccountType("liability", "credit"),
    PLATFORM_REVENUE: AccountType("revenue", "credit"),
    REFUNDS: AccountType("contra_revenue", "debit"),
    FX: AccountType("clearing", "either"),
}

#: accounts that belong to one party: "<code>:<its id>"
PER_PARTY = (PROVIDER_PAYABLE, PROVIDER_CLAWBACK, CUSTOMER_CREDIT)

_PARTY_ID = re.compile(r"[a-z]+_[0-9a-z]{1,36}")


def provider_payable(provider_id: str) -> str:
    return _party(PROVIDER_PAYABLE, provider_id)


def provider_clawback(provider_id: str) -> str:
    return _party(PROVIDER_CLAWBACK, provider_id)


def customer_credit(customer_id: str) -> str:
    return _party(CUSTOMER_CREDIT, customer_id)


@lru_cache(maxsize=65536)
def _party(code: str, party_id: str) -> str:
    if not isinstance(party_id, str) or not _PARTY_ID.fullmatch(party_id):
        raise LedgerError(f"{party_id!r} is not an identifier such as 'prov_01jd…'.")
    return f"{code}:{party_id}"


@lru_cache(maxsize=65536)  # a close checks a million postings of a few thousand accounts
def account_type(account: str) -> AccountType:
    """The type of an account code; raises for a code outside the chart."""
    code, colon, party = account.partition(":")
    if code in PER_PARTY and colon and _PARTY_ID.fullmatch(party):
        return CHART[code]
    if code in CHART and code not in PER_PARTY and not colon:
        return CHART[code]
    raise LedgerError(f"{account!r} is not an account of the chart.")


def is_provider_payable(account: str) -> bool:
    return account.startswith(PROVIDER_PAYABLE + ":")


# --- postings and journals ----------------------------------------------------------------------

class LedgerError(ValueError):
    """A journal that cannot be posted (a programming error in the caller, not a user's input)."""


class Unbalanced(LedgerError):
    pass


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a journal: `amount` minor units of `currency` on `account`, a debit when
    positive, a credit when negative."""

    account: str
    currency: str
    amount: int

    def __post_init__(self) -> None:
        account_type(self.account)
        if not money.is_currency(self.currency):
            raise LedgerError(f"{self.currency!r} is not an ISO 4217 currency code.")
        if type(self.amount) is not int:
            raise LedgerError(f"A posting's amount is integer minor units, not {self.amount!r}.")


#: kind -> the type of object a journal of that kind records
KINDS: dict[str, str] = {
    "invoice_finalized": "invoice",
    "invoices_finalized": "close_chunk",  # a close's invoices, one journal per chunk (its first invoice's id)
    "invoice_voided": "invoice",
    "payment_received": "payment",
    "refund": "refund",
    "credit": "credit",
    "payout_sent": "payout",
    "write_off": "invoice",  # what an uncollectible invoice did not collect
    "credit_note": "credit_note",  # what a credit note took off an open invoice's amount due
    "reversal": "journal",  # a correction: the exact opposite of a posted journal
}


@dataclass(frozen=True, slots=True)
class Journal:
    """A balanced set of postings recording one movement (`kind`) of one object (`object_id`);
    at most one journal of a kind per object (the database enforces it)."""

    kind: str
    object_id: str
    postings: tuple[Posting, ...]
    memo: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LedgerError(f"Unknown journal kind {self.kind!r}.")
        if not 0 < len(self.object_id) <= 40 or (self.memo is not None and len(self.memo) > 500):
            raise LedgerError("A journal records an object id of at most 40 characters, with a memo of at most 500.")
        object.__setattr__(self, "postings", _merged(self.postings))
        check_balanced(self.postings)

    @property
    def object_type(self) -> str:
        return KINDS[self.kind]


def _merged(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """One posting per account and currency (in the order they first appear), zeros left out."""
    sums: dict[tuple[str, str], list[Any]] = {}  # [first posting, Σ amount]
    for p in postings:
        key = (p.account, p.currency)
        if key in sums:
            sums[key][1] += p.amount
        else:
            sums[key] = [p, p.amount]
    return tuple(p if p.amount == amount else Posting(p.account, p.currency, amount)
                 for p, amount in sums.values() if amount)


def totals(postings: Iterable[Posting]) -> dict[str, int]:
    """Σ amount per currency."""
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.currency] += posting.amount
    return dict(sums)


def check_balanced(postings: Iterable[Posting]) -> None:
    """Raise Unbalanced unless the amounts add up to zero in each currency."""
    off = {currency: total for currency, total in totals(postings).items() if total}
    if off:
        detail = ", ".join(f"{currency} {money.format_amount(total, currency)}"
                           for currency, total in sorted(off.items()))
        raise Unbalanced(f"The postings do not balance: debits exceed credits by {detail}.")


def debit(account: str, currency: str, amount: int) -> Posting:
    return Posting(account, currency, amount)


def credit(account: str, currency: str, amount: int) -> Posting:
    return Posting(account, currency, -amount)


# --- the standard journals ----------------------------------------------------------------------

#: what the platform owes each (provider id, currency) now: its payable's credit balance
Owed = Mapping[tuple[str, str], int]


def _platform(sign: int) -> str:
    """Where the platform's part goes: platform_revenue when collected, `refunds` when given back."""
    return PLATFORM_REVENUE if sign < 0 else REFUNDS


def _shares(invoice_currency: str, shares: Sequence[Share], sign: int, owed: Owed | None = None) -> list[Posting]:
    """Postings that credit (sign -1) or debit (sign +1) each share to its provider and the
    platform, with the fx legs for those billed in another currency, one per account and
    currency. With `owed` given, the part of a debit to a provider's payable beyond what it is
    owed goes to its clawback account (a refund's net, or a negative net credited: a provider's
    credit bills)."""
    left = dict(owed) if owed is not None else None
    sums: dict[tuple[str, str], int] = defaultdict(int)  # summed first: a close posts millions
    platform = _platform(sign)
    for share in shares:
        for account, amount in _provider_net(share, sign, left):
            sums[account, share.currency] += amount
        sums[platform, share.currency] += sign * share.fee
        if share.currency != invoice_currency:
            sums[FX, share.currency] -= sign * (share.net + share.fee)
            sums[FX, invoice_currency] += sign * share.invoiced
        elif share.invoiced != share.net + share.fee:
            raise Unbalanced(f"A share in the invoice's currency is invoiced {share.invoiced}, not its net + fee "
                             f"({share.net + share.fee}).")
    return [Posting(account, currency, amount) for (account, currency), amount in sums.items() if amount]


def _provider_net(share: Share, sign: int, left: dict[tuple[str, str], int] | None) -> list[tuple[str, int]]:
    """(account, amount) of a share's net: its payable, or beyond what it is owed its clawback."""
    payable = provider_payable(share.provider_id)
    amount = sign * share.net  # > 0: a debit of the payable
    if left is None or amount <= 0:
        return [(payable, amount)]
    key = (share.provider_id, share.currency)
    from_payable = min(amount, max(left.get(key, 0), 0))
    left[key] = left.get(key, 0) - from_payable
    return [(payable, from_payable), (provider_clawback(share.provider_id), amount - from_payable)]


def invoice_finalized(invoice_id: str, currency: str, amount_due: int, tax: int, shares: Sequence[Share],
                      credits_applied: Sequence[tuple[str, int]] = (), memo: str | None = None,
                      carried: tuple[str, int] | None = None, owed: Owed | None = None) -> Journal:
    """An invoice is finalized: debit receivable the amount due (and each applied customer
    credit, a debit of that customer's credit account); credit tax_payable the tax, each
    provider its net share and the platform its fees (in the bill's currency, through fx for a
    converted bill). `credits_applied` are (customer id, amount) pairs; `carried` (customer id,
    amount) is the credit an invoice with a negative subtotal carries to the customer's next
    one: credited to that customer's credit account. A negative net (a provider's credit bills)
    is a debit of its payable: with `owed` given, beyond what the provider is owed it goes to
    its clawback account."""
    postings = [debit(RECEIVABLE, currency, amount_due), credit(TAX_PAYABLE, currency, tax)]
    postings += [debit(customer_credit(customer_id), currency, amount) for customer_id, amount in credits_applied]
    if carried is not None:
        postings.append(credit(customer_credit(carried[0]), currency, carried[1]))
    postings += _shares(currency, shares, -1, owed)
    return Journal("invoice_finalized", invoice_id, tuple(postings), memo)


def invoices_finalized(batch_id: str, invoices: Sequence[tuple[str, str, int, int, int, int]],
                       shares: Sequence[Share], converted: Mapping[tuple[str, str], tuple[int, int]],
                       memo: str | None = None) -> Journal:
    """The invoices a close finalized in one transaction, as one journal: what their
    invoice_finalized journals would post, summed per account and currency. `invoices`:
    (customer id, currency, amount due, tax, credit applied, credit carried) each; `shares`: the
    providers' shares of them all, in the bills' currencies; `converted`: (bill currency,
    invoice currency) -> (the converted bills' amount, what they were invoiced), through fx. A
    provider's debits (credit bills beyond its other shares) are the caller's to take from what it
    is owed (`within_owed`)."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for customer_id, currency, amount_due, tax, applied, carried in invoices:
        sums[RECEIVABLE, currency] += amount_due
        sums[TAX_PAYABLE, currency] -= tax
        if applied or carried:
            sums[customer_credit(customer_id), currency] += applied - carried
    for share in shares:
        sums[provider_payable(share.provider_id), share.currency] -= share.net
        sums[PLATFORM_REVENUE, share.currency] -= share.fee
    for (bill_currency, invoice_currency), (original, invoiced) in converted.items():
        sums[FX, bill_currency] += original
        sums[FX, invoice_currency] -= invoiced
    return Journal("invoices_finalized", batch_id,
                   tuple(Posting(account, currency, amount) for (account, currency), amount in sorted(sums.items())),
                   memo)


def invoice_voided(invoice_id: str, finalized: Journal, memo: str | None = None,
                   written_off: Journal | None = None) -> Journal:
    """A finalized invoice is voided: the exact reversal of its finalized journal (and of its
    write-off, when it was uncollectible)."""
    for journal, kind in ((finalized, "invoice_finalized"), (written_off, "write_off")):
        if journal is not None and (journal.kind != kind or journal.object_id != invoice_id):
            raise LedgerError(f"Voiding {invoice_id} reverses its own {kind} journal, not {journal.kind} "
                              f"of {journal.object_id}.")
    postings = finalized.postings + (written_off.postings if written_off is not None else ())
    return Journal("invoice_voided", invoice_id, _negated(postings), memo)


def within_owed(journal: Journal, owed: Owed) -> Journal:
    """`journal` with each debit of a provider's payable taken from what the provider is owed
    (`owed`, read under the payables' lock), the rest debited to its clawback account: the same
    amount per provider, its payable never below zero (a void after the close netted the
    provider's credit bills against this invoice, or after the provider was paid out)."""
    left = dict(owed)
    postings: list[Posting] = []
    for p in journal.postings:
        if p.amount > 0 and is_provider_payable(p.account):
            provider_id = p.account.partition(":")[2]
            take = min(p.amount, max(left.get((provider_id, p.currency), 0), 0))
            left[provider_id, p.currency] = left.get((provider_id, p.currency), 0) - take
            postings += [Posting(p.account, p.currency, take),
                         Posting(provider_clawback(provider_id), p.currency, p.amount - take)]
        else:
            postings.append(p)
    return Journal(journal.kind, journal.object_id, tuple(postings), journal.memo)


def payment_received(payment_id: str, currency: str, amount: int, applied: int | None = None,
                     customer_id: str | None = None, memo: str | None = None,
                     recovered: Parts | None = None) -> Journal:
    """Money received for an invoice: debit cash the amount, credit receivable what it pays of
    the invoice (`applied`, default all of it) and the customer's credit the excess (an
    overpayment; `customer_id` needed then). On an invoice that was written off (uncollectible)
    what it pays is `recovered` instead of receivable: its tax, shares and credit part (the
    payment's lines) credited back as the finalized journal credited them."""
    applied = amount if applied is None else applied
    if not 0 <= applied <= amount:
        raise Unbalanced(f"A payment of {amount} cannot apply {applied} to its invoice.")
    postings = [debit(CASH, currency, amount)]
    if recovered is None:
        postings.append(credit(RECEIVABLE, currency, applied))
    else:
        postings += _parts("A recovery", applied, currency, recovered, -1, None)
    if amount > applied:
        if customer_id is None:
            raise LedgerError("An overpayment is the customer's credit: pass customer_id.")
        postings.append(credit(customer_credit(customer_id), currency, amount - applied))
    return Journal("payment_received", payment_id, tuple(postings), memo)


@dataclass(frozen=True, slots=True)
class Parts:
    """An amount of an invoice in its parts, each positive as billed (shares.py's lines): its
    `tax`, the providers' `shares` and `credit`, the applied customer credit's part (<= 0);
    tax + Σ invoiced + credit is the amount."""

    tax: int
    shares: tuple[Share, ...]
    credit: int = 0


def _parts(kind: str, amount: int, currency: str, parts: Parts, sign: int, owed: Owed | None) -> list[Posting]:
    invoiced = parts.tax + sum(s.invoiced for s in parts.shares) + parts.credit
    if invoiced != amount:
        raise Unbalanced(f"{kind} of {amount}: its tax, shares and credit add up to {invoiced}.")
    return [Posting(TAX_PAYABLE, currency, sign * parts.tax), *_shares(currency, parts.shares, sign, owed),
            Posting(_platform(sign), currency, sign * parts.credit)]


def _given_back(kind: str, object_id: str, source: Posting, currency: str, amount: int, tax: int,
                shares: Sequence[Share], owed: Owed | None, memo: str | None, credit_part: int = 0) -> Journal:
    postings = [source, *_parts(kind, amount, currency, Parts(tax, tuple(shares), credit_part), +1, owed)]
    return Journal(kind, object_id, tuple(postings), memo)


def refund(refund_id: str, currency: str, amount: int, tax: int, shares: Sequence[Share], owed: Owed | None = None,
           memo: str | None = None, credit_part: int = 0, to_customer: str | None = None) -> Journal:
    """Money given back to a customer: credit cash the amount; debit back its parts, given as
    inputs (the refunded proportion of the invoice's tax and shares): tax_payable, each
    provider's net (the clawback) and `refunds` the platform's fees.

    A provider's net is debited to its payable up to what the platform owes it (`owed`, read
    under the payables' lock: `service.lock_provider_payables`), the rest to its clawback
    account, recovered from its next payouts (`payout_sent`'s `recovered`). Without `owed`
    all of it is debited to the payable (which the service refuses if it would go negative).

    `credit_part` (<= 0) is the applied customer credit's part of what is given back (to
    `refunds`, with the fees): tax + Σ invoiced + credit_part == amount.

    `to_customer`: the money is not given back but kept as that customer's credit (a credit
    note settled to its balance): its credit account is credited instead of cash."""
    source = credit(CASH if to_customer is None else customer_credit(to_customer), currency, amount)
    return _given_back("refund", refund_id, source, currency, amount, tax, shares, owed, memo, credit_part)


def credit_note(credit_note_id: str, currency: str, amount: int, tax: int, shares: Sequence[Share],
                credit_part: int = 0, owed: Owed | None = None, memo: str | None = None) -> Journal:
    """A credit note takes `amount` off what an open invoice asks: credit receivable the amount
    and debit back that part of the invoice as a write-off does (tax_payable, each provider's net,
    its payable up to what it is owed, the fees to `refunds`, through fx). The parts are
    shares.difference(collected_shares(D - amount), collected_shares(D)), signs flipped, D being
    what the invoice asked before: so a later payment, refund or write-off of the rest attributes
    exactly what it would have on an invoice of D - amount."""
    return _given_back("credit_note", credit_note_id, credit(RECEIVABLE, currency, amount), currency, amount, tax,
                       shares, owed, memo, credit_part)


def write_off(invoice_id: str, currency: str, amount: int, tax: int, shares: Sequence[Share], credit_part: int = 0,
              owed: Owed | None = None, memo: str | None = None) -> Journal:
    """An invoice is marked uncollectible: credit receivable what it did not collect
    (`amount`, T - K) and debit back that part of it, as a refund does: tax_payable, each
    provider's net (payable up to what it is owed, the rest to its clawback account), the fees to
    `refunds`, through fx; `credit_part` (<= 0) the applied credit's part, to `refunds`.
    The parts are shares.difference(collected_shares(T), collected_shares(K)), signs flipped."""
    return _given_back("write_off", invoice_id, credit(RECEIVABLE, currency, amount), currency, amount, tax,
                       shares, owed, memo, credit_part)


def credit_granted(credit_id: str, customer_id: str, currency: str, amount: int, tax: int,
                   shares: Sequence[Share], owed: Owed | None = None, memo: str | None = None) -> Journal:
    """Credit granted to a customer against what it was billed: credit the customer's credit
    account the amount; debit back its parts as a refund does (a credit reduces the providers'
    payouts). The credit is consumed by a later invoice (`invoice_finalized`'s credits_applied)."""
    return _given_back("credit", credit_id, credit(customer_credit(customer_id), currency, amount), currency,
                       amount, tax, shares, owed, memo)


def payout_sent(payout_id: str, provider_id: str, currency: str, amount: int, recovered: int = 0,
                memo: str | None = None) -> Journal:
    """A payout is sent to a provider: debit its payable what is paid out of it, credit cash the
    `amount` sent and its clawback account what is `recovered` of what it owed back (so the
    transfer is the payable less the clawback, never negative). A negative `recovered` debits
    the clawback account instead: the part of the payout beyond what the platform owes."""
    return Journal("payout_sent", payout_id, (debit(provider_payable(provider_id), currency, amount + recovered),
                                               credit(provider_clawback(provider_id), currency, recovered),
                                               credit(CASH, currency, amount)), memo)


def reversal(journal_id: str, original: Journal, memo: str | None = None) -> Journal:
    """A correction of a posted journal (`journal_id`): its exact opposite."""
    return Journal("reversal", journal_id, _negated(original.postings), memo)


def _negated(postings: Sequence[Posting]) -> tuple[Posting, ...]:
    return tuple(Posting(p.account, p.currency, -p.amount) for p in postings)
