#!/usr/bin/env python
"""Idle tick benchmark: a worker's tick over many tenants of which none is due.

Not a pytest test. Run from the repository root with the project's virtualenv:

    .venv/bin/python bench/tick.py            # 1,000 then 10,000 tenants (2,000 / 20,000 lanes)
    .venv/bin/python bench/tick.py --quick    # 100 then 1,000 tenants, a few seconds

What it does: drops and creates the database (default
postgresql://postgres@127.0.0.1:5432/aggregator_bench_tick; ..._quick with --quick), runs the
migrations, then for each size inserts tenants in bulk with SQL (generate_series; no API) and
one lane per tenant and mode: live lanes wake at their next period end (in 20 days), test
lanes wait for their clock to move (wake_at NULL), as idle tenants' lanes are. VACUUM ANALYZE,
then times --ticks calls of aggregator.worker.Worker.tick() (what the scheduler runs every
AGGREGATOR_TICK_SECONDS) after --warmup ones, and counts the SQL statements each issues
(SQLAlchemy before_cursor_execute), and the same for an idle drain (one batch of each queue).

Targets: an idle tick in <= 50 ms, and a number of statements that does not grow with tenants.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdb import fresh_database  # noqa: E402
from close import log  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/aggregator_bench_tick"
TARGET_MS = 50.0


def add_tenants(conninfo: str, first: int, last: int) -> None:
    """Tenants first..last-1 and their two lanes, idle."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        conn.execute("INSERT INTO tenants (id, created_at) SELECT 'ten_bench' || lpad(g::text, 10, '0'), "
                     "now() FROM generate_series(%s::int, %s::int) g", (first, last - 1))
        conn.execute("INSERT INTO due_lanes (tenant_id, livemode, next_due_at, wake_at) "
                     "SELECT 'ten_bench' || lpad(g::text, 10, '0'), m, now() + interval '20 days', "
                     "CASE WHEN m THEN now() + interval '20 days' END "
                     "FROM generate_series(%s::int, %s::int) g CROSS JOIN (VALUES (true), (false)) modes(m)",
                     (first, last - 1))
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE tenants")
        conn.execute("VACUUM ANALYZE due_lanes")


class StatementCounter:
    def __init__(self, engine):
        import sqlalchemy as sa

        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._count)

    def _count(self, *args):
        self.count += 1


def measure(worker, counter: StatementCounter, ticks: int, warmup: int) -> dict:
    import logging

    logging.getLogger("aggregator.worker").setLevel(logging.WARNING)  # no line per tick here
    for _ in range(warmup):
        worker.tick()
    times, statements = [], []
    for _ in range(ticks):
        before = counter.count
        t = time.perf_counter()
        report = worker.tick()
        times.append((time.perf_counter() - t) * 1000)
        statements.append(counter.count - before)
        assert report.lanes == 0, "nothing should be due"
    before = counter.count
    drain_t = time.perf_counter()
    drained = worker.drain()
    drain_ms = (time.perf_counter() - drain_t) * 1000
    assert drained.taken == 0
    return {"median_ms": statistics.median(times), "max_ms": max(times), "statements": sorted(set(statements)),
            "drain_ms": drain_ms, "drain_statements": counter.count - before}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ticks", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args(argv)
    sizes = (100, 1_000) if args.quick else (1_000, 10_000)
    url = args.database_url or (DEFAULT_URL + ("_quick" if args.quick else ""))
    app_url, conninfo = fresh_database(url)
    import flask_migrate

    from aggregator import create_app
    from aggregator.db import db
    from aggregator.worker import Worker

    app = create_app()
    with app.app_context():
        flask_migrate.upgrade()
        counter = StatementCounter(db.engine)
    worker, rows, have = Worker(app), [], 0
    for tenants in sizes:
        log(f"adding tenants up to {tenants:,} ({2 * tenants:,} lanes)")
        add_tenants(conninfo, have, tenants)
        have = tenants
        result = measure(worker, counter, args.ticks, args.warmup)
        rows.append((tenants, result))
    print("\n| tenants | lanes | idle tick median ms | max ms | SQL statements per tick | idle drain ms "
          "| statements per drain |")
    print("|--:|--:|--:|--:|--:|--:|--:|")
    for tenants, r in rows:
        print(f"| {tenants:,} | {2 * tenants:,} | {r['median_ms']:.1f} | {r['max_ms']:.1f} | "
              f"{', '.join(map(str, r['statements']))} | {r['drain_ms']:.1f} | {r['drain_statements']} |")
    largest = rows[-1][1]
    constant = rows[0][1]["statements"] == largest["statements"]
    print(f"\ntarget: idle tick <= {TARGET_MS:.0f} ms: {'MET' if largest['median_ms'] <= TARGET_MS else 'NOT MET'}"
          f" ({largest['median_ms']:.1f} ms at {rows[-1][0]:,} tenants); statements constant: "
          f"{'yes' if constant else 'NO'}")
    return 0 if constant else 1


if __name__ == "__main__":
    sys.exit(main())
