"""ledger: journals and their entries, append-only and balanced by the database

- ledger_journals: one per movement of money of one object (unique per tenant, mode, kind and
  object); ledger_entries: its signed postings (debit > 0, credit < 0), in the journal's tenant
  and mode (composite foreign key), never zero.
- Append-only on both databases: triggers refuse an UPDATE or DELETE of a journal or an entry
  (and, on PostgreSQL, a TRUNCATE). SQLite's batch mode recreates a table and loses its
  triggers: a later migration that alters these tables with batch_alter_table must create them
  again (`_sqlite_append_only`).
- Balanced on PostgreSQL: a deferred constraint trigger checks at COMMIT that each journal an
  inserted entry belongs to adds up to zero per currency. SQLite has no deferred triggers: the
  service checks every journal before it inserts it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 11:00:00
"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

TABLES = ('ledger_journals', 'ledger_entries')

_PG_REFUSE = """
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % of % refused (post a correcting journal instead)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation';
END
$$
"""

_PG_BALANCED = """
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
"""


def upgrade():
    op.create_table('ledger_journals',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('object_type', sa.String(length=16), nullable=False),
    sa.Column('object_id', sa.String(length=40), nullable=False),
    sa.Column('memo', sa.String(length=500), nullable=True),
    sa.Column('posted_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_ledger_journals_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_journals')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'id', name=op.f('uq_ledger_journals_tenant_id_livemode_id')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'kind', 'object_id',
                        name=op.f('uq_ledger_journals_tenant_id_livemode_kind_object_id'))
    )
    with op.batch_alter_table('ledger_journals', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_journals_object', ['tenant_id', 'livemode', 'object_id'], unique=False)
        batch_op.create_index('ix_ledger_journals_posted', ['tenant_id', 'livemode', 'posted_at'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('journal_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('account', sa.String(length=80), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_entries_not_zero')),
    sa.ForeignKeyConstraint(['tenant_id', 'livemode', 'journal_id'],
                            ['ledger_journals.tenant_id', 'ledger_journals.livemode', 'ledger_journals.id'],
                            name=op.f('fk_ledger_entries_tenant_id_ledger_journals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_journal', ['journal_id'], unique=False)
        batch_op.create_index('ix_ledger_entries_balance', ['tenant_id', 'livemode', 'account', 'currency'],
                              unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        _postgres_append_only_and_balanced()
    else:
        _sqlite_append_only()


def _postgres_append_only_and_balanced():
    op.execute(_PG_REFUSE)
    for table in TABLES:
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   "FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()")
        op.execute(f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()")
    op.execute(_PG_BALANCED)
    op.execute("CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries "
               "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()")


def _sqlite_append_only():
    for table in TABLES:
        for operation in ('UPDATE', 'DELETE'):
            op.execute(f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} BEGIN "
                       f"SELECT RAISE(ABORT, 'the ledger is append-only: {operation} of {table} refused "
                       "(post a correcting journal instead)'); END")


def downgrade():
    # DROP TABLE takes the triggers with it; the functions are PostgreSQL's own objects
    op.drop_table('ledger_entries')
    op.drop_table('ledger_journals')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP FUNCTION ledger_check_balanced()")
        op.execute("DROP FUNCTION ledger_refuse_change()")
