"""The benchmarks keep working: each runs at a tiny size (figures are not asserted here)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from aggregator.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("script", ["ingest.py", "close.py", "pdf.py", "deliver.py", "deliver_email.py", "tick.py",
                                    "render.py", "charge.py", "payouts.py", "load.py", "rating.py", "metering.py"])
def test_benchmark_runs_at_a_tiny_size(postgres_only, script):
    result = subprocess.run([sys.executable, str(PROJECT_ROOT / "bench" / script), "--quick"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
