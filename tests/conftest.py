"""Fixtures shared by the integration and end-to-end tests.

The database is the one named by AGGREGATOR_TEST_DATABASE_URL (PostgreSQL in CI), else a fresh
SQLite file. The schema is built by the real migrations, never by create_all on the models.
Every test makes its own tenant, so tests are isolated the way tenants are.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator import create_app
from aggregator.clock import FixedClock
from aggregator.config import Settings

START = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def _database_url(tmp_path_factory) -> str:
    url = os.environ.get("AGGREGATOR_TEST_DATABASE_URL")
    if url:
        return _database_of_this_worker(url)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


def _database_of_this_worker(url: str) -> str:
    """Under pytest-xdist each worker process gets a PostgreSQL database of its own (the named
    one with the worker's id appended, created on first use), since every session wipes its schema."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not is_postgres(url):
        return url
    base = sa.engine.make_url(url)
    mine = base.set(database=f"{base.database}_{worker}")
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": mine.database}).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{mine.database}"'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url} is unreachable: {exc}", returncode=3)
    finally:
        engine.dispose()
    return mine.render_as_string(hide_password=False)


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url} is unreachable: {exc}", returncode=3)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return _database_url(tmp_path_factory)


@pytest.fixture(scope="session")
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture(scope="session")
def app(database_url, clock, tmp_path_factory):
    import flask_migrate

    if is_postgres(database_url):
        _reset_postgres(database_url)
    settings = Settings(database_url=database_url,
                        storage_dir=Path(tmp_path_factory.mktemp("storage")), db_pool_size=20,
                        webhooks_allow_private=True,  # receivers run on 127.0.0.1
                        stripe_tenant_api_base=True,  # each test points its tenant at its own Stripe peer
                        # every test calls from 127.0.0.1 on a clock that stands still: the
                        # throttle's tests (tests/e2e/test_throttling.py) use their own limits
                        auth_failures_per_address="100000/minute", auth_failures_per_key_prefix="100000/minute",
                        secret_key_file=Path(tmp_path_factory.mktemp("vault")) / "secret.key")
    app = create_app({"SETTINGS": settings, "CLOCK": clock, "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    with app.app_context():
        from aggregator.db import db

        db.engine.dispose()


@pytest.fixture(autouse=True)
def _reset_clock(request):
    if "clock" in request.fixturenames or "app" in request.fixturenames:
        request.getfixturevalue("clock").set(START)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def postgres_only(database_url):
    if not is_postgres(database_url):
        pytest.skip("needs PostgreSQL (set AGGREGATOR_TEST_DATABASE_URL); bin/test runs it there")


class Caller:
    """Makes API requests with one key, the way a provider's or a platform's code would."""

    def __init__(self, client, key: str):
        self.client, self.key = client, key

    def _headers(self, extra):
        return {"Authorization": f"Bearer {self.key}", **(extra or {})}

    def get(self, path, **kw):
        return self.client.get(path, headers=self._headers(kw.pop("headers", None)), **kw)

    def post(self, path, json=None, **kw):
        return self.client.post(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def patch(self, path, json=None, **kw):
        return self.client.patch(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def put(self, path, json=None, **kw):
        return self.client.put(path, json=json, headers=self._headers(kw.pop("headers", None)), **kw)

    def delete(self, path, **kw):
        return self.client.delete(path, headers=self._headers(kw.pop("headers", None)), **kw)


@dataclass
class Tenant:
    id: str
    admin: dict[str, Caller]  # mode -> caller
    client: object

    def provider(self, mode: str = "test", name: str = "App", rate: str = "0.30") -> Caller:
        response = self.admin[mode].post("/v1/providers", {"name": name, "revenue_share_rate": rate})
        assert response.status_code == 201, response.json
        caller = Caller(self.client, response.json["api_key"])
        caller.id = response.json["id"]
        return caller

    def customer(self, external_id: str = "cust-1", mode: str = "test", **fields) -> dict:
        response = self.admin[mode].post("/v1/customers", {"external_id": external_id, **fields})
        assert response.status_code == 201, response.json
        return response.json


@pytest.fixture
def make_tenant(app, client, clock):
    from aggregator.accounts import service

    def make(**settings) -> Tenant:
        settings.setdefault("name", "Marketplace")
        settings.setdefault("timezone", "Australia/Sydney")
        settings.setdefault("default_currency", "AUD")
        with app.app_context():
            created = service.create_tenant(settings, clock.now())
            tenant_id = created.tenant.id
        return Tenant(tenant_id, {m: Caller(client, k) for m, k in created.admin_keys.items()}, client)

    return make


@pytest.fixture
def tenant(make_tenant) -> Tenant:
    return make_tenant()


def bill_body(**overrides) -> dict:
    body = {"customer": "cust-1", "amount": "19.99", "currency": "AUD", "revenue_share": True,
            "description": "Pro plan, October"}
    body.update(overrides)
    return body


@pytest.fixture(scope="session")
def localstripe():
    from tests.localstripe_server import LocalStripe

    server = LocalStripe()
    yield server
    server.stop()
