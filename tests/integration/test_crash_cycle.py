"""The crash harness's CI slice (tests/crash): one billing cycle on PostgreSQL in worker and actor
processes, killed (kill -9) at 6 named crash points chosen by a seed, restarted, and checked:
every accepted bill in exactly one invoice or cancelled, gapless numbers, one PaymentIntent per
attempt, no bill paid out twice, balanced books, every event and email once. The seed rotates by
day (AGGREGATOR_CRASH_SEED fixes it); a failure names it and how to replay it. The full run over
every point: python -m tests.crash (docs/reliability.md, "Crash safety")."""
from __future__ import annotations

import os
from datetime import date

import pytest

from tests.crash.harness import plan_runs, run_one
from tests.crash.servers import Servers, migrated_app

pytestmark = [pytest.mark.slow]


@pytest.fixture
def app(own_database):
    """An app on a database of the test's own: the cycle's workers do whatever is due in their
    database, which in the tests' shared one includes all that earlier tests left due."""
    return own_database.app


@pytest.fixture
def database_url(own_database) -> str:
    return own_database.url


def test_a_cycle_killed_at_six_points_loses_and_doubles_nothing(postgres_only, app, database_url, tmp_path):
    seed = int(os.environ.get("AGGREGATOR_CRASH_SEED") or date.today().toordinal())
    (points,) = plan_runs(seed, 6, per_run=6)
    harness_app, secret_key = migrated_app(database_url, tmp_path, reset=False)  # `app` migrated it
    with Servers() as servers:
        outcome = run_one(harness_app, database_url, tmp_path / "run", servers.all(), seed, points, secret_key,
                          customers=3, bills=20)
    replay = (f"replay: python -m tests.crash --database-url <a database of its own> --seed {seed} --points 6 "
              f"(or --only {' --only '.join(f'{p}@{n}' for p, n in points)})")
    assert outcome.violations == [], f"{outcome.line()}\n{replay}\n" + "\n".join(outcome.violations)
    assert outcome.killed, f"no point was reached: {outcome.line()}"
