"""tenant settings per mode; due lanes; the events outbox; PDF claims; closes that wait

- tenant_settings: a tenant's settings, one row per mode (both copied from the tenant row), so
  a test key can never change what live mode does; tenants keeps its id and creation time.
- due_lanes: per tenant and mode, when a worker must next look at its due work (indexed).
- events: every announced change, written in the transaction that makes it.
- invoices: PDF rendering is claimed (pdf_locked_until) and retried with backoff; indexes on
  what the workers look for (finalized without a PDF; drafts awaiting their deadline).
- periods.waiting: why a close that ran left its period closing.
- test_clocks.status: ready, or advancing while the workers catch up.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime
from aggregator.due import AT_ONCE

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

SETTINGS = ("name", "legal_name", "address", "timezone", "default_currency", "period_anchor_day", "charge_day",
            "default_tax_rate", "invoice_prefix", "invoice_review", "auto_finalize_after_days", "locale", "logo")


def upgrade():
    op.create_table('tenant_settings',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('legal_name', sa.String(length=200), nullable=True),
    sa.Column('address', sa.JSON(), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('default_currency', sa.String(length=3), nullable=False),
    sa.Column('period_anchor_day', sa.SmallInteger(), nullable=False),
    sa.Column('charge_day', sa.SmallInteger(), nullable=False),
    sa.Column('default_tax_rate', sa.String(length=16), nullable=False),
    sa.Column('invoice_prefix', sa.String(length=16), nullable=False),
    sa.Column('invoice_review', sa.String(length=8), nullable=False),
    sa.Column('auto_finalize_after_days', sa.SmallInteger(), nullable=True),
    sa.Column('locale', sa.String(length=16), nullable=False),
    sa.Column('logo', sa.Text(), nullable=True),
    sa.Column('email_from_name', sa.String(length=200), nullable=True),
    sa.Column('email_from', sa.String(length=320), nullable=True),
    sa.Column('email_reply_to', sa.String(length=320), nullable=True),
    sa.Column('finance_email', sa.String(length=320), nullable=True),
    sa.CheckConstraint('charge_day BETWEEN 1 AND 28', name=op.f('ck_tenant_settings_charge_day')),
    sa.CheckConstraint("invoice_review IN ('auto', 'manual')", name=op.f('ck_tenant_settings_invoice_review')),
    sa.CheckConstraint('period_anchor_day BETWEEN 1 AND 28', name=op.f('ck_tenant_settings_anchor_day')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_tenant_settings_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'livemode', name=op.f('pk_tenant_settings'))
    )
    columns = ", ".join(SETTINGS)
    for livemode in ("TRUE", "FALSE"):
        op.execute(f"INSERT INTO tenant_settings (tenant_id, livemode, {columns}) "
                   f"SELECT id, {livemode}, {columns} FROM tenants")
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        for check in ('ck_tenants_invoice_review', 'ck_tenants_charge_day', 'ck_tenants_anchor_day'):
            batch_op.drop_constraint(op.f(check), type_='check')
        for column in reversed(SETTINGS):
            batch_op.drop_column(column)

    op.create_table('due_lanes',
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('next_due_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('wake_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('nudges', sa.Integer(), server_default='0', nullable=False),
    sa.Column('locked_by', sa.String(length=64), nullable=True),
    sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
    sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_due_lanes_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('tenant_id', 'livemode', name=op.f('pk_due_lanes'))
    )
    with op.batch_alter_table('due_lanes', schema=None) as batch_op:
        batch_op.create_index('ix_due_lanes_wake_at', ['wake_at'], unique=False)
    # every lane with periods is looked at once, and scheduled from then on
    op.get_bind().execute(
        sa.text("INSERT INTO due_lanes (tenant_id, livemode, wake_at, nudges, failures) "
                "SELECT DISTINCT tenant_id, livemode, :at, 0, 0 FROM periods")
        .bindparams(sa.bindparam("at", AT_ONCE, type_=UTCDateTime())))

    op.create_table('events',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('created', UTCDateTime(timezone=True), nullable=False),
    sa.Column('object_id', sa.String(length=40), nullable=True),
    sa.Column('provider_id', sa.String(length=40), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('dispatched', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_object', ['object_id'], unique=False)
        batch_op.create_index('ix_events_provider', ['tenant_id', 'livemode', 'provider_id', 'id'], unique=False)
        batch_op.create_index('ix_events_scope', ['tenant_id', 'livemode', 'id'], unique=False)
        batch_op.create_index('ix_events_undispatched', ['seq'], unique=False,
                              postgresql_where=sa.text('NOT dispatched'), sqlite_where=sa.text('NOT dispatched'))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pdf_attempts', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('pdf_locked_until', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('pdf_retry_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_invoices_pdf_pending', ['id'], unique=False,
                              postgresql_where=sa.text('number IS NOT NULL AND pdf_sha256 IS NULL'),
                              sqlite_where=sa.text('number IS NOT NULL AND pdf_sha256 IS NULL'))
        batch_op.create_index('ix_invoices_drafts', ['tenant_id', 'livemode', 'created_at'], unique=False,
                              postgresql_where=sa.text("status = 'draft'"), sqlite_where=sa.text("status = 'draft'"))

    with op.batch_alter_table('periods', schema=None) as batch_op:
        batch_op.add_column(sa.Column('waiting', sa.String(length=32), nullable=True))

    with op.batch_alter_table('test_clocks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='ready', nullable=False))
        batch_op.create_check_constraint(op.f('ck_test_clocks_status'), "status IN ('ready', 'advancing')")


def downgrade():
    with op.batch_alter_table('test_clocks', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_test_clocks_status'), type_='check')
        batch_op.drop_column('status')
    with op.batch_alter_table('periods', schema=None) as batch_op:
        batch_op.drop_column('waiting')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_drafts')
        batch_op.drop_index('ix_invoices_pdf_pending')
        batch_op.drop_column('pdf_retry_at')
        batch_op.drop_column('pdf_locked_until')
        batch_op.drop_column('pdf_attempts')
    op.drop_table('events')
    op.drop_table('due_lanes')
    with op.batch_alter_table('tenants', schema=None) as batch_op:  # live mode's settings return to the tenant
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('legal_name', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('address', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('default_currency', sa.String(length=3), nullable=True))
        batch_op.add_column(sa.Column('period_anchor_day', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('charge_day', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('default_tax_rate', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('invoice_prefix', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('invoice_review', sa.String(length=8), server_default='auto', nullable=True))
        batch_op.add_column(sa.Column('auto_finalize_after_days', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('locale', sa.String(length=16), server_default='en', nullable=True))
        batch_op.add_column(sa.Column('logo', sa.Text(), nullable=True))
    for column in SETTINGS:
        op.execute(f"UPDATE tenants SET {column} = (SELECT s.{column} FROM tenant_settings s "
                   "WHERE s.tenant_id = tenants.id AND s.livemode = TRUE)")
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        for column in SETTINGS:
            if column not in ("legal_name", "address", "auto_finalize_after_days", "logo"):
                batch_op.alter_column(column, nullable=False)
        batch_op.create_check_constraint(op.f('ck_tenants_anchor_day'), 'period_anchor_day BETWEEN 1 AND 28')
        batch_op.create_check_constraint(op.f('ck_tenants_charge_day'), 'charge_day BETWEEN 1 AND 28')
        batch_op.create_check_constraint(op.f('ck_tenants_invoice_review'), "invoice_review IN ('auto', 'manual')")
    op.drop_table('tenant_settings')
