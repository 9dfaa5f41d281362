"""Fixtures shared by the integration and end-to-end tests.

The database is the one named by AGGREGATOR_TEST_DATABASE_URL (PostgreSQL in CI), else a fresh
SQLite file. The schema is built by the real migrations, never by create_all on the models.
Every test makes its own tenant, so tests are isolated the way tenants are.

A commit does not wait for the disk (PostgreSQL: synchronous_commit off for the test database,
in every session of every process; SQLite: synchronous NORMAL, WAL's usual setting): a flush per
commit costs 4-7 ms here, more than most statements, and only a crash of the database server or
of the machine itself, which no test makes, would tell the difference.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from aggregator import create_app
from aggregator.clock import FixedClock
from aggregator.config import Settings
from tests.support.callers import Caller, Tenant
from tests.support.clock import START
from tests.support.database import is_postgres

# Fixtures shared across the test folders, each defined beside the helpers that go with it.
pytest_plugins = ["tests.support.charges", "tests.support.mail", "tests.support.payouts", "tests.support.peer",
                  "tests.support.renderer"]

#: The files that take longest, started first so that under `-n 2 --dist loadfile` no worker is
#: left running a long file after the other finished. Seconds in CI on 2 cores (PostgreSQL pass;
#: the clock test runs in both): one long test first, then the ten tiny benchmarks, which wait on
#: their servers as much as they compute.
SLOWEST_FIRST = (
    "tests/e2e/test_clock_equivalence.py",  # 60-100: hypothesis over months of clock moves
    "tests/integration/test_benchmarks_run.py",  # 150: ten benchmarks at a tiny size
    "tests/e2e/test_schemathesis.py",  # 50
    "tests/integration/test_crash_cycle.py",  # 55
    "tests/integration/test_books_state_machine.py",  # 35
    "tests/integration/test_readme_walkthrough.py",  # 35 (SQLite pass only)
    "tests/integration/test_workers.py",  # 35
    "tests/integration/test_charge_exactly_once.py",  # 35
    "tests/integration/test_demo_beside_server.py",  # 25
)


def pytest_configure(config):
    # xdist's loadfile hands out files with the most tests first, which starts the slowest
    # files (one long test each) last: keep the order of the collection below instead.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


#: Files whose tests never open the tests' database (no database, a SQLite file or a `bin/start`
#: of their own): on PostgreSQL they would run exactly as they did in bin/test's SQLite pass.
SAME_ON_ANY_DATABASE = (
    "tests/integration/test_readme_walkthrough.py",
    "tests/integration/test_start.py",
    "tests/integration/test_slow_clients.py",
    "tests/integration/test_invoice_renderer.py",
    "tests/integration/test_facturx_pdf.py",
    "tests/integration/test_mailer.py",
    "tests/integration/test_stripe_faults.py",
    "tests/integration/test_stripe_transfers.py",
    "tests/integration/test_vault.py",
    "tests/integration/test_webhook_sender.py",
)


#: Long explorations of the whole service (hypothesis over clock moves and ledger histories):
#: their SQL is PostgreSQL's in production, so when bin/test's PostgreSQL pass follows
#: (AGGREGATOR_TEST_POSTGRES_FOLLOWS=1), the SQLite pass leaves them to it. Without PostgreSQL they
#: run on SQLite.
POSTGRES_PASS_SUFFICES = (
    "tests/e2e/test_clock_equivalence.py",
    "tests/integration/test_books_state_machine.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: n for n, path in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.partition("::")[0], len(rank)))
    if (not is_postgres(os.environ.get("AGGREGATOR_TEST_DATABASE_URL", ""))
            and os.environ.get("AGGREGATOR_TEST_POSTGRES_FOLLOWS") == "1"):
        later = pytest.mark.skip(reason="bin/test's PostgreSQL pass runs it")
        for item in items:
            if item.nodeid.partition("::")[0] in POSTGRES_PASS_SUFFICES:
                item.add_marker(later)
    if is_postgres(os.environ.get("AGGREGATOR_TEST_DATABASE_URL", "")):
        again = pytest.mark.skip(reason="the same on any database: bin/test's SQLite pass runs it")
        for item in items:
            # a test that does use the database (the `app` fixture and those built on it) still runs
            if item.nodeid.partition("::")[0] in SAME_ON_ANY_DATABASE and "database_url" not in item.fixturenames:
                item.add_marker(again)


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
    return _database_beside(url, f"{sa.engine.make_url(url).database}_{worker}")


def _database_beside(url: str, name: str) -> str:
    """The database `name` on `url`'s server (created on first use, through `url`'s)."""
    base = sa.engine.make_url(url)
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url} is unreachable: {exc}", returncode=3)
    finally:
        engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
            database = conn.execute(sa.text("SELECT current_database()")).scalar()
            conn.execute(sa.text(f'ALTER DATABASE "{database}" SET synchronous_commit = off'))
    except sa.exc.OperationalError as exc:
        pytest.exit(f"PostgreSQL at {url} is unreachable: {exc}", returncode=3)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    return _database_url(tmp_path_factory)


@sa.event.listens_for(sa.engine.Engine, "connect")
def _sqlite_without_flush_per_commit(dbapi_connection, _record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


@pytest.fixture(scope="session")
def clock() -> FixedClock:
    return FixedClock(START)


@contextmanager
def _migrated_app(database_url: str, clock, tmp_path_factory) -> Iterator[Flask]:
    """The tests' app on `database_url`, its schema built by the migrations (PostgreSQL's first
    dropped); disposed of at the end."""
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


@pytest.fixture(scope="session")
def app(database_url, clock, tmp_path_factory):
    with _migrated_app(database_url, clock, tmp_path_factory) as app:
        yield app


@dataclass(frozen=True)
class OwnDatabase:
    url: str
    app: Flask


@pytest.fixture(scope="session")
def _own_database_app(clock, tmp_path_factory):
    """A second PostgreSQL database beside the tests' own (its name + "_own"), migrated once."""
    url = os.environ.get("AGGREGATOR_TEST_DATABASE_URL", "")
    if not is_postgres(url):
        pytest.skip("needs PostgreSQL (set AGGREGATOR_TEST_DATABASE_URL); bin/test runs it there")
    tests = _database_of_this_worker(url)
    own = _database_beside(tests, f"{sa.engine.make_url(tests).database}_own")
    with _migrated_app(own, clock, tmp_path_factory) as app:
        yield OwnDatabase(own, app)


@pytest.fixture
def own_database(_own_database_app) -> OwnDatabase:
    """An empty database of the test's own (emptied before each test), with an app on it: for
    tests whose worker processes do whatever is due in their database. In the tests' shared
    one they would also render, mail and deliver all that earlier tests' tenants left due.
    A test module uses it by overriding `app` and `database_url` with it."""
    own = _own_database_app
    with own.app.app_context():
        from aggregator.db import db

        tables = [f'"{t}"' for t in sa.inspect(db.engine).get_table_names() if t != "alembic_version"]
        db.session.execute(sa.text("SET LOCAL session_replication_role = replica"))  # the ledger's triggers
        db.session.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        db.session.commit()
    return own


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


@pytest.fixture(scope="session")
def localstripe():
    from tests.localstripe_server import LocalStripe

    server = LocalStripe()
    yield server
    server.stop()
