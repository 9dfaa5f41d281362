"""credit notes: credit_notes (numbered per tenant, mode and year from credit_note_sequences,
gapless), credit_note_lines; refunds.credit_note_id (the credit note a refund settles);
credits.source_credit_note_id (a credit note settled to the customer's balance: one credit
each, so an invoice's one-credit rule holds only for the other kinds)

Revision ID: 0021_credit_notes
Revises: 0020
Create Date: 2026-12-07 23:40:00

"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0021_credit_notes'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('credit_note_sequences',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('next_number', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_credit_note_sequences_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'livemode', 'year', name=op.f('pk_credit_note_sequences'))
    )
    op.create_table('credit_notes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('number', sa.String(length=48), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('memo', sa.String(length=500), nullable=True),
    sa.Column('settlement', sa.String(length=16), nullable=False),
    sa.Column('subtotal', sa.BigInteger(), nullable=False),
    sa.Column('tax', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('refund_id', sa.String(length=40), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('pdf_path', sa.String(length=500), nullable=True),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=True),
    sa.Column('pdf_error', sa.String(length=500), nullable=True),
    sa.Column('template', sa.String(length=40), nullable=False),
    sa.CheckConstraint("settlement IN ('refund', 'customer_balance', 'reduce_due')",
                       name=op.f('ck_credit_notes_settlement')),
    sa.CheckConstraint('subtotal >= 0 AND tax >= 0 AND total = subtotal + tax AND total > 0',
                       name=op.f('ck_credit_notes_amounts')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_credit_notes_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_credit_notes_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_credit_notes_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_notes')),
    sa.UniqueConstraint('refund_id', name=op.f('uq_credit_notes_refund_id')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'number', name=op.f('uq_credit_notes_tenant_id_livemode_number')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'idempotency_key',
                        name=op.f('uq_credit_notes_tenant_id_livemode_idempotency_key'))
    )
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.create_index('ix_credit_notes_invoice', ['invoice_id', 'id'], unique=False)
        batch_op.create_index('ix_credit_notes_scope', ['tenant_id', 'livemode', 'id'], unique=False)

    op.create_table('credit_note_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('credit_note_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('bill_id', sa.String(length=40), nullable=True),
    sa.Column('provider_id', sa.String(length=40), nullable=True),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_credit_note_lines_positive')),
    sa.ForeignKeyConstraint(['credit_note_id'], ['credit_notes.id'],
                            name=op.f('fk_credit_note_lines_credit_note_id_credit_notes')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_note_lines'))
    )
    with op.batch_alter_table('credit_note_lines', schema=None) as batch_op:
        batch_op.create_index('ix_credit_note_lines_bill', ['bill_id'], unique=False)
        batch_op.create_index('ix_credit_note_lines_note', ['credit_note_id', 'position'], unique=False)

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credit_note_id', sa.String(length=40), nullable=True))
        batch_op.create_unique_constraint(op.f('uq_refunds_credit_note_id'), ['credit_note_id'])

    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('source_credit_note_id', sa.String(length=40), nullable=True))
        batch_op.drop_constraint(op.f('uq_credits_source_invoice_id'), type_='unique')
        batch_op.create_unique_constraint(op.f('uq_credits_source_credit_note_id'), ['source_credit_note_id'])
        batch_op.create_index('ux_credits_source_invoice', ['source_invoice_id'], unique=True,
                              postgresql_where=sa.text('source_credit_note_id IS NULL'),
                              sqlite_where=sa.text('source_credit_note_id IS NULL'))


def downgrade():
    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.drop_index('ux_credits_source_invoice', postgresql_where=sa.text('source_credit_note_id IS NULL'),
                            sqlite_where=sa.text('source_credit_note_id IS NULL'))
        batch_op.drop_constraint(op.f('uq_credits_source_credit_note_id'), type_='unique')
        batch_op.create_unique_constraint(op.f('uq_credits_source_invoice_id'), ['source_invoice_id'])
        batch_op.drop_column('source_credit_note_id')

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_refunds_credit_note_id'), type_='unique')
        batch_op.drop_column('credit_note_id')

    with op.batch_alter_table('credit_note_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_note_lines_note')
        batch_op.drop_index('ix_credit_note_lines_bill')
    op.drop_table('credit_note_lines')
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_notes_scope')
        batch_op.drop_index('ix_credit_notes_invoice')
    op.drop_table('credit_notes')
    op.drop_table('credit_note_sequences')
