"""payment terms and overdue invoices: tenant_settings.payment_terms_days (due that many days
after the invoice; NULL: on the charge day, as before); the customer emails each mode sends
(notify_*, all on); invoices.overdue_at (set once when an open invoice passes the end of its
due date) and the partial index the overdue due work reads

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 20:15:00

"""
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

_WAITING = sa.text("status = 'open' AND overdue_at IS NULL")  # open and not yet overdue
_NOTIFICATIONS = ("notify_invoice_generated", "notify_payment_received", "notify_payment_overdue",
                  "notify_usage_threshold")


def upgrade():
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payment_terms_days', sa.SmallInteger(), nullable=True))
        for name in _NOTIFICATIONS:
            batch_op.add_column(sa.Column(name, sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.create_check_constraint(op.f('ck_tenant_settings_payment_terms_days'),
                                         'payment_terms_days BETWEEN 0 AND 365')

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overdue_at', UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_invoices_overdue_due', ['tenant_id', 'livemode', 'due_date', 'finalized_at'],
                              unique=False, postgresql_where=_WAITING, sqlite_where=_WAITING)
    # Live invoices already past due when this ships are marked overdue now, without an event or
    # an email: the first run would otherwise announce every old unpaid invoice at once. (Test
    # mode runs on test clocks: its invoices are judged by the due work, on their own clock.)
    now = datetime.now(timezone.utc)  # the deploy's instant: a one-off, not due work
    op.get_bind().execute(sa.text(
        "UPDATE invoices SET overdue_at = :now WHERE livemode AND status = 'open' AND due_date < :cutoff")
        .bindparams(sa.bindparam("now", now, type_=UTCDateTime()),
                    sa.bindparam("cutoff", (now - timedelta(days=1)).date(), type_=sa.Date())))


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_overdue_due', postgresql_where=_WAITING, sqlite_where=_WAITING)
        batch_op.drop_column('overdue_at')

    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tenant_settings_payment_terms_days'), type_='check')
        for name in reversed(_NOTIFICATIONS):
            batch_op.drop_column(name)
        batch_op.drop_column('payment_terms_days')
