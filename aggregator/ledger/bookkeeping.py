"""What each money-moving transition posts: the amounts read from the invoices, payments and
refunds (and the share rules of revenue/), built into the standard journals of
`journal.py` and posted in the caller's transaction (`service.post_many`). The transitions call
these; the rule book of which journal records what is `journal.py`'s docstring.

- `post_finalized`: invoice_finalized for invoices just finalized (the close, in bulk, from the
  amounts it already summed in SQL; `finalize_invoices`, from the invoices' parts);
- `post_voided`: invoice_voided, the reversal of what was posted for an invoice (none: a draft);
- `post_payments`: payment_received for payments that succeeded (recovery lines on an
  uncollectible invoice);
- `post_refund`: refund, with the clawback of the refunded amount;
- `post_write_off`: write_off of what an invoice marked uncollectible did not collect.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

import sqlalchemy as sa

from ..db import db
from ..faults import crash_point
from ..revenue.parts import InvoiceParts
from ..revenue.shares import Collection, clawback, collected_shares, difference, payment_lines
from ..revenue.terms import Split
from . import journal as books
from . import service
from .models import LedgerEntry, LedgerJournal


@dataclass(frozen=True, slots=True)
class FinalizedInvoice:
    """The amounts an invoice's finalized journal records: its `shares` per (provider, bill
    currency), `credit` applied (>= 0) and `carried` to the next invoice (>= 0)."""

    invoice_id: str
    customer_id: str
    currency: str
    amount_due: int
    tax: int
    credit: int
    carried: int
    shares: tuple[books.Share, ...]


def provider_shares(bills: Iterable[tuple[str, str, int, Split, int]]) -> tuple[books.Share, ...]:
    """Σ per (provider, bill currency) of (provider id, bill currency, invoiced amount, split,
    count): `count` bills each invoiced `invoiced` (invoice currency) and split `split` (their
    own currency). In (provider, currency) order."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for provider_id, currency, invoiced, split, count in bills:
        total = sums[provider_id, currency]
        total[0] += split.net * count
        total[1] += split.fee * count
        total[2] += invoiced * count
    return tuple(books.Share(p, c, net, fee, invoiced) for (p, c), (net, fee, invoiced) in sorted(sums.items()))


def finalized_of(invoice_id: str, customer_id: str, parts: InvoiceParts) -> FinalizedInvoice:
    """The finalized amounts of an invoice from its parts (what finalize_invoices posts)."""
    return FinalizedInvoice(invoice_id, customer_id, parts.currency, parts.total, parts.tax, -parts.credit,
                            parts.carried, provider_shares((b.provider_id, b.currency, b.invoiced_amount, b.share, 1)
                                                           for b in parts.bills))


def _given_back(collection: Collection) -> books.Parts:
    """A collection's lines (revenue/shares.py: payment lines > 0, clawback < 0) as the ledger's parts,
    summed per provider and currency, signs as they are."""
    return books.Parts(collection.tax, provider_shares(
        (b.provider_id, b.currency, b.collected, Split(b.fee, b.net), 1) for b in collection.bills),
        collection.credit)


def _negated(parts: books.Parts) -> books.Parts:
    return books.Parts(-parts.tax, tuple(books.Share(s.provider_id, s.currency, -s.net, -s.fee, -s.invoiced)
                                         for s in parts.shares), -parts.credit)


def _owed(tenant_id: str, livemode: bool, debits: dict[tuple[str, str], int],
          credits: dict[tuple[str, str], int] | None = None) -> dict[tuple[str, str], int]:
    """What each provider is owed for the debits of its payable (provider, currency) -> amount:
    `credits` posted with them first, and its payable's balance, locked, only when those do not
    cover the debits (so a close's chunk reads no balance when its credits cover its credit bills)."""
    credits = credits or {}
    short = [key for key, amount in debits.items() if amount > credits.get(key, 0)]
    owed = dict(credits)
    for key, amount in service.lock_provider_payables(tenant_id, livemode, short).items():
        owed[key] = owed.get(key, 0) + amount
    return owed


