"""ledger: checked per statement, and the books of what happened before the transitions posted

1. The database's checks of ledger entries, made per statement instead of per row, so the close
   can write a million entries at speed (a per-row foreign key lookup and a per-row deferred
   balance query cost more than the rest of the close):
   - PostgreSQL: one AFTER INSERT ... FOR EACH STATEMENT trigger with the statement's new rows
     (a transition table) refuses entries whose journal is not in their tenant and mode
     (foreign_key_violation, as the foreign key did) and entries that, per journal, do not add
     up to zero in each currency (check_violation). Every journal balances after every
     statement, so a journal's entries are written in one statement (the service does: one
     COPY per post_many); appending a balanced set to a journal keeps it balanced.
   - SQLite: a BEFORE INSERT trigger refuses an entry whose journal is not in its tenant and
     mode; the balance is the service's check, as before. The table is rebuilt without the
     foreign key (batch mode), so its append-only triggers are created again.
2. A data migration: the journals of every finalized invoice, payment and refund that has none,
   exactly as ledger.bookkeeping.backfill posted them when this migration was written. That
   code is frozen below (`_backfill` and what it calls), so what this migration posts does not
   change as the service's code does: it reads the tables by SQL as they stand at this
   revision, builds the journals with its own copy of the share rules and the ledger's journal
   builders, and uses only aggregator.money's rounding (apply_rate, allocate, convert: the one
   rule every stored amount was rounded by) and aggregator.db's id and datetime column helpers.
   An empty database (a fresh install) has nothing to post.
   tests/integration/test_migration_0012.py holds the journals it must post for a history.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:00:00
"""
import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from aggregator import money
from aggregator.db import UTCDateTime, new_ordered_id

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_FK = 'fk_ledger_entries_tenant_id_ledger_journals'

_PG_CHECK = """
CREATE FUNCTION ledger_check_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    -- joined on the primary key alone, one lookup per journal (not per entry): a join on the
    -- tenant too may be planned along another index when the table's statistics are stale
    SELECT n.journal_id, n.tenant_id INTO off FROM (SELECT DISTINCT journal_id, tenant_id, livemode
                                                    FROM new_entries) n
    LEFT JOIN ledger_journals j ON j.id = n.journal_id
    WHERE j.id IS NULL OR j.tenant_id <> n.tenant_id OR j.livemode <> n.livemode LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger entry of journal % refused: no such journal in tenant % and its mode',
            off.journal_id, off.tenant_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    SELECT journal_id, currency, sum(amount) AS total INTO off FROM new_entries
    GROUP BY journal_id, currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger journal % does not balance: its % entries add up to % (minor units)',
            off.journal_id, off.currency, off.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$
"""

_SQLITE_IN_JOURNAL = """
CREATE TRIGGER ledger_entries_in_journal BEFORE INSERT ON ledger_entries
WHEN NOT EXISTS (SELECT 1 FROM ledger_journals j WHERE j.id = NEW.journal_id AND j.tenant_id = NEW.tenant_id
                 AND j.livemode = NEW.livemode)
BEGIN
    SELECT RAISE(ABORT, 'ledger entry refused: no such journal in its tenant and mode');
END
"""


def _sqlite_append_only():
    for operation in ('UPDATE', 'DELETE'):
        op.execute(f"CREATE TRIGGER ledger_entries_no_{operation.lower()} BEFORE {operation} ON ledger_entries "
                   f"BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: {operation} of ledger_entries refused "
                   "(post a correcting journal instead)'); END")


