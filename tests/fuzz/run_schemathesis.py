"""The long schemathesis run: every operation, admin keys of both modes and a provider key, all
phases (examples, coverage, fuzzing, stateful), many examples, on SQLite and (if
AGGREGATOR_TEST_DATABASE_URL names one) PostgreSQL. Prints its figures: requests, operations,
failures by check, duration; exits 1 if any check failed.

    PYTHONPATH=. python tests/fuzz/run_schemathesis.py [--examples 50] [--seed 16] [--steps 50]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from tests.fuzz import schemathesis_run


def _app(database_url: str, storage: Path):
    import flask_migrate

    from aggregator import create_app
    from aggregator.clock import FixedClock
    from aggregator.config import Settings

    if database_url.startswith("postgresql"):
        engine = sa.create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    clock = FixedClock(datetime(2026, 11, 10, 12, tzinfo=timezone.utc))
    # As the tests' app (tests/conftest.py): a tenant may name its test-mode Stripe address, and
    # the fuzzer's many refused keys from 127.0.0.1 are not throttled (the clock stands still, so a
    # window would never pass and every later request would be a 429).
    app = create_app({"SETTINGS": Settings(database_url=database_url, storage_dir=storage,
                                           secret_key_file=storage / "secret.key", webhooks_allow_private=False,
                                           stripe_tenant_api_base=True, auth_failures_per_address="",
                                           auth_failures_per_key_prefix=""),
                      "CLOCK": clock, "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade()
    return app, clock


def _tenant(app, clock):
    from aggregator.accounts import service
    from tests.support.callers import Caller, Tenant

    with app.app_context():
        created = service.create_tenant({"name": "Fuzzed", "timezone": "Australia/Sydney",
                                         "default_currency": "AUD"}, clock.now())
        tenant_id = created.tenant.id
    client = app.test_client()
    return Tenant(tenant_id, {m: Caller(client, k) for m, k in created.admin_keys.items()}, client)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--progress", action="store_true", help="a line per scenario and failure as they come")
    parser.add_argument("--database", action="append", help="database URLs (default: SQLite, and "
                        "AGGREGATOR_TEST_DATABASE_URL if set)")
    args = parser.parse_args(argv)
    storage = Path(tempfile.mkdtemp(prefix="fuzz-"))
    databases = args.database or [f"sqlite:///{storage / 'fuzz.sqlite3'}",
                                  *filter(None, [os.environ.get("AGGREGATOR_TEST_DATABASE_URL")])]
    failed = False
    for url in databases:
        app, clock = _app(url, storage)
        figures = schemathesis_run.run_all(app, _tenant(app, clock), max_examples=args.examples, seed=args.seed,
                                           phases=tuple(args.phases.split(",")), max_steps=args.steps,
                                           progress=(lambda line: print(line, flush=True)) if args.progress else None)
        missing = schemathesis_run.documented_operations(app) - figures.operations
        print(f"{sa.engine.make_url(url).get_backend_name()}: {figures.summary()}; "
              f"operations not reached: {len(missing)}", flush=True)
        for line in figures.examples + figures.errors + sorted(missing):
            print("  " + line.replace("\n", " ")[:2000])
        failed |= bool(figures.failures or figures.errors)
        with app.app_context():
            from aggregator.db import db

            db.engine.dispose()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
