"""What the sized benchmarks (close, payouts) share around their runs: the run at the asked
size and, with --scale-check, at a tenth of it; the result document; the end of a run."""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent


def _size_db(url: str, suffix: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return u.set(database=u.database + suffix).render_as_string(hide_password=False)


def _source() -> dict:
    """The commit measured, and whether the service code differs from it (others edit it)."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    try:
        return {"head": git("rev-parse", "--short", "HEAD"),
                "uncommitted_changes": bool(git("status", "--porcelain", "--", "aggregator", "migrations"))}
    except OSError:
        return {}


def run_sizes(benchmark: str, args, run_size: Callable[[argparse.Namespace, str], dict]) -> dict:
    """run_size(args, label) at args' size, then (--scale-check) at a tenth of it in the database
    named like args' with `_tenth`, without profiling. -> the result document."""
    started = time.monotonic()
    runs = [run_size(args, "quick" if args.quick else "full")]
    if args.scale_check:
        small = argparse.Namespace(**vars(args))
        small.customers, small.bills = args.customers // 10, args.bills // 10
        small.database_url = _size_db(args.database_url, "_tenth")
        small.profile = None
        runs.append(run_size(small, "tenth"))
    return {"benchmark": benchmark, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([sys.executable, *sys.argv]), "source": _source(),
            "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
            "runs": runs, "elapsed_s": round(time.monotonic() - started, 1)}


def code_label(result: dict) -> str:
    source = result["source"]
    return f"code {source.get('head')}{' + uncommitted changes' if source.get('uncommitted_changes') else ''}"


def finish(result: dict, json_path: str | None, failures: list[str]) -> int:
    """Write the JSON (--json), print the elapsed time and the failures. -> the exit status."""
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"figures written to {json_path}")
    print(f"elapsed {result['elapsed_s']} s")
    for f in failures:
        print("FAILED: " + f)
    return 1 if failures else 0


def size_arguments(p: argparse.ArgumentParser, default_url: str, seed: int) -> None:
    """The options of a sized run: its database, its size, --quick and --scale-check."""
    p.add_argument("--database-url", default=None,
                   help=f"PostgreSQL database to DROP and recreate (default {default_url}, _quick with --quick)")
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--bills", type=int, default=1_000_000)
    p.add_argument("--providers", type=int, default=50)
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--quick", action="store_true", help="500 customers / 5,000 bills, seconds")
    p.add_argument("--scale-check", action="store_true",
                   help="also run at a tenth of the size (database ..._tenth) and compare peak RSS")


def sized(p: argparse.ArgumentParser, args: argparse.Namespace, default_url: str) -> argparse.Namespace:
    """--quick's size (in the parent only: its children get the sizes explicitly), the default
    database (`_quick` with --quick), and at least one bill per customer."""
    if args.quick and args.phase is None:
        args.customers, args.bills, args.providers = 500, 5_000, 10
    if args.database_url is None:
        args.database_url = default_url + ("_quick" if args.quick else "")
    if args.bills < args.customers:
        p.error("--bills must be >= --customers (every customer gets at least one bill)")
    return args
