"""The books as a subscriber: what the ledger posts when money moves. The transitions publish
facts (aggregator.bus) with the amounts they computed; these handlers, subscribed by the
composition root (aggregator.wiring), build them into the standard journals of `journal.py`
(with the share rules of revenue/) and post them in the publisher's transaction
(`service.post_many`), so the books balance at every COMMIT. The rule book of which journal
records what is `journal.py`'s docstring.

- `post_finalized` (InvoicesFinalized): invoice_finalized for drafts just finalized;
- `post_close_chunk` (InvoicesFinalizedAtClose): invoices_finalized, a close's chunk as one journal;
- `post_voided` (InvoiceVoided): invoice_voided, the reversal of what was posted for an invoice
  (none: a draft);
- `post_write_off` (InvoiceWrittenOff): write_off of what an invoice marked uncollectible did not
  collect;
- `post_payments` (PaymentsSucceeded): payment_received for payments that succeeded (recovery
  lines on an uncollectible invoice);
- `post_refund` (RefundSucceeded): refund, with the clawback of the refunded amount (to the
  customer's credit rather than cash for a credit note settled to its balance);
- `post_credit_note` (CreditNoteIssued): credit_note, what a note took off an open invoice's due;
- `post_payout` (PayoutPaid): payout_sent of the money sent to a provider.

The ledger reads nothing but its own tables: what it needs of an invoice, a payment or a
refund comes in the fact.
"""
from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from ..consolidate.facts import (
    CreditNoteIssued,
    FinalizedInvoice,
    InvoicesFinalized,
    InvoicesFinalizedAtClose,
    InvoiceVoided,
    InvoiceWrittenOff,
)
from ..db import db
from ..faults import crash_point
from ..payments.facts import PaymentsSucceeded, RefundSucceeded
from ..payouts.facts import PayoutPaid
from ..revenue.shares import Collection, clawback, collected_shares, difference, payment_lines, provider_shares
from ..revenue.terms import Split
from . import journal as books
from . import service
from .models import LedgerEntry, LedgerJournal


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

def post_finalized(fact: InvoicesFinalized) -> None:
    """invoice_finalized for each invoice, one post_many. A provider's credit bills (a negative
    net) are taken from what it is owed: the credits to its payable in these journals, then its
    payable (locked); beyond that they go to its clawback account."""
    credits: dict[tuple[str, str], int] = defaultdict(int)
    debits: dict[tuple[str, str], int] = defaultdict(int)
    for invoice in fact.invoices:
        for share in invoice.shares:
            (credits if share.net > 0 else debits)[share.provider_id, share.currency] += abs(share.net)
    left = _owed(fact.tenant_id, fact.livemode, debits, credits) if debits else None
    journals = []
    for invoice in fact.invoices:
        journal = _invoice_finalized(
            invoice, owed=left if left is not None and any(share.net < 0 for share in invoice.shares) else None)
        if left is not None:  # what this journal took of what each provider is owed
            for p in journal.postings:
                if p.amount > 0 and books.is_provider_payable(p.account):
                    key = (p.account.partition(":")[2], p.currency)
                    left[key] = left.get(key, 0) - p.amount
        journals.append(journal)
    service.post_many(fact.tenant_id, fact.livemode, journals, fact.as_of)


def _invoice_finalized(invoice: FinalizedInvoice, owed: dict[tuple[str, str], int] | None = None) -> books.Journal:
    return books.invoice_finalized(
        invoice.invoice_id, invoice.currency, invoice.amount_due, invoice.tax, invoice.shares,
        [(invoice.customer_id, invoice.credit)] if invoice.credit else (),
        carried=(invoice.customer_id, invoice.carried) if invoice.carried else None, owed=owed)


def post_close_chunk(fact: InvoicesFinalizedAtClose) -> None:
    """invoices_finalized: the invoices a close's chunk finalized, as one journal (ledger
    entries per account and currency, not per invoice: a million bills post a few thousand
    entries, not a million), with the id the invoices keep. A provider's credit bills are netted
    against its other bills of the chunk; what is left of them is taken from what it is owed,
    the rest to its clawback."""
    invoices = fact.invoices
    if not invoices:
        return
    journal = books.invoices_finalized(invoices[0].invoice_id, [
        (i.customer_id, i.currency, i.amount_due, i.tax, i.credit, i.carried) for i in invoices], fact.shares,
        fact.converted,
        f"{len(invoices)} invoices finalized at the close: {fact.first_number} to {fact.last_number}")
    debits = {(p.account.partition(":")[2], p.currency): p.amount for p in journal.postings
              if p.amount > 0 and books.is_provider_payable(p.account)}
    if debits:
        journal = books.within_owed(journal, _owed(fact.tenant_id, fact.livemode, debits))
    service.post(fact.tenant_id, fact.livemode, journal, fact.as_of, journal_id=fact.journal_id)
    crash_point("ledger.close_chunk.posted")


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