# --- invoices ----------------------------------------------------------------------------------

def post_finalized(tenant_id: str, livemode: bool, invoices: Sequence[FinalizedInvoice], as_of: datetime) -> None:
    """invoice_finalized for each invoice, one post_many. A provider's credit bills (a negative
    net) are taken from what it is owed: the credits to its payable in these journals, then its
    payable (locked); beyond that they go to its clawback account."""
    credits: dict[tuple[str, str], int] = defaultdict(int)
    debits: dict[tuple[str, str], int] = defaultdict(int)
    for invoice in invoices:
        for share in invoice.shares:
            (credits if share.net > 0 else debits)[share.provider_id, share.currency] += abs(share.net)
    left = _owed(tenant_id, livemode, debits, credits) if debits else None
    journals = []
    for invoice in invoices:
        journal = books.invoice_finalized(
            invoice.invoice_id, invoice.currency, invoice.amount_due, invoice.tax, invoice.shares,
            [(invoice.customer_id, invoice.credit)] if invoice.credit else (),
            carried=(invoice.customer_id, invoice.carried) if invoice.carried else None,
            owed=left if left is not None and any(share.net < 0 for share in invoice.shares) else None)
        if left is not None:  # what this journal took of what each provider is owed
            for p in journal.postings:
                if p.amount > 0 and books.is_provider_payable(p.account):
                    key = (p.account.partition(":")[2], p.currency)
                    left[key] = left.get(key, 0) - p.amount
        journals.append(journal)
    service.post_many(tenant_id, livemode, journals, as_of)


def post_close_chunk(tenant_id: str, livemode: bool, invoices: Sequence[FinalizedInvoice],
                     shares: Sequence[books.Share], converted: dict[tuple[str, str], tuple[int, int]],
                     as_of: datetime, memo: str) -> str | None:
    """invoices_finalized: the invoices a close's chunk finalized, as one journal (ledger
    entries per account and currency, not per invoice: a million bills post a few thousand
    entries, not a million). A provider's credit bills are netted against its other bills of
    the chunk; what is left of them is taken from what it is owed, the rest to its clawback."""
    if not invoices:
        return None
    journal = books.invoices_finalized(invoices[0].invoice_id, [
        (i.customer_id, i.currency, i.amount_due, i.tax, i.credit, i.carried) for i in invoices], shares, converted,
        memo)
    debits = {(p.account.partition(":")[2], p.currency): p.amount for p in journal.postings
              if p.amount > 0 and books.is_provider_payable(p.account)}
    if debits:
        journal = books.within_owed(journal, _owed(tenant_id, livemode, debits))
    posted = service.post(tenant_id, livemode, journal, as_of)
    crash_point("ledger.close_chunk.posted")
    return posted


def post_finalized_invoices(invoices: Sequence, as_of: datetime) -> None:
    """invoice_finalized for invoices (rows of one tenant and mode) finalized from drafts: their
    parts read as the invoice shows them."""
    from ..payouts.collections import invoice_parts_of_many  # payouts reads consolidate, which calls here

    if not invoices:
        return
    parts = invoice_parts_of_many(invoices)
    post_finalized(invoices[0].tenant_id, invoices[0].livemode,
                   [finalized_of(i.id, i.customer_id, parts[i.id]) for i in invoices], as_of)


def _journals_of(tenant_id: str, livemode: bool, object_id: str) -> dict[str, books.Journal]:
    """kind -> the journal posted of this object, rebuilt from its entries."""
    rows = db.session.execute(
        sa.select(LedgerJournal.kind, LedgerEntry.account, LedgerEntry.currency, LedgerEntry.amount)
        .join(LedgerEntry, LedgerEntry.journal_id == LedgerJournal.id)
        .where(LedgerJournal.tenant_id == tenant_id, LedgerJournal.livemode == livemode,
               LedgerJournal.object_id == object_id)
        .order_by(LedgerEntry.id)).all()
    postings: dict[str, list[books.Posting]] = defaultdict(list)
    for kind, account, currency, amount in rows:
        postings[kind].append(books.Posting(account, currency, amount))
    return {kind: books.Journal(kind, object_id, tuple(p)) for kind, p in postings.items()}


