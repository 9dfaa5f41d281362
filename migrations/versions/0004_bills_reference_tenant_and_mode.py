"""bills reference their provider and customer with the tenant and mode

A bill's provider and customer are referenced by (tenant_id, livemode, id), so the database
refuses a bill whose provider or customer belongs to another tenant or mode. This replaces the
three single-column foreign keys (tenant, provider, customer): one check fewer per bill stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 13:45:00
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_index('ix_providers_scope')
        batch_op.create_unique_constraint(op.f('uq_providers_tenant_id_livemode_id'), ['tenant_id', 'livemode', 'id'])
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_scope')
        batch_op.create_unique_constraint(op.f('uq_customers_tenant_id_livemode_id'), ['tenant_id', 'livemode', 'id'])
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_bills_tenant_id_tenants'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_bills_provider_id_providers'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_bills_customer_id_customers'), type_='foreignkey')
        batch_op.create_foreign_key(op.f('fk_bills_tenant_id_providers'), 'providers',
                                    ['tenant_id', 'livemode', 'provider_id'], ['tenant_id', 'livemode', 'id'])
        batch_op.create_foreign_key(op.f('fk_bills_tenant_id_customers'), 'customers',
                                    ['tenant_id', 'livemode', 'customer_id'], ['tenant_id', 'livemode', 'id'])


def downgrade():
    with op.batch_alter_table('bills', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('fk_bills_tenant_id_customers'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_bills_tenant_id_providers'), type_='foreignkey')
        batch_op.create_foreign_key(op.f('fk_bills_customer_id_customers'), 'customers', ['customer_id'], ['id'])
        batch_op.create_foreign_key(op.f('fk_bills_provider_id_providers'), 'providers', ['provider_id'], ['id'])
        batch_op.create_foreign_key(op.f('fk_bills_tenant_id_tenants'), 'tenants', ['tenant_id'], ['id'])
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_customers_tenant_id_livemode_id'), type_='unique')
        batch_op.create_index('ix_customers_scope', ['tenant_id', 'livemode', 'id'], unique=False)
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_providers_tenant_id_livemode_id'), type_='unique')
        batch_op.create_index('ix_providers_scope', ['tenant_id', 'livemode', 'id'], unique=False)
