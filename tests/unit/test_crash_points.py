"""The named crash points (aggregator.faults): the list the crash harness draws from is exactly
the points placed in the code, and a point kills only the process told to, at the hit it names,
once per run."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from aggregator.config import PROJECT_ROOT
from aggregator.faults import POINTS

PLACED = re.compile(r'crash_point\("([^"]+)"\)')


def test_every_listed_point_is_placed_in_the_code_once_named_and_every_placed_point_is_listed():
    placed = [name for path in (PROJECT_ROOT / "aggregator").rglob("*.py") if path.name != "faults.py"
              for name in PLACED.findall(path.read_text())]
    assert set(placed) == set(POINTS)
    assert len(POINTS) == len(set(POINTS)) >= 30


SCRIPT = """
import sys
from aggregator.faults import crash_point
for n in range(1, 4):
    print(n, flush=True)
    crash_point("test.point")
"""


def _run(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin", **env}, timeout=60)


def test_a_point_does_nothing_unless_named():
    assert _run({}).returncode == 0
    assert _run({"AGGREGATOR_CRASH_AT": "other.point"}).stdout.split() == ["1", "2", "3"]


def test_a_named_point_kills_the_process_at_the_hit_it_names(tmp_path: Path):
    died = _run({"AGGREGATOR_CRASH_AT": "other.point,test.point@2"})
    assert died.returncode == -signal.SIGKILL and died.stdout.split() == ["1", "2"]


def test_with_a_once_folder_only_the_first_process_to_reach_a_point_dies_there(tmp_path: Path):
    env = {"AGGREGATOR_CRASH_AT": "test.point", "AGGREGATOR_CRASH_ONCE": str(tmp_path)}
    assert _run(env).returncode == -signal.SIGKILL
    assert (tmp_path / "test.point").read_text().strip().isdigit()  # the pid that died
    assert _run(env).returncode == 0
