"""derived invoice lines: the close writes invoice headers only

The bill lines of an invoice that is not void are derived from its bills (the bills of its
customer and period that are not cancelled) with the exchange rates recorded on the invoice;
"invoiced" is derived from the invoice's existence instead of being written on every bill.
invoice_lines keeps the credit lines and the bill lines of voided invoices (a snapshot).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 12:40:00
"""
import json

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

invoices = sa.table('invoices', sa.column('id'), sa.column('status'), sa.column('fx_rates'))
lines = sa.table('invoice_lines', sa.column('invoice_id'), sa.column('kind'), sa.column('original_currency'),
                 sa.column('fx_rate'))
bills = sa.table('bills', sa.column('status'))


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fx_rates', sa.Text(), nullable=True))

    conn = op.get_bind()
    rates: dict[str, dict[str, str]] = {}
    for row in conn.execute(sa.select(lines.c.invoice_id, lines.c.original_currency, lines.c.fx_rate)
                            .distinct().where(lines.c.original_currency.is_not(None))):
        rates.setdefault(row.invoice_id, {})[row.original_currency] = row.fx_rate
    for invoice_id, used in rates.items():
        conn.execute(sa.update(invoices).where(invoices.c.id == invoice_id)
                     .values(fx_rates=json.dumps(used, sort_keys=True)))
    # bill lines of live invoices are derived from now on; those of voided ones are their snapshot
    conn.execute(sa.delete(lines).where(lines.c.kind == 'bill', lines.c.invoice_id.in_(
        sa.select(invoices.c.id).where(invoices.c.status != 'void'))))
    conn.execute(sa.update(bills).where(bills.c.status == 'invoiced').values(status='pending'))

    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.drop_index('ix_invoice_lines_bill')

    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_bills_invoice_id_invoices'), type_='foreignkey')
        batch_op.drop_column('invoice_id')
        batch_op.drop_constraint(op.f('ck_bills_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_bills_status'), "status IN ('pending', 'cancelled')")
    if conn.dialect.name == "postgresql":
        op.execute("ALTER TABLE bills RESET (fillfactor)")  # the close no longer updates bills


def downgrade():
    # Restores the columns, not the per-bill state: re-closing after a downgrade is not supported.
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_bills_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_bills_status'), "status IN ('pending', 'invoiced', 'cancelled')")
        batch_op.add_column(sa.Column('invoice_id', sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(op.f('fk_bills_invoice_id_invoices'), 'invoices', ['invoice_id'], ['id'],
                                    use_alter=True)
    with op.batch_alter_table('invoice_lines', schema=None) as batch_op:
        batch_op.create_index('ix_invoice_lines_bill', ['bill_id'], unique=False)
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('fx_rates')