def post_voided(invoice, as_of: datetime) -> None:
    """invoice_voided: the reversal of the invoice's finalized journal (rebuilt from its parts
    when a close finalized it in its chunk's journal) and of its write-off,
    a provider's payable debited only down to zero, the rest to its clawback account
    (journal.within_owed); nothing for a draft, which posted none."""
    from ..payouts.collections import invoice_parts_of

    posted = _journals_of(invoice.tenant_id, invoice.livemode, invoice.id)
    finalized = posted.get("invoice_finalized")
    if finalized is None and invoice.finalized_journal_id is not None:  # a close's, in its chunk's journal
        f = finalized_of(invoice.id, invoice.customer_id, invoice_parts_of(invoice))
        finalized = books.invoice_finalized(f.invoice_id, f.currency, f.amount_due, f.tax, f.shares,
                                            [(f.customer_id, f.credit)] if f.credit else (),
                                            carried=(f.customer_id, f.carried) if f.carried else None)
    if finalized is not None:
        reversal = books.invoice_voided(invoice.id, finalized, written_off=posted.get("write_off"))
        debits: dict[tuple[str, str], int] = defaultdict(int)
        for p in reversal.postings:
            if p.amount > 0 and books.is_provider_payable(p.account):
                debits[p.account.partition(":")[2], p.currency] += p.amount
        if debits:
            reversal = books.within_owed(reversal, _owed(invoice.tenant_id, invoice.livemode, debits))
        service.post(invoice.tenant_id, invoice.livemode, reversal, as_of)


def post_write_off(invoice, as_of: datetime) -> None:
    """write_off of an invoice marked uncollectible: what is still receivable (T - paid), as the
    difference of its shares at its total and at what was paid."""
    from ..payouts.collections import invoice_parts_of

    total, paid = invoice.amount_due, min(invoice.amount_paid, invoice.amount_due)
    if total == paid:
        return
    parts = invoice_parts_of(invoice)
    given = _negated(_given_back(difference(collected_shares(parts, paid),
                                            collected_shares(parts, total))))
    owed = _owed(invoice.tenant_id, invoice.livemode,
                 {(s.provider_id, s.currency): s.net for s in given.shares if s.net > 0})
    service.post(invoice.tenant_id, invoice.livemode,
                 books.write_off(invoice.id, invoice.currency, total - paid, given.tax, given.shares, given.credit,
                                 owed), as_of)


# --- payments and refunds ----------------------------------------------------------------------

def _refunded(invoice_id: str, but: str | None = None) -> int:
    """What succeeded refunds of the invoice gave back (but the refund `but`)."""
    from ..payments.models import Refund

    query = sa.select(sa.func.coalesce(sa.func.sum(Refund.amount), 0)).where(
        Refund.invoice_id == invoice_id, Refund.status == "succeeded")
    if but is not None:
        query = query.where(Refund.id != but)
    return int(db.session.scalar(query))


def post_payments(payments: Sequence, invoices: dict, as_of: datetime, paid_before: dict[str, int] | None = None,
                  recover: bool = True) -> None:
    """payment_received for succeeded payments (of one tenant and mode), each applied to its
    invoice (`invoices`: id -> the invoice as it was before these payments; `paid_before`: what
    had been paid on each, default its amount_paid) up to what it had left to pay; the excess is
    the customer's credit. On an uncollectible invoice the payment recovers its lines
    (shares.payment_lines) instead of crediting receivable (unless not `recover`: the backfill
    writes the invoice off after its payments)."""
    from ..payouts.collections import invoice_parts_of

    if not payments:
        return
    paid = {i.id: i.amount_paid for i in invoices.values()}
    paid.update(paid_before or {})
    journals = []
    for payment in payments:
        invoice = invoices[payment.invoice_id]
        applied = max(min(payment.amount, invoice.amount_due - paid[invoice.id]), 0)
        recovered = None
        if recover and invoice.status == "uncollectible" and applied:
            collected = paid[invoice.id] - _refunded(invoice.id)
            recovered = _given_back(payment_lines(invoice_parts_of(invoice), collected, applied))
        paid[invoice.id] += applied
        journals.append(books.payment_received(payment.id, payment.currency, payment.amount, applied,
                                               invoice.customer_id, recovered=recovered))
    service.post_many(payments[0].tenant_id, payments[0].livemode, journals, as_of)
    crash_point("ledger.payments.posted")


