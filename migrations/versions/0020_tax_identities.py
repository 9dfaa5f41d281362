"""tax identities and documents: tenant_settings.country, tax_ids, tax_name, invoice_title,
reverse_charge, payment_instructions, void_finalized (NULL: decided by the country) and
invoice_line_limit (past it an invoice's detail goes to a CSV attachment); customers.tax_ids;
invoices.parties (seller and buyer as they were at finalization) and tax_treatment

Revision ID: 0020
Revises: 0019_usage_exports
Create Date: 2026-12-07 23:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019_usage_exports'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('country', sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column('tax_ids', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('tax_name', sa.String(length=32), server_default='Tax', nullable=False))
        batch_op.add_column(sa.Column('invoice_title', sa.String(length=64), server_default='Invoice',
                                      nullable=False))
        batch_op.add_column(sa.Column('reverse_charge', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('payment_instructions', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('void_finalized', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('invoice_line_limit', sa.Integer(), server_default='2000', nullable=False))
        batch_op.create_check_constraint(op.f('ck_tenant_settings_invoice_line_limit'),
                                         'invoice_line_limit BETWEEN 10 AND 100000')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tax_ids', sa.JSON(), server_default='[]', nullable=False))

    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parties', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('tax_treatment', sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('tax_treatment')
        batch_op.drop_column('parties')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('tax_ids')

    with op.batch_alter_table('tenant_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_tenant_settings_invoice_line_limit'), type_='check')
        for name in ('invoice_line_limit', 'void_finalized', 'payment_instructions', 'reverse_charge',
                     'invoice_title', 'tax_name', 'tax_ids', 'country'):
            batch_op.drop_column(name)
