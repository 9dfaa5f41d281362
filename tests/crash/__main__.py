"""Run the crash harness: `python -m tests.crash --database-url postgresql+psycopg://… --seed 1
[--points N | all] [--only point]`. The database's schema is dropped and migrated first (use a
database of its own). Prints one line per run and a summary; exits 1 on any violation."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

from tests.crash.harness import plan_runs, run_one
from tests.crash.servers import Servers, migrated_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--points", default="all", help="how many points (chosen by the seed), or all")
    parser.add_argument("--per-run", type=int, default=6, help="points killed in one cycle (default 6)")
    parser.add_argument("--only", action="append", help="this point (point or point@n); repeatable")
    parser.add_argument("--keep", type=Path, help="a folder for the runs' files and logs (default: a temporary one)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the runs' workers are stopped
    if args.only:
        runs = [[(p.partition("@")[0], int(p.partition("@")[2] or 1)) for p in args.only]]
    else:
        runs = plan_runs(args.seed, None if args.points == "all" else int(args.points), args.per_run)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="crash-"))
    started = time.monotonic()
    app, secret_key = migrated_app(args.database_url, folder)
    outcomes = []
    with Servers() as servers:
        for n, points in enumerate(runs):
            outcome = run_one(app, args.database_url, folder / f"run-{n:02d}", servers.all(), args.seed, points,
                              secret_key)
            outcomes.append(outcome)
            print(outcome.line(), flush=True)
            for violation in outcome.violations:
                print(f"    VIOLATION {violation}", flush=True)
    killed = {p for o in outcomes for p in o.killed}
    planned = {p for o in outcomes for p, _ in o.points}
    violations = sum(len(o.violations) for o in outcomes)
    print(f"seed {args.seed}: {len(outcomes)} cycles, {len(planned)} points planned, {len(killed)} killed at "
          f"(not reached: {', '.join(sorted(planned - killed)) or 'none'}), "
          f"{sum(o.resent for o in outcomes)} resent after a kill, "
          f"violations: {violations}, {time.monotonic() - started:.0f} s; files in {folder}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