def post_refund(refund, invoice, as_of: datetime, collected: int | None = None) -> None:
    """refund of a refund that succeeded: the clawback of its amount from what the invoice had
    `collected` net of the refunds before it (default: its payments less every other succeeded
    refund, all of which came before this one)."""
    from ..payouts.collections import invoice_parts_of

    if collected is None:
        collected = min(invoice.amount_paid, invoice.amount_due) - _refunded(invoice.id, but=refund.id)
    given = _negated(_given_back(clawback(refund.amount, invoice_parts_of(invoice), collected)))
    owed = _owed(refund.tenant_id, refund.livemode,
                 {(s.provider_id, s.currency): s.net for s in given.shares if s.net > 0})
    service.post(refund.tenant_id, refund.livemode,
                 books.refund(refund.id, refund.currency, refund.amount, given.tax, given.shares, owed,
                              credit_part=given.credit), as_of)
    crash_point("ledger.refund.posted")


# --- the books of what happened before the ledger was wired (migration 0012) -------------------

def backfill() -> int:
    """Post the journals of every invoice, payment and refund that has none (what happened before
    the transitions posted them), per invoice in the order it happened as far as the tables tell:
    finalized; its succeeded payments by creation (each applied up to what was left to pay);
    its succeeded refunds by settlement; then a write-off if it is uncollectible now (of what is
    unpaid now: the books come out as if every payment came before it), or the reversal if it is
    void. -> how many journals were posted. In the caller's transaction."""
    from ..consolidate.models import Invoice
    from ..payments.models import Payment, Refund

    posted = set(db.session.execute(sa.select(LedgerJournal.kind, LedgerJournal.object_id)).all())
    count = 0
    invoices = db.session.scalars(sa.select(Invoice).where(Invoice.finalized_at.is_not(None))
                                  .order_by(Invoice.tenant_id, Invoice.livemode, Invoice.id)).unique().all()
    for invoice in invoices:
        if ("invoice_finalized", invoice.id) not in posted and invoice.finalized_journal_id is None:
            post_finalized_invoices([invoice], invoice.finalized_at)
            count += 1
        payments = db.session.scalars(sa.select(Payment).where(
            Payment.invoice_id == invoice.id, Payment.status == "succeeded")
            .order_by(Payment.created_at, Payment.id)).all()
        paid = 0
        for payment in payments:
            if ("payment_received", payment.id) not in posted:
                post_payments([payment], {invoice.id: invoice}, payment.settled_at or payment.created_at,
                              paid_before={invoice.id: paid}, recover=False)
                count += 1
            paid = min(paid + payment.amount, invoice.amount_due)
        collected = min(invoice.amount_paid, invoice.amount_due)
        for refund in db.session.scalars(sa.select(Refund).where(
                Refund.invoice_id == invoice.id, Refund.status == "succeeded")
                .order_by(Refund.settled_at, Refund.id)).all():
            if ("refund", refund.id) not in posted:
                post_refund(refund, invoice, refund.settled_at or refund.created_at, collected)
                count += 1
            collected -= refund.amount
        if invoice.status == "uncollectible" and ("write_off", invoice.id) not in posted:
            post_write_off(invoice, invoice.finalized_at)
            count += 1
        if invoice.status == "void" and ("invoice_voided", invoice.id) not in posted:
            post_voided(invoice, invoice.voided_at or invoice.finalized_at)
            count += 1
    return count
