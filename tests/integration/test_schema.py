"""The schema the migrations build, and what it refuses by itself."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from aggregator.db import db


def test_the_migrations_build_exactly_the_schema_the_models_declare(app):
    with app.app_context():
        with db.engine.connect() as connection:
            # usage_events' monthly partitions are made as events arrive (metering.store), not declared
            context = MigrationContext.configure(connection, opts={"include_name": _not_a_partition})
            differences = compare_metadata(context, db.metadata)
    assert differences == []


def _not_a_partition(name, type_, parent_names) -> bool:
    return not (type_ == "table" and name and name.startswith("usage_events_y"))


def _insert_bill(app, *, tenant_id, livemode, provider_id, customer_id, key):
    with app.app_context():
        try:
            db.session.execute(sa.text(
                "INSERT INTO bills (id, tenant_id, livemode, provider_id, customer_id, idempotency_key,"
                " fingerprint, amount, currency, revenue_share, description, metadata, status,"
                " period_start, received_at) VALUES (:key, :tenant_id, :livemode, :provider_id,"
                " :customer_id, :key, :fp, 100, 'AUD', true, '', '{}', 'pending', '2026-10-25',"
                " '2026-11-10 12:00:00')"),
                {"key": key, "tenant_id": tenant_id, "livemode": livemode, "provider_id": provider_id,
                 "customer_id": customer_id, "fp": b"\0" * 32})
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise


def test_the_database_refuses_a_bill_that_crosses_tenants_or_modes(app, make_tenant):
    ours, theirs = make_tenant(name="Ours"), make_tenant(name="Theirs")
    provider, customer = ours.provider(), ours.customer("cust-1")["id"]
    their_customer = theirs.customer("cust-1")["id"]
    live_customer = ours.customer("cust-1", mode="live")["id"]
    _insert_bill(app, tenant_id=ours.id, livemode=False, provider_id=provider.id, customer_id=customer,
                 key="bill_schema_ok")  # consistent: accepted
    for n, (tenant_id, customer_id) in enumerate([(ours.id, their_customer), (theirs.id, their_customer),
                                                   (ours.id, live_customer)]):
        with pytest.raises(sa.exc.IntegrityError):
            _insert_bill(app, tenant_id=tenant_id, livemode=False, provider_id=provider.id,
                         customer_id=customer_id, key=f"bill_schema_bad_{n}")
