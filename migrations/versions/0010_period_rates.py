"""period_rates: each provider's revenue-share rate as it was when a period was invoiced

Recorded when a period starts closing, one row per provider and period, so a later change of a
provider's rate never rewrites what the bills of a closed period owe. Periods closed before this
migration get their providers' rates as they are now (the rate they were invoiced on was not
kept until now: the closest record there is).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 11:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'period_rates',
        sa.Column('tenant_id', sa.String(length=40), nullable=False),
        sa.Column('livemode', sa.Boolean(), nullable=False),
        sa.Column('period_start', sa.Date(), nullable=False),
        sa.Column('provider_id', sa.String(length=40), nullable=False),
        sa.Column('revenue_share_rate', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['tenant_id', 'livemode', 'provider_id'],
                                ['providers.tenant_id', 'providers.livemode', 'providers.id'],
                                name=op.f('fk_period_rates_tenant_id_providers')),
        sa.PrimaryKeyConstraint('tenant_id', 'livemode', 'period_start', 'provider_id',
                                name=op.f('pk_period_rates')),
    )
    op.execute("INSERT INTO period_rates (tenant_id, livemode, period_start, provider_id, revenue_share_rate) "
               "SELECT p.tenant_id, p.livemode, r.start, p.id, p.revenue_share_rate FROM periods r "
               "JOIN providers p ON p.tenant_id = r.tenant_id AND p.livemode = r.livemode "
               "WHERE r.status IN ('closing', 'closed')")


def downgrade():
    op.drop_table('period_rates')
