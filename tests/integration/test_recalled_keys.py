"""Intake recalls keys it has authenticated before (no query per bill); its one INSERT checks
the key and the tenant's calendar again, so a stale memory never files a bill it should not."""
from __future__ import annotations

import dataclasses
from datetime import date, datetime, timezone

import pytest

from tests.support.invoicing import bill_body


def _record(app, provider, change, key: str, now: datetime):
    from aggregator import auth
    from aggregator.ingest import service
    from aggregator.ingest.schemas import load_bill

    with app.app_context():
        fresh = auth.authenticate(f"Bearer {provider.key}")
        stale = dataclasses.replace(fresh, verified=False, **change)
        return service.record_bill(stale, load_bill(bill_body(), key), now)


def test_a_recalled_calendar_that_has_changed_does_not_choose_the_period(app, tenant, clock):
    # Tenant: Sydney, 25th. A memory saying UTC would file a bill received on 24 November at
    # 20:00 UTC (25 November in Sydney) in the period of 25 October, whose row is open.
    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "k1"}).json["period"] == "2026-10-25"
    now = datetime(2026, 11, 24, 20, 0, tzinfo=timezone.utc)
    clock.set(now)
    outcome = _record(app, provider, {"timezone": "UTC"}, "k2", now)
    assert outcome.error is None and outcome.bill.period == date(2026, 11, 25)
    outcome = _record(app, provider, {"period_anchor_day": 10}, "k3", now)
    assert outcome.error is None and outcome.bill.period == date(2026, 11, 25)


def test_a_recalled_key_that_has_been_revoked_files_nothing(app, tenant, clock):
    from aggregator.errors import Unauthenticated

    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "k1"}).status_code == 201
    from aggregator import auth
    from aggregator.ingest import service
    from aggregator.ingest.schemas import load_bill

    with app.app_context():
        recalled = dataclasses.replace(auth.authenticate(f"Bearer {provider.key}"), verified=False)
    admin = tenant.admin["test"]
    assert admin.delete(f"/v1/keys/{recalled.key_id}").status_code == 200
    with app.app_context(), pytest.raises(Unauthenticated):
        service.record_bill(recalled, load_bill(bill_body(), "k2"), clock.now())
    assert len(admin.get(f"/v1/bills?provider={provider.id}").json["data"]) == 1


def test_intake_never_holds_two_pooled_connections(postgres_only, app, tenant, database_url, clock, tmp_path):
    # Test mode reads the tenant's test clock through the session first; the INSERT must then use
    # the session's connection, not wait for a second one (a full pool would stall every thread).
    from aggregator import create_app
    from aggregator.config import Settings
    from aggregator.db import db
    from tests.support.callers import Caller

    tenant.customer("cust-1")
    provider = tenant.provider()
    small = create_app({"SETTINGS": Settings(database_url=database_url, storage_dir=tmp_path),
                        "CLOCK": clock, "TESTING": True,
                        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 1, "max_overflow": 0, "pool_timeout": 2}})
    try:
        caller = Caller(small.test_client(), provider.key)
        for key in ("k1", "k2"):  # the key looked up, then recalled
            response = caller.post("/v1/bills", bill_body(), headers={"Idempotency-Key": key})
            assert response.status_code == 201, response.json
    finally:
        with small.app_context():
            db.engine.dispose()