def post_voided(fact: InvoiceVoided) -> None:
    """invoice_voided: the reversal of the invoice's finalized journal (rebuilt from its amounts
    when a close finalized it in its chunk's journal) and of its write-off,
    a provider's payable debited only down to zero, the rest to its clawback account
    (journal.within_owed); nothing for a draft, which posted none."""
    posted = _journals_of(fact.tenant_id, fact.livemode, fact.invoice_id)
    finalized = posted.get("invoice_finalized")
    if finalized is None and fact.finalized_at_close is not None:  # a close's, in its chunk's journal
        finalized = _invoice_finalized(fact.finalized_at_close)
    if finalized is not None:
        reversal = books.invoice_voided(fact.invoice_id, finalized, written_off=posted.get("write_off"))
        debits: dict[tuple[str, str], int] = defaultdict(int)
        for p in reversal.postings:
            if p.amount > 0 and books.is_provider_payable(p.account):
                debits[p.account.partition(":")[2], p.currency] += p.amount
        if debits:
            reversal = books.within_owed(reversal, _owed(fact.tenant_id, fact.livemode, debits))
        service.post(fact.tenant_id, fact.livemode, reversal, fact.as_of)


def post_write_off(fact: InvoiceWrittenOff) -> None:
    """write_off of an invoice marked uncollectible: what is still receivable (T - paid), as the
    difference of its shares at its total and at what was paid."""
    total, paid = fact.amount_due, min(fact.amount_paid, fact.amount_due)
    if total == paid or fact.parts is None:
        return
    given = _negated(_given_back(difference(collected_shares(fact.parts, paid),
                                            collected_shares(fact.parts, total))))
    owed = _owed(fact.tenant_id, fact.livemode,
                 {(s.provider_id, s.currency): s.net for s in given.shares if s.net > 0})
    service.post(fact.tenant_id, fact.livemode,
                 books.write_off(fact.invoice_id, fact.currency, total - paid, given.tax, given.shares, given.credit,
                                 owed), fact.as_of)


# --- payments and refunds ----------------------------------------------------------------------

def post_payments(fact: PaymentsSucceeded) -> None:
    """payment_received for succeeded payments (of one tenant and mode), each applied to its
    invoice (as it was before these payments) up to what it had left to pay; the excess is the
    customer's credit. On an uncollectible invoice the payment recovers its lines
    (shares.payment_lines) instead of crediting receivable."""
    if not fact.payments:
        return
    invoices = {i.invoice_id: i for i in fact.invoices}
    paid = {i.invoice_id: i.amount_paid for i in fact.invoices}
    journals = []
    for payment in fact.payments:
        invoice = invoices[payment.invoice_id]
        applied = max(min(payment.amount, invoice.amount_due - paid[invoice.invoice_id]), 0)
        recovered = None
        if invoice.uncollectible and invoice.parts is not None and applied:
            collected = paid[invoice.invoice_id] - invoice.refunded
            recovered = _given_back(payment_lines(invoice.parts, collected, applied))
        paid[invoice.invoice_id] += applied
        journals.append(books.payment_received(payment.payment_id, payment.currency, payment.amount, applied,
                                               invoice.customer_id, recovered=recovered))
    service.post_many(fact.tenant_id, fact.livemode, journals, fact.as_of)
    crash_point("ledger.payments.posted")


def post_refund(fact: RefundSucceeded) -> None:
    """refund of a refund that succeeded: the clawback of its amount from what the invoice had
    collected net of the refunds before it."""
    given = _negated(_given_back(clawback(fact.amount, fact.parts, fact.collected)))
    owed = _owed(fact.tenant_id, fact.livemode,
                 {(s.provider_id, s.currency): s.net for s in given.shares if s.net > 0})
    service.post(fact.tenant_id, fact.livemode,
                 books.refund(fact.refund_id, fact.currency, fact.amount, given.tax, given.shares, owed,
                              credit_part=given.credit, to_customer=fact.to_credit_of), fact.as_of)
    crash_point("ledger.refund.posted")


def post_credit_note(fact: CreditNoteIssued) -> None:
    """credit_note of a note that reduced what an open invoice asks (`reduce_due`): receivable
    credited its total, its part of the invoice debited back as a write-off's is. A note settled
    by a refund (to the card or to the customer's balance) posts nothing here: its refund's
    journal, when the money moves, is its reversal (RefundSucceeded)."""
    if fact.settlement != "reduce_due":
        return
    given = _negated(_given_back(difference(collected_shares(fact.parts, fact.amount_due - fact.total),
                                            collected_shares(fact.parts, fact.amount_due))))
    owed = _owed(fact.tenant_id, fact.livemode,
                 {(s.provider_id, s.currency): s.net for s in given.shares if s.net > 0})
    service.post(fact.tenant_id, fact.livemode,
                 books.credit_note(fact.credit_note_id, fact.currency, fact.total, given.tax, given.shares,
                                   given.credit, owed), fact.as_of)


# --- payouts -----------------------------------------------------------------------------------

def post_payout(fact: PayoutPaid) -> None:
    """payout_sent of a payout's amount (nothing for a payout of 0), with what the provider owed
    back recovered (service.payout_journal)."""
    if fact.amount:
        service.post(fact.tenant_id, fact.livemode, service.payout_journal(
            fact.tenant_id, fact.livemode, fact.payout_id, fact.provider_id, fact.currency, fact.amount), fact.as_of)

