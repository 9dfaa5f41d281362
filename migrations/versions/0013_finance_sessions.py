"""finance_sessions: finance's sign-ins kept server-side (the admin key that signed in, tenant,
mode, created_at, expires_at, revoked_at; the cookie's token only as a SHA-256), so signing
out, revoking the key and the lifetime end a session whatever a copy of its cookie says

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 03:50:00
"""
import sqlalchemy as sa
from alembic import op

from aggregator.db import UTCDateTime

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('finance_sessions',
    sa.Column('token_hash', sa.LargeBinary(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=40), nullable=False),
    sa.Column('livemode', sa.Boolean(), nullable=False),
    sa.Column('key_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['key_id'], ['api_keys.id'], name=op.f('fk_finance_sessions_key_id_api_keys')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], name=op.f('fk_finance_sessions_tenant_id_tenants')),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_finance_sessions'))
    )
    op.create_index(op.f('ix_finance_sessions_key_id'), 'finance_sessions', ['key_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_finance_sessions_key_id'), table_name='finance_sessions')
    op.drop_table('finance_sessions')
