"""metering: meters and usage components (catalog); usage events (partitioned by period on
PostgreSQL, a partition a month created as events arrive), their hourly rollups, unique values,
thresholds reached and usage charges

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 20:20:00

"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('meters',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('code', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit', sa.String(length=40), nullable=False),
    sa.Column('field', sa.String(length=100), nullable=True),
    sa.Column('aggregation', sa.String(length=16), nullable=False),
    sa.Column('reset', sa.String(length=8), nullable=False),
    sa.Column('decimals', sa.SmallInteger(), nullable=False),
    sa.Column('dimensions', sa.JSON(), nullable=False),
    sa.Column('first_event_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("aggregation IN ('count', 'sum', 'max', 'latest', 'unique_count', 'time_weighted', "
                       "'hourly_max')", name=op.f('ck_meters_aggregation')),
    sa.CheckConstraint("reset IN ('period', 'never')", name=op.f('ck_meters_reset')),
    sa.CheckConstraint('decimals BETWEEN 0 AND 9', name=op.f('ck_meters_decimals')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_meters_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'code', name=op.f('uq_meters_tenant_id_livemode_code'))
    )
    op.create_table('usage_components',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('fee_id', sa.String(length=40), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('dimension', sa.JSON(), nullable=False),
    sa.Column('pricing', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('parent_component_id', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['fee_id'], ['plan_fees.id'], name=op.f('fk_usage_components_fee_id_plan_fees')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_usage_components_meter_id_meters')),
    sa.ForeignKeyConstraint(['parent_component_id'], ['usage_components.id'],
                            name=op.f('fk_usage_components_parent_component_id_usage_components')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_components')),
    sa.UniqueConstraint('fee_id', 'position', name=op.f('uq_usage_components_fee_id_position'))
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table('usage_events',
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('provider_id', sa.String(length=40), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('meter_id', sa.String(length=40), nullable=False),
    sa.Column('timestamp', UTCDateTime(timezone=True), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('dims', sa.String(length=500), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=False),
    sa.Column('fingerprint', sa.LargeBinary(length=32), nullable=False),
    sa.Column('received_at', UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('period_start', 'provider_id', 'event_id', name=op.f('pk_usage_events')),
    # partitions are created a month at a time as events arrive (metering.store)
    **({"postgresql_partition_by": "RANGE (period_start)"} if postgres else {})
    )
    op.create_index('ix_usage_events_subscription', 'usage_events', ['subscription_id', 'meter_id', 'timestamp'],
                    unique=False)
    op.create_index('ix_usage_events_provider_event', 'usage_events', ['provider_id', 'event_id'], unique=False)
    op.create_table('usage_rollups',
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('meter_id', sa.String(length=40), nullable=False),
    sa.Column('dims', sa.String(length=500), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('hour', UTCDateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('events', sa.BigInteger(), nullable=False),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('maximum', sa.BigInteger(), nullable=False),
    sa.Column('first_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('first_value', sa.BigInteger(), nullable=False),
    sa.Column('last_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_value', sa.BigInteger(), nullable=False),
    sa.Column('tw_inner', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('subscription_id', 'meter_id', 'dims', 'period_start', 'hour',
                            name=op.f('pk_usage_rollups'))
    )
    op.create_index('ix_usage_rollups_period', 'usage_rollups', ['tenant_id', 'livemode', 'period_start'],
                    unique=False)
    op.create_table('usage_uniques',
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('meter_id', sa.String(length=40), nullable=False),
    sa.Column('dims', sa.String(length=500), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('subscription_id', 'meter_id', 'dims', 'period_start', 'value',
                            name=op.f('pk_usage_uniques'))
    )
    op.create_table('usage_thresholds_reached',
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('component_id', sa.String(length=40), nullable=False),
    sa.Column('threshold', sa.SmallInteger(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('reached_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('quantity', sa.String(length=60), nullable=False),
    sa.PrimaryKeyConstraint('subscription_id', 'component_id', 'threshold', 'period_start',
                            name=op.f('pk_usage_thresholds_reached'))
    )
    op.create_table('usage_charges',
    sa.Column('bill_id', sa.String(length=40), nullable=False),
    sa.Column('subscription_id', sa.String(length=40), nullable=False),
    sa.Column('component_id', sa.String(length=40), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('quantity', sa.String(length=60), nullable=False),
    sa.Column('breakdown', sa.JSON(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('platform_fee', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['bill_id'], ['bills.id'], name=op.f('fk_usage_charges_bill_id_bills')),
    sa.ForeignKeyConstraint(['component_id'], ['usage_components.id'],
                            name=op.f('fk_usage_charges_component_id_usage_components')),
    sa.PrimaryKeyConstraint('bill_id', name=op.f('pk_usage_charges')),
    sa.UniqueConstraint('subscription_id', 'component_id', 'period_start', name='uq_usage_charges_key')
    )


def downgrade():
    op.drop_table('usage_charges')
    op.drop_table('usage_thresholds_reached')
    op.drop_table('usage_uniques')
    op.drop_index('ix_usage_rollups_period', table_name='usage_rollups')
    op.drop_table('usage_rollups')
    op.drop_index('ix_usage_events_provider_event', table_name='usage_events')
    op.drop_index('ix_usage_events_subscription', table_name='usage_events')
    op.drop_table('usage_events')
    op.drop_table('usage_components')
    op.drop_table('meters')
