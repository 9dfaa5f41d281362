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
2. A data migration: the journals of every finalized invoice, payment and refund that has none
   (`_backfill_journals` below, run with this migration's connection: it reads the tables and
   hands each journal's amounts, as the fact the transition would publish today, straight to the
   ledger's handler). It reads the tables through today's models, so it runs only when there is
   something to post: an empty database (a fresh install) never touches them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:00:00
"""
from alembic import op
import sqlalchemy as sa


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
    bind = op.get_bind()
    if not bind.execute(sa.text("SELECT 1 FROM invoices WHERE finalized_at IS NOT NULL LIMIT 1")).first():
        return
    from sqlalchemy.orm import Session

    from aggregator.db import db

    session = Session(bind=bind)
    db.session.registry.set(session)  # the service code's db.session is this connection's, for now
    try:
        _backfill_journals()
        session.flush()
    finally:
        session.close()
        db.session.registry.clear()


def _backfill_journals() -> int:
    """Post the journals of every invoice, payment and refund that has none (what happened before
    the transitions posted them), per invoice in the order it happened as far as the tables tell:
    finalized; its succeeded payments by creation (each applied up to what was left to pay);
    its succeeded refunds by settlement; then a write-off if it is uncollectible now (of what is
    unpaid now: the books come out as if every payment came before it), or the reversal if it is
    void. -> how many journals were posted. In the caller's transaction; the ledger's handlers
    are called directly (not through the bus: nothing else is to happen again)."""
    from aggregator.consolidate.facts import (FinalizedInvoice, InvoicesFinalized, InvoiceVoided,
                                              InvoiceWrittenOff)
    from aggregator.consolidate.lines import invoice_parts_of
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db
    from aggregator.ledger import handlers
    from aggregator.ledger.models import LedgerJournal
    from aggregator.payments.facts import PaidInvoice, PaymentsSucceeded, RefundSucceeded, SucceededPayment
    from aggregator.payments.models import Payment, Refund

    posted = set(db.session.execute(sa.select(LedgerJournal.kind, LedgerJournal.object_id)).all())
    count = 0
    invoices = db.session.scalars(sa.select(Invoice).where(Invoice.finalized_at.is_not(None))
                                  .order_by(Invoice.tenant_id, Invoice.livemode, Invoice.id)).unique().all()
    for invoice in invoices:
        lane = (invoice.tenant_id, invoice.livemode)
        if ("invoice_finalized", invoice.id) not in posted and invoice.finalized_journal_id is None:
            handlers.post_finalized(InvoicesFinalized(*lane, (FinalizedInvoice.of(
                invoice.id, invoice.customer_id, invoice_parts_of(invoice)),), invoice.finalized_at))
            count += 1
        payments = db.session.scalars(sa.select(Payment).where(
            Payment.invoice_id == invoice.id, Payment.status == "succeeded")
            .order_by(Payment.created_at, Payment.id)).all()
        paid = 0
        for payment in payments:
            if ("payment_received", payment.id) not in posted:  # no recovery: the write-off comes after
                handlers.post_payments(PaymentsSucceeded(
                    *lane, (SucceededPayment(payment.id, invoice.id, payment.currency, payment.amount),),
                    (PaidInvoice(invoice.id, invoice.customer_id, invoice.amount_due, paid),),
                    payment.settled_at or payment.created_at))
                count += 1
            paid = min(paid + payment.amount, invoice.amount_due)
        collected = min(invoice.amount_paid, invoice.amount_due)
        for refund in db.session.scalars(sa.select(Refund).where(
                Refund.invoice_id == invoice.id, Refund.status == "succeeded")
                .order_by(Refund.settled_at, Refund.id)).all():
            if ("refund", refund.id) not in posted:
                handlers.post_refund(RefundSucceeded(*lane, refund.id, refund.currency, refund.amount, invoice.id,
                                                     collected, invoice_parts_of(invoice),
                                                     refund.settled_at or refund.created_at))
                count += 1
            collected -= refund.amount
        if invoice.status == "uncollectible" and ("write_off", invoice.id) not in posted:
            handlers.post_write_off(InvoiceWrittenOff(
                *lane, invoice.id, invoice.currency, invoice.amount_due, invoice.amount_paid,
                invoice_parts_of(invoice) if invoice.amount_paid < invoice.amount_due else None,
                invoice.finalized_at))
            count += 1
        if invoice.status == "void" and ("invoice_voided", invoice.id) not in posted:
            handlers.post_voided(InvoiceVoided(
                *lane, invoice.id, FinalizedInvoice.of(invoice.id, invoice.customer_id, invoice_parts_of(invoice))
                if invoice.finalized_journal_id else None, invoice.voided_at or invoice.finalized_at))
            count += 1
    return count


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
