"""usage exports: one row per closed period with usage, queued by the close and written to the
storage directory (exports/usage/<tenant>/<mode>/<period>.csv and .parquet) by a worker

Revision ID: 0019_usage_exports
Revises: 0018
Create Date: 2026-12-07 21:00:00

"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0019_usage_exports'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('usage_exports',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
    sa.Column('retry_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('written_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('rows', sa.BigInteger(), nullable=True),
    sa.Column('csv_path', sa.String(length=300), nullable=True),
    sa.Column('parquet_path', sa.String(length=300), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_exports')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'period_start', name='uq_usage_exports_period')
    )
    op.create_index('ix_usage_exports_written', 'usage_exports', ['written_at'], unique=False)


def downgrade():
    op.drop_index('ix_usage_exports_written', table_name='usage_exports')
    op.drop_table('usage_exports')