def upgrade():
    # the journal a close posted an invoice's finalization in (one per chunk of invoices); kept
    # by a downgrade, like the journals it points to (append-only), so an upgrade again does not
    # post those invoices a second time
    if 'finalized_journal_id' not in {c['name'] for c in sa.inspect(op.get_bind()).get_columns('invoices')}:
        with op.batch_alter_table('invoices', schema=None) as batch_op:
            batch_op.add_column(sa.Column('finalized_journal_id', sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER ledger_entries_balanced ON ledger_entries")
        op.execute("DROP FUNCTION ledger_check_balanced()")
        op.drop_constraint(_FK, 'ledger_entries', type_='foreignkey')
        op.execute(_PG_CHECK)
        op.execute("CREATE TRIGGER ledger_entries_checked AFTER INSERT ON ledger_entries "
                   "REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_check_entries()")
    else:
        with op.batch_alter_table('ledger_entries', recreate='always') as batch_op:
            batch_op.drop_constraint(_FK, type_='foreignkey')
        _sqlite_append_only()
        op.execute(_SQLITE_IN_JOURNAL)
    _backfill()


def _backfill():
    """The journals of what happened before (see the docstring), in this migration's transaction."""
    conn = op.get_bind()
    if not conn.execute(sa.text("SELECT 1 FROM invoices WHERE finalized_at IS NOT NULL LIMIT 1")).first():
        return
    _Backfill(conn).run()


# --- the backfill, frozen: ledger.bookkeeping.backfill and what it called, as of 2026-12-02 -------
#
# Per invoice, in the order it happened as far as the tables tell: finalized; its succeeded
# payments by creation (each applied up to what was left to pay); its succeeded refunds by
# settlement; then a write-off if it is uncollectible now (of what is unpaid now: the books come
# out as if every payment came before it), or the reversal if it is void. The rules are
# docs/money.md's (shares: "Who gets what"; journals: "The ledger"). A migration runs alone, so
# the payable locks the service takes are not taken here.

_invoices = sa.table(
    'invoices', sa.column('id'), sa.column('tenant_id'), sa.column('livemode', sa.Boolean()),
    sa.column('customer_id'), sa.column('period_start', sa.Date()), sa.column('status'), sa.column('currency'),
    sa.column('tax', sa.BigInteger()), sa.column('amount_due', sa.BigInteger()),
    sa.column('amount_paid', sa.BigInteger()), sa.column('fx_rates'), sa.column('finalized_journal_id'),
    sa.column('finalized_at', UTCDateTime(timezone=True)), sa.column('voided_at', UTCDateTime(timezone=True)))
_invoice_lines = sa.table(
    'invoice_lines', sa.column('invoice_id'), sa.column('position', sa.Integer()), sa.column('kind'),
    sa.column('bill_id'), sa.column('provider_id'), sa.column('amount', sa.BigInteger()),
    sa.column('original_amount', sa.BigInteger()), sa.column('original_currency'), sa.column('fx_rate'))
_bills = sa.table(
    'bills', sa.column('id'), sa.column('tenant_id'), sa.column('livemode', sa.Boolean()), sa.column('customer_id'),
    sa.column('provider_id'), sa.column('amount', sa.BigInteger()), sa.column('currency'),
    sa.column('period_start', sa.Date()), sa.column('status'), sa.column('revenue_share', sa.Boolean()))
_period_rates = sa.table(
    'period_rates', sa.column('tenant_id'), sa.column('livemode', sa.Boolean()), sa.column('period_start', sa.Date()),
    sa.column('provider_id'), sa.column('revenue_share_rate'))
_payments, _refunds = (sa.table(
    name, sa.column('id'), sa.column('tenant_id'), sa.column('livemode', sa.Boolean()), sa.column('invoice_id'),
    sa.column('status'), sa.column('amount', sa.BigInteger()), sa.column('currency'),
    sa.column('created_at', UTCDateTime(timezone=True)), sa.column('settled_at', UTCDateTime(timezone=True)))
    for name in ('payments', 'refunds'))
_journals = sa.table(
    'ledger_journals', sa.column('id'), sa.column('tenant_id'), sa.column('livemode', sa.Boolean()),
    sa.column('kind'), sa.column('object_type'), sa.column('object_id'), sa.column('memo'),
    sa.column('posted_at', UTCDateTime(timezone=True)))
_entries = sa.table(
    'ledger_entries', sa.column('id'), sa.column('journal_id'), sa.column('tenant_id'),
    sa.column('livemode', sa.Boolean()), sa.column('account'), sa.column('currency'),
    sa.column('amount', sa.BigInteger()))

_OBJECT_TYPES = {'invoice_finalized': 'invoice', 'invoice_voided': 'invoice', 'payment_received': 'payment',
                 'refund': 'refund', 'write_off': 'invoice'}


@dataclass(frozen=True)
class _Bill:
    """A bill as its invoice holds it: `amount` in its own `currency`, `invoiced` on the invoice
    line (the invoice currency), split into the platform's `fee` and the provider's `net`."""

    provider_id: str
    currency: str
    amount: int
    invoiced: int
    fee: int
    net: int


@dataclass(frozen=True)
class _Parts:
    """What an invoice is made of: its bills, its tax (>= 0) and its applied credit (<= 0)."""

    currency: str
    bills: tuple
    tax: int
    credit: int

    @property
    def subtotal(self):
        return sum(b.invoiced for b in self.bills) + self.credit

    @property
    def total(self):
        return max(self.subtotal, 0) + self.tax

    @property
    def carried(self):
        return max(-self.subtotal, 0)


@dataclass(frozen=True)
class _Share:
    """A provider's part in one currency: `net` to it, `fee` to the platform, `invoiced` what the
    customer was billed for it in the invoice currency."""

    provider_id: str
    currency: str
    net: int
    fee: int
    invoiced: int


@dataclass(frozen=True)
class _Collection:
    """What one bill (provider, currency, collected in the invoice currency, amount in its own,
    fee, net) of each of `bills`, the tax and the credit got of an amount collected."""

    bills: tuple
    tax: int
    credit: int


# shares (revenue/shares.py): pro rata collection, path independent

def _scaled(amount, numerator, denominator):
    if numerator == denominator:
        return amount
    return money.allocate(amount, [numerator, denominator - numerator])[0]


def _pro_rata(collected, parts):
    owed_by_negatives = _scaled(-sum(p for p in parts if p < 0), collected, sum(parts))
    positive = money.allocate(collected + owed_by_negatives, [max(p, 0) for p in parts])
    if not owed_by_negatives:
        return positive
    negative = money.allocate(owed_by_negatives, [max(-p, 0) for p in parts])
    return [p - n for p, n in zip(positive, negative)]


def _bill_share(bill, collected, fraction):
    if bill.invoiced:
        amount = _scaled(bill.amount, abs(collected), abs(bill.invoiced))
    else:
        amount = _scaled(bill.amount, *fraction)
    fee = money.allocate(amount, [abs(bill.fee), abs(bill.net)])[0] if amount else 0
    return (bill.provider_id, bill.currency, collected, amount, fee, amount - fee)


def _collected(parts, collected):
    total = parts.total
    if not 0 <= collected <= total:
        raise ValueError(f"collected {collected} is outside 0..{total}, the invoice's total")
    if total == 0:
        return _Collection(tuple(_bill_share(b, b.invoiced, (1, 1)) for b in parts.bills), parts.tax, parts.credit)
    amounts = _pro_rata(collected, [*(b.invoiced for b in parts.bills), parts.tax, parts.credit])
    return _Collection(tuple(_bill_share(b, a, (collected, total)) for b, a in zip(parts.bills, amounts)),
                       amounts[-2], amounts[-1])


def _difference(after, before):
    """What changed from `before` to `after`, negated: what a refund (`after` the lower amount
    collected) or a write-off (`after` what was paid, `before` the total) gives back, as (tax,
    shares summed per provider and currency, credit)."""
    sums = defaultdict(lambda: [0, 0, 0])
    for a, b in zip(after.bills, before.bills, strict=True):
        total = sums[a[0], a[1]]
        total[0] += b[5] - a[5]  # net
        total[1] += b[4] - a[4]  # fee
        total[2] += b[2] - a[2]  # collected (invoiced)
    return (before.tax - after.tax, tuple(_Share(p, c, *s) for (p, c), s in sorted(sums.items())),
            before.credit - after.credit)


# journals (ledger/journal.py): signed postings, debits positive, balanced per currency

def _party(code, party_id):
    return f"{code}:{party_id}"


def _is_payable(account):
    return account.startswith("provider_payable:")


def _journal(kind, postings):
    """One posting per account and currency in the order they first appear, zeros left out;
    refused unless it balances in each currency."""
    sums = {}
    for account, currency, amount in postings:
        sums[account, currency] = sums.get((account, currency), 0) + amount
    merged = [(account, currency, amount) for (account, currency), amount in sums.items() if amount]
    off = defaultdict(int)
    for _, currency, amount in merged:
        off[currency] += amount
    if any(off.values()):
        raise ValueError(f"A {kind} journal does not balance: {dict(off)}.")
    return merged


def _shares(invoice_currency, shares, sign, owed=None):
    """Each share's net to its provider (a debit beyond what it is `owed` to its clawback), its
    fee to the platform, through fx when billed in another currency."""
    left = dict(owed) if owed is not None else None
    sums = defaultdict(int)
    platform = 'platform_revenue' if sign < 0 else 'refunds'
    for share in shares:
        amount, payable = sign * share.net, _party('provider_payable', share.provider_id)
        if left is None or amount <= 0:
            sums[payable, share.currency] += amount
        else:
            key = (share.provider_id, share.currency)
            from_payable = min(amount, max(left.get(key, 0), 0))
            left[key] = left.get(key, 0) - from_payable
            sums[payable, share.currency] += from_payable
            sums[_party('provider_clawback', share.provider_id), share.currency] += amount - from_payable
        sums[platform, share.currency] += sign * share.fee
        if share.currency != invoice_currency:
            sums['fx', share.currency] -= sign * (share.net + share.fee)
            sums['fx', invoice_currency] += sign * share.invoiced
        elif share.invoiced != share.net + share.fee:
            raise ValueError(f"A share in the invoice's currency is invoiced {share.invoiced}, not its net + fee.")
    return [(account, currency, amount) for (account, currency), amount in sums.items() if amount]


def _invoice_finalized(customer_id, parts, owed=None):
    currency, credit = parts.currency, -parts.credit
    postings = [('receivable', currency, parts.total), ('tax_payable', currency, -parts.tax)]
    if credit:
        postings.append((_party('customer_credit', customer_id), currency, credit))
    if parts.carried:
        postings.append((_party('customer_credit', customer_id), currency, -parts.carried))
    return _journal('invoice_finalized', postings + _shares(currency, _provider_shares(parts), -1, owed))


def _given_back(kind, source, currency, amount, given, owed):
    """A refund's or write-off's journal: `source` credited `amount`, its parts debited back."""
    tax, shares, credit = given
    if tax + sum(s.invoiced for s in shares) + credit != amount:
        raise ValueError(f"{kind} of {amount}: its tax, shares and credit do not add up to it.")
    return _journal(kind, [(source, currency, -amount), ('tax_payable', currency, tax),
                           *_shares(currency, shares, +1, owed), ('refunds', currency, credit)])


def _provider_shares(parts):
    sums = defaultdict(lambda: [0, 0, 0])
    for bill in parts.bills:
        total = sums[bill.provider_id, bill.currency]
        total[0] += bill.net
        total[1] += bill.fee
        total[2] += bill.invoiced
    return tuple(_Share(p, c, *s) for (p, c), s in sorted(sums.items()))


class _Backfill:
    """ledger.bookkeeping.backfill on this migration's connection."""

    def __init__(self, conn):
        self.conn = conn
        self.parts = {}

    def run(self):
        conn, i = self.conn, _invoices.c
        posted = set(conn.execute(sa.select(_journals.c.kind, _journals.c.object_id)).all())
        invoices = conn.execute(sa.select(_invoices).where(i.finalized_at.is_not(None))
                                .order_by(i.tenant_id, i.livemode, i.id)).all()
        for invoice in invoices:
            scope = (invoice.tenant_id, invoice.livemode)
            if ('invoice_finalized', invoice.id) not in posted and invoice.finalized_journal_id is None:
                self._post_finalized(invoice)
            p = _payments.c
            paid = 0
            for payment in conn.execute(sa.select(_payments).where(p.invoice_id == invoice.id, p.status == 'succeeded')
                                        .order_by(p.created_at, p.id)).all():
                if ('payment_received', payment.id) not in posted:
                    applied = max(min(payment.amount, invoice.amount_due - paid), 0)
                    postings = [('cash', payment.currency, payment.amount),
                                ('receivable', payment.currency, -applied)]
                    if payment.amount > applied:
                        postings.append((_party('customer_credit', invoice.customer_id), payment.currency,
                                         applied - payment.amount))
                    self._post(scope, 'payment_received', payment.id, _journal('payment_received', postings),
                               payment.settled_at or payment.created_at)
                paid = min(paid + payment.amount, invoice.amount_due)
            collected = min(invoice.amount_paid, invoice.amount_due)
            r = _refunds.c
            for refund in conn.execute(sa.select(_refunds).where(r.invoice_id == invoice.id, r.status == 'succeeded')
                                       .order_by(r.settled_at, r.id)).all():
                if ('refund', refund.id) not in posted:
                    parts = self._parts_of(invoice)
                    if not 0 <= refund.amount <= collected:
                        raise ValueError(f"refunded {refund.amount} is outside 0..{collected}, what was collected")
                    given = _difference(_collected(parts, collected - refund.amount), _collected(parts, collected))
                    self._post(scope, 'refund', refund.id, _given_back(
                        'refund', 'cash', refund.currency, refund.amount, given, self._owed_to(scope, given)),
                        refund.settled_at or refund.created_at)
                collected -= refund.amount
            if invoice.status == 'uncollectible' and ('write_off', invoice.id) not in posted:
                self._post_write_off(invoice)
            if invoice.status == 'void' and ('invoice_voided', invoice.id) not in posted:
                self._post_voided(invoice)

    # what was posted of an invoice

    def _post_finalized(self, invoice):
        """invoice_finalized: a provider's credit bills are taken from what it is owed (its credits
        in this journal, then its payable), beyond that from its clawback account."""
        scope, shares = (invoice.tenant_id, invoice.livemode), _provider_shares(self._parts_of(invoice))
        credits, debits = defaultdict(int), defaultdict(int)
        for share in shares:
            (credits if share.net > 0 else debits)[share.provider_id, share.currency] += abs(share.net)
        owed = None
        if debits:
            owed = dict(credits)
            short = [key for key, amount in debits.items() if amount > credits.get(key, 0)]
            for key, amount in self._owed(scope, short).items():
                owed[key] = owed.get(key, 0) + amount
        if not any(share.net < 0 for share in shares):
            owed = None
        self._post(scope, 'invoice_finalized', invoice.id,
                   _invoice_finalized(invoice.customer_id, self._parts_of(invoice), owed), invoice.finalized_at)

    def _post_write_off(self, invoice):
        """write_off of what an uncollectible invoice did not collect: its shares at its total less
        those at what was paid."""
        total, paid = invoice.amount_due, min(invoice.amount_paid, invoice.amount_due)
        if total == paid:
            return
        parts = self._parts_of(invoice)
        given = _difference(_collected(parts, paid), _collected(parts, total))
        scope = (invoice.tenant_id, invoice.livemode)
        self._post(scope, 'write_off', invoice.id, _given_back(
            'write_off', 'receivable', invoice.currency, total - paid, given, self._owed_to(scope, given)),
            invoice.finalized_at)

    def _post_voided(self, invoice):
        """invoice_voided: the reversal of its finalized journal (rebuilt from its parts when a close
        finalized it in its chunk's journal) and of its write-off, a provider's payable debited only
        down to what it is owed, the rest to its clawback account."""
        scope = (invoice.tenant_id, invoice.livemode)
        e, j = _entries.c, _journals.c
        posted = defaultdict(list)
        for kind, account, currency, amount in self.conn.execute(
                sa.select(j.kind, e.account, e.currency, e.amount).join(_entries, e.journal_id == j.id)
                .where(j.tenant_id == invoice.tenant_id, j.livemode == invoice.livemode, j.object_id == invoice.id)
                .order_by(e.id)):
            posted[kind].append((account, currency, amount))
        finalized = posted.get('invoice_finalized')
        if finalized is None and invoice.finalized_journal_id is not None:
            finalized = _invoice_finalized(invoice.customer_id, self._parts_of(invoice))
        if finalized is None:
            return
        reversal = _journal('invoice_voided', [(account, currency, -amount) for account, currency, amount
                                               in finalized + posted.get('write_off', [])])
        debits = defaultdict(int)
        for account, currency, amount in reversal:
            if amount > 0 and _is_payable(account):
                debits[account.partition(':')[2], currency] += amount
        if debits:
            left, within = self._owed(scope, list(debits)), []
            for account, currency, amount in reversal:
                if amount > 0 and _is_payable(account):
                    provider_id = account.partition(':')[2]
                    take = min(amount, max(left.get((provider_id, currency), 0), 0))
                    left[provider_id, currency] = left.get((provider_id, currency), 0) - take
                    within += [(account, currency, take),
                               (_party('provider_clawback', provider_id), currency, amount - take)]
                else:
                    within.append((account, currency, amount))
            reversal = _journal('invoice_voided', within)
        self._post(scope, 'invoice_voided', invoice.id, reversal, invoice.voided_at or invoice.finalized_at)

    # what an invoice is made of (payouts.collections.invoice_parts_of)

    def _parts_of(self, invoice):
        if invoice.id not in self.parts:
            self.parts[invoice.id] = self._read_parts(invoice)
        return self.parts[invoice.id]

    def _read_parts(self, invoice):
        """Its bill lines as the invoice shows them (a void invoice's stored snapshot; otherwise its
        customer's pending bills of its period, in provider order, converted at the rates recorded
        on it), then its stored credit lines; each bill split at its period's recorded rate."""
        conn, currency, ln = self.conn, invoice.currency, _invoice_lines.c
        lines = []  # (kind, amount, bill id, provider id, original amount, original currency)
        if invoice.status != 'void':
            b = _bills.c
            rates = {base: Decimal(rate) for base, rate in json.loads(invoice.fx_rates).items()} \
                if invoice.fx_rates else {}
            rows = conn.execute(sa.select(b.id, b.provider_id, b.amount, b.currency).where(
                b.tenant_id == invoice.tenant_id, b.livemode == invoice.livemode,
                b.period_start == invoice.period_start, b.status == 'pending',
                b.customer_id == invoice.customer_id)).all()
            missing = {row.currency for row in rows if row.currency != currency and row.currency not in rates}
            if missing:
                raise ValueError(f"invoice {invoice.id}: no recorded rate from {sorted(missing)} to {currency}")
            for row in sorted(rows, key=lambda row: (row.provider_id, row.id)):
                if row.currency == currency:
                    lines.append(('bill', row.amount, row.id, row.provider_id, None, None))
                else:
                    lines.append(('bill', money.convert(row.amount, row.currency, currency, rates[row.currency]),
                                  row.id, row.provider_id, row.amount, row.currency))
        for row in conn.execute(sa.select(ln.kind, ln.amount, ln.bill_id, ln.provider_id, ln.original_amount,
                                          ln.original_currency).where(ln.invoice_id == invoice.id)
                                .order_by(ln.position)).all():
            if invoice.status == 'void' or row.kind == 'credit':
                lines.append(tuple(row))
        bill_ids = sorted({line[2] for line in lines if line[2] is not None})
        b, pr = _bills.c, _period_rates.c
        revenue_share = dict(conn.execute(sa.select(b.id, b.revenue_share).where(b.id.in_(bill_ids))).all()) \
            if bill_ids else {}
        rates = {provider_id: Decimal(rate) for provider_id, rate in conn.execute(
            sa.select(pr.provider_id, pr.revenue_share_rate).where(
                pr.tenant_id == invoice.tenant_id, pr.livemode == invoice.livemode,
                pr.period_start == invoice.period_start))}
        bills, credit = [], 0
        for kind, amount, bill_id, provider_id, original_amount, original_currency in lines:
            if kind == 'credit':
                credit += amount
                continue
            if bill_id is None or provider_id is None:
                raise ValueError(f"a {kind} line without its bill or provider cannot be paid out")
            own = amount if original_amount is None else original_amount
            rate = rates[provider_id]
            if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
                raise ValueError(f"A revenue-share rate is a decimal between 0 and 1, not {rate!r}.")
            fee = money.apply_rate(own, rate) if revenue_share[bill_id] else 0
            bills.append(_Bill(provider_id, original_currency or currency, own, amount, fee, own - fee))
        parts = _Parts(currency, tuple(bills), invoice.tax, credit)
        if parts.tax < 0 or parts.credit > 0 or (parts.tax and parts.subtotal <= 0):
            raise ValueError("an invoice's tax is >= 0 (0 on a subtotal <= 0) and its applied credit <= 0")
        return parts

    # the books

    def _owed(self, scope, providers):
        """(provider id, currency) -> what the platform owes it now (its payable's credit balance)."""
        if not providers:
            return {}
        accounts = {(_party('provider_payable', p), c): (p, c) for p, c in providers}
        return {accounts[key]: -balance for key, balance in self._balances(scope, list(accounts)).items()}

    def _owed_to(self, scope, given):
        """What is owed to the providers a refund or write-off takes a net from."""
        return self._owed(scope, [(s.provider_id, s.currency) for s in given[1] if s.net > 0])

    def _balances(self, scope, accounts):
        e = _entries.c
        balances = {key: 0 for key in accounts}
        for account, currency, total in self.conn.execute(
                sa.select(e.account, e.currency, sa.func.sum(e.amount))
                .where(e.tenant_id == scope[0], e.livemode == scope[1],
                       e.account.in_(sorted({account for account, _ in accounts})))
                .group_by(e.account, e.currency)):
            if (account, currency) in balances:
                balances[account, currency] = int(total)
        return balances

    def _post(self, scope, kind, object_id, postings, posted_at):
        """Write a journal, refused if it would leave a provider's payable with a debit balance."""
        change = defaultdict(int)
        for account, currency, amount in postings:
            if _is_payable(account):
                change[account, currency] += amount
        debited = sorted(key for key, amount in change.items() if amount > 0)
        for (account, currency), balance in self._balances(scope, debited).items():
            if balance + change[account, currency] > 0:
                raise ValueError(f"{account} would owe the platform {balance + change[account, currency]} "
                                 f"(minor units of {currency})")
        journal_id = new_ordered_id('jrn')
        tenant_id, livemode = scope
        self.conn.execute(sa.insert(_journals).values(
            id=journal_id, tenant_id=tenant_id, livemode=livemode, kind=kind, object_type=_OBJECT_TYPES[kind],
            object_id=object_id, memo=None, posted_at=posted_at))
        self.conn.execute(sa.insert(_entries).values([  # one statement: PostgreSQL checks its balance
            {'journal_id': journal_id, 'tenant_id': tenant_id, 'livemode': livemode, 'account': account,
             'currency': currency, 'amount': amount} for account, currency, amount in postings]))


def downgrade():
    # the journals posted stay (the ledger is append-only), and so does invoices.finalized_journal_id
    # (which of them finalized each invoice); the checks go back to 0009's
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER ledger_entries_checked ON ledger_entries")
        op.execute("DROP FUNCTION ledger_check_entries()")
        op.create_foreign_key(_FK, 'ledger_entries', 'ledger_journals', ['tenant_id', 'livemode', 'journal_id'],
                              ['tenant_id', 'livemode', 'id'])
        op.execute("""
CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT currency, sum(amount) AS total INTO off FROM ledger_entries
    WHERE journal_id = NEW.journal_id GROUP BY currency HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'ledger journal % does not balance: its % entries add up to % (minor units)',
            NEW.journal_id, off.currency, off.total USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END
$$
""")
        op.execute("CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
                   "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()")
    else:
        op.execute("DROP TRIGGER ledger_entries_in_journal")
        with op.batch_alter_table('ledger_entries', recreate='always') as batch_op:
            batch_op.create_foreign_key(_FK, 'ledger_journals', ['tenant_id', 'livemode', 'journal_id'],
                                        ['tenant_id', 'livemode', 'id'])
        _sqlite_append_only()
