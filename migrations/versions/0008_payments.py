"""payments: charging invoices, manual payments, refunds, Stripe's webhooks

- payments: gateway attempts (saved pending before the gateway is called; one pending per
  invoice) and payments recorded outside a gateway; refunds; stripe_events (raw, unique by
  Stripe's id).
- tenant_settings: the charge hour, the retry schedule, what the last failure does; Stripe's
  secret key and webhook secret (sealed), an API base, the pace of a charge run.
- customers: the Stripe customer and payment method to charge.
- invoices: amounts paid and refunded, paid_at, the next charge instant, collection state,
  disputed; open invoices get their charge instant (the due date at 09:00, tenant time).
- credits: what made them (a negative total carried, or an overpayment).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 05:00:00
"""
from datetime import datetime, time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('charge_hour', sa.SmallInteger(), server_default='9', nullable=False))
        batch_op.add_column(sa.Column('retry_days', sa.JSON(), server_default='[3, 5, 7]', nullable=False))
        batch_op.add_column(sa.Column('after_final_failure', sa.String(length=16), server_default='uncollectible',
                                      nullable=False))
        batch_op.add_column(sa.Column('stripe_secret_key', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('stripe_secret_key_hint', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('stripe_webhook_secret', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('stripe_webhook_secret_hint', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('stripe_api_base', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('stripe_rate_limit', sa.SmallInteger(), nullable=True))
        batch_op.add_column(sa.Column('stripe_concurrency', sa.SmallInteger(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_tenant_settings_charge_hour'), 'charge_hour BETWEEN 0 AND 23')
        batch_op.create_check_constraint(op.f('ck_tenant_settings_after_final_failure'),
                                         "after_final_failure IN ('uncollectible', 'past_due')")

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stripe_customer_id', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('stripe_payment_method', sa.String(length=255), nullable=True))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amount_paid', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('amount_refunded', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('paid_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('next_charge_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempt_count', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('first_failed_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('collection', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('disputed', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_check_constraint(op.f('ck_invoices_paid_amounts'),
                                         'amount_paid >= 0 AND amount_refunded BETWEEN 0 AND amount_paid')
        batch_op.create_index('ix_invoices_charge_due', ['tenant_id', 'livemode', 'next_charge_at'], unique=False,
                              postgresql_where=sa.text('next_charge_at IS NOT NULL'),
                              sqlite_where=sa.text('next_charge_at IS NOT NULL'))

    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='carried', nullable=False))
        batch_op.add_column(sa.Column('source_payment_id', sa.String(length=40), nullable=True))

    op.create_table('payments',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('customer_id', sa.String(length=40), nullable=False),
    sa.Column('gateway', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_method', sa.String(length=255), nullable=True),
    sa.Column('stripe_payment_intent_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_charge_id', sa.String(length=255), nullable=True),
    sa.Column('gateway_status', sa.String(length=40), nullable=True),
    sa.Column('failure_code', sa.String(length=64), nullable=True),
    sa.Column('decline_code', sa.String(length=64), nullable=True),
    sa.Column('failure_message', sa.String(length=1000), nullable=True),
    sa.Column('hard_decline', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('requests', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=True),
    sa.Column('amount_refunded', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('settled_at', UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'requires_action', 'succeeded', 'failed', 'canceled')",
                       name=op.f('ck_payments_status')),
    sa.CheckConstraint("gateway IN ('stripe', 'manual')", name=op.f('ck_payments_gateway')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_payments_positive')),
    sa.CheckConstraint('amount_refunded BETWEEN 0 AND amount', name=op.f('ck_payments_refunds_within_amount')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_payments_customer_id_customers')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_payments_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_payments_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('invoice_id', 'attempt', name=op.f('uq_payments_invoice_id_attempt')),
    sa.UniqueConstraint('stripe_payment_intent_id', name=op.f('uq_payments_stripe_payment_intent_id'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_scope', ['tenant_id', 'livemode', 'id'], unique=False)
        batch_op.create_index('ix_payments_invoice', ['invoice_id', 'id'], unique=False)
        batch_op.create_index('uq_payments_one_pending', ['invoice_id'], unique=True,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))

    op.create_table('refunds',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('invoice_id', sa.String(length=40), nullable=False),
    sa.Column('payment_id', sa.String(length=40), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('gateway', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stripe_refund_id', sa.String(length=255), nullable=True),
    sa.Column('failure_message', sa.String(length=1000), nullable=True),
    sa.Column('requests', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('locked_until', UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('settled_at', UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'canceled')", name=op.f('ck_refunds_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_refunds_positive')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_refunds_invoice_id_invoices')),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_refunds_payment_id_payments')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_refunds_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('stripe_refund_id', name=op.f('uq_refunds_stripe_refund_id'))
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index('ix_refunds_scope', ['tenant_id', 'livemode', 'id'], unique=False)
        batch_op.create_index('ix_refunds_invoice', ['invoice_id', 'id'], unique=False)
        batch_op.create_index('ix_refunds_pending', ['created_at'], unique=False,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))

    op.create_table('stripe_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('stripe_event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('next_attempt_at', UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=1000), nullable=True),
    sa.Column('received_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('handled_at', UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending', 'handled', 'ignored')", name=op.f('ck_stripe_events_status')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_stripe_events_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events')),
    sa.UniqueConstraint('tenant_id', 'livemode', 'stripe_event_id',
                        name=op.f('uq_stripe_events_tenant_id_livemode_stripe_event_id'))
    )
    with op.batch_alter_table('stripe_events', schema=None) as batch_op:
        batch_op.create_index('ix_stripe_events_ready', ['next_attempt_at'], unique=False,
                              postgresql_where=sa.text("status = 'pending'"),
                              sqlite_where=sa.text("status = 'pending'"))

    _schedule_open_invoices()


def _schedule_open_invoices():
    """Open invoices finalized before this revision are charged like new ones: at 09:00 (the
    default charge hour) of their due date, in their tenant's time zone."""
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT i.id, i.due_date, s.timezone FROM invoices i JOIN tenant_settings s "
        "ON s.tenant_id = i.tenant_id AND s.livemode = i.livemode WHERE i.status = 'open'")).all()
    invoices = sa.table('invoices', sa.column('id', sa.String), sa.column('next_charge_at', UTCDateTime()),
                        sa.column('collection', sa.String))
    for invoice_id, due_date, timezone in rows:
        if isinstance(due_date, str):  # SQLite
            due_date = datetime.strptime(due_date, "%Y-%m-%d").date()
        at = datetime.combine(due_date, time(9), ZoneInfo(timezone))
        bind.execute(sa.update(invoices).where(invoices.c.id == invoice_id)
                     .values(next_charge_at=at, collection='scheduled'))


def downgrade():
    op.drop_table('stripe_events')
    op.drop_table('refunds')
    op.drop_table('payments')
    with op.batch_alter_table('credits', schema=None) as batch_op:
        batch_op.drop_column('source_payment_id')
        batch_op.drop_column('kind')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_charge_due')
        batch_op.drop_constraint(op.f('ck_invoices_paid_amounts'), type_='check')
        for column in ('disputed', 'collection', 'first_failed_at', 'attempt_count', 'next_charge_at', 'paid_at',
                       'amount_refunded', 'amount_paid'):
            batch_op.drop_column(column)
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('stripe_payment_method')
        batch_op.drop_column('stripe_customer_id')
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tenant_settings_after_final_failure'), type_='check')
        batch_op.drop_constraint(op.f('ck_tenant_settings_charge_hour'), type_='check')
        for column in ('stripe_concurrency', 'stripe_rate_limit', 'stripe_api_base', 'stripe_webhook_secret_hint',
                       'stripe_webhook_secret', 'stripe_secret_key_hint', 'stripe_secret_key', 'after_final_failure',
                       'retry_days', 'charge_hour'):
            batch_op.drop_column(column)
