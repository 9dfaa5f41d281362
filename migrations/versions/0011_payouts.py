"""payouts: runs (one per payout day), their sources (what each payment, refund or settled
invoice pays out, once), payouts (one per provider and currency) and balances brought forward;
tenants' payout_day and payout_auto_approve; providers' Stripe Connect account

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:51:44
"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('payout_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('payout_date', sa.Date(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('due_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_payout_runs_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_runs')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'payout_date',
                        name=op.f('uq_payout_runs_tenant_id_livemode_payout_date'))
    )
    op.create_table('payouts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('provider_id', sa.String(length=40), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('line_count', sa.Integer(), nullable=False),
    sa.Column('gross', sa.BigInteger(), nullable=False),
    sa.Column('revenue_share_gross', sa.BigInteger(), nullable=False),
    sa.Column('pass_through_gross', sa.BigInteger(), nullable=False),
    sa.Column('fee', sa.BigInteger(), nullable=False),
    sa.Column('credits', sa.BigInteger(), nullable=False),
    sa.Column('clawback', sa.BigInteger(), nullable=False),
    sa.Column('net', sa.BigInteger(), nullable=False),
    sa.Column('brought_forward', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('carry', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('stripe_account_id', sa.String(length=255), nullable=True),
    sa.Column('source_transaction', sa.String(length=255), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('stripe_transfer_id', sa.String(length=255), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('requests', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('send_after', UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('failure_message', sa.String(length=1000), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('approved_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=100), nullable=True),
    sa.Column('paid_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('failed_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('canceled_at', UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("method IN ('stripe', 'bank_transfer', 'none')", name=op.f('ck_payouts_method')),
    sa.CheckConstraint("status IN ('pending_review', 'approved', 'paid', 'failed', 'canceled')",
                       name=op.f('ck_payouts_status')),
    sa.CheckConstraint('amount >= 0 AND carry <= 0 AND amount + carry = net + brought_forward',
                       name=op.f('ck_payouts_payout_sum')),
    sa.ForeignKeyConstraint(['run_id'], ['payout_runs.id'], name=op.f('fk_payouts_run_id_payout_runs')),
    sa.ForeignKeyConstraint(['tenant_id', 'livemode', 'provider_id'], 
                            ['providers.tenant_id', 'providers.livemode', 'providers.id'],
                            name=op.f('fk_payouts_tenant_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payouts')),
    sa.UniqueConstraint('run_id', 'provider_id', 'currency', name=op.f('uq_payouts_run_id_provider_id_currency')),
    sa.UniqueConstraint('stripe_transfer_id', name=op.f('uq_payouts_stripe_transfer_id'))
    )
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.create_index('ix_payouts_provider', ['tenant_id', 'livemode', 'provider_id', 'currency', 'created_at'],
                              unique=False)

    op.create_table('payout_carries',
    sa.Column('from_payout_id', sa.String(length=40), nullable=False),
    sa.Column('into_payout_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['from_payout_id'], ['payouts.id'], name=op.f('fk_payout_carries_from_payout_id_payouts')),
    sa.ForeignKeyConstraint(['into_payout_id'], ['payouts.id'], name=op.f('fk_payout_carries_into_payout_id_payouts')),
    sa.PrimaryKeyConstraint('from_payout_id', name=op.f('pk_payout_carries'))
    )
    with op.batch_alter_table('payout_carries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_carries_into_payout_id'), ['into_payout_id'], unique=False)

    op.create_table('payout_sources',
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('collected_before', sa.BigInteger(), nullable=False),
    sa.Column('at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('stripe_charge_id', sa.String(length=255), nullable=True),
    sa.CheckConstraint("kind IN ('payment', 'refund', 'settled')", name=op.f('ck_payout_sources_kind')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_payout_sources_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['run_id'], ['payout_runs.id'], name=op.f('fk_payout_sources_run_id_payout_runs')),
    sa.PrimaryKeyConstraint('source_id', name=op.f('pk_payout_sources'))
    )
    with op.batch_alter_table('payout_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_sources_invoice_id'), ['invoice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_sources_run_id'), ['run_id'], unique=False)

    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_account_id', sa.String(length=255), nullable=True))

    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payout_day', sa.SmallInteger(), server_default='10', nullable=False))
        batch_op.add_column(sa.Column('payout_auto_approve', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_check_constraint(op.f('ck_tenant_settings_payout_day'), 'payout_day BETWEEN 1 AND 28')



def downgrade():
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tenant_settings_payout_day'), type_='check')
        batch_op.drop_column('payout_auto_approve')
        batch_op.drop_column('payout_day')

    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_column('stripe_account_id')

    with op.batch_alter_table('payout_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_sources_run_id'))
        batch_op.drop_index(batch_op.f('ix_payout_sources_invoice_id'))

    op.drop_table('payout_sources')
    with op.batch_alter_table('payout_carries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_carries_into_payout_id'))

    op.drop_table('payout_carries')
    with op.batch_alter_table('payouts', schema=None) as batch_op:
        batch_op.drop_index('ix_payouts_provider')

    op.drop_table('payouts')
    op.drop_table('payout_runs')
