"""bin/start: the API and a worker process, started together, ready when it says so, metrics
of both summed, and stopped together."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from aggregator.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_bin_start_serves_the_api_and_runs_a_worker_and_stops_both(tmp_path):
    port = _free_port()
    env = {**os.environ, "AGGREGATOR_VAR_DIR": str(tmp_path), "PORT": str(port), "WORKERS": "1",
           "AGGREGATOR_TICK_SECONDS": "0.5"}
    for name in ("AGGREGATOR_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "AGGREGATOR_EMBEDDED_WORKERS"):
        env.pop(name, None)
    log = tmp_path / "start.log"
    start = subprocess.Popen([str(PROJECT_ROOT / "bin" / "start")], env=env, stdout=subprocess.DEVNULL,
                             stderr=log.open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "aggregator listening on" not in log.read_text():
            assert start.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert _get(f"http://127.0.0.1:{port}/readyz") == (200, '{"status":"ready"}\n')  # ready when it says so
        while "tick:" not in log.read_text():  # the worker beside it
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(1)
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        ticks = next(line for line in metrics.splitlines() if line.startswith("aggregator_tick_duration_seconds_count"))
        assert float(ticks.split()[1]) >= 1, metrics  # counted in the worker, served by gunicorn's worker
        assert list((tmp_path / "metrics").glob("*.db"))
        start.send_signal(signal.SIGTERM)
        assert start.wait(timeout=60) == 0, log.read_text()
    finally:
        if start.poll() is None:
            os.killpg(start.pid, signal.SIGKILL)
    text = log.read_text()
    assert "worker stopped" in text
    [worker_pid] = {int(m) for m in re.findall(r"\[(\d+)\] INFO aggregator.worker: worker started", text)}
    with pytest.raises(ProcessLookupError):  # not left behind
        os.kill(worker_pid, 0)
