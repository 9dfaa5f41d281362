"""`aggregator demo` beside a running server, as the README's quick start suggests: both on the
same defaults (one var folder), the server's worker must neither take the demo's work nor see its
tenant, and every webhook and email the demo reports must have arrived."""
from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from aggregator.config import PROJECT_ROOT
from aggregator.demo import DemoFailed, demo_settings

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _defaults(var) -> dict[str, str]:
    """The environment of a fresh checkout whose var/ folder is `var`."""
    env = {**os.environ, "AGGREGATOR_VAR_DIR": str(var), "PYTHONPATH": str(PROJECT_ROOT)}
    for name in ("AGGREGATOR_DATABASE_URL", "AGGREGATOR_STORAGE_DIR", "AGGREGATOR_SECRET_KEYS",
                 "PROMETHEUS_MULTIPROC_DIR", "AGGREGATOR_EMBEDDED_WORKERS", "AGGREGATOR_TEST_SMTP_URL",
                 "AGGREGATOR_DEMO_DATABASE_URL"):
        env.pop(name, None)
    return env


def _serve(var, port: int, log):
    """What bin/start runs once set up (its virtualenv is this Python's): the migration, then
    gunicorn with one worker process beside it, looking for due work every half second."""
    env = {**_defaults(var), "PROMETHEUS_MULTIPROC_DIR": str(var / "metrics"), "AGGREGATOR_EMBEDDED_WORKERS": "1",
           "AGGREGATOR_TICK_SECONDS": "0.5", "AGGREGATOR_DRAIN_SECONDS": "0.2"}
    (var / "metrics").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=PROJECT_ROOT, env=env,
                   check=True, capture_output=True)
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "--worker-class",
         "gthread", "--threads", "4", "-c", "python:aggregator.serving", "wsgi:app"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)


def _tenants(path) -> int:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT count(*) FROM tenants").fetchone()[0]


def test_the_demo_beside_a_running_server_loses_nothing_and_keeps_to_its_own_database(tmp_path):
    var, port, log = tmp_path / "var", _free_port(), tmp_path / "server.log"
    server = _serve(var, port, log)
    try:
        deadline = time.monotonic() + 120
        while "tick:" not in log.read_text():  # serving, and its worker looking for due work
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as ready:
            assert ready.status == 200
        demo = subprocess.run([sys.executable, "-c", "from aggregator.cli import main; main()", "demo"],
                              cwd=tmp_path, env=_defaults(var), capture_output=True, text=True, timeout=600)
        assert server.poll() is None, log.read_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    output = " ".join(demo.stdout.split())
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    # The console wraps a long path wherever it must: compare without whitespace.
    assert f"itsowndatabase(sqlite:///{var / 'demo' / 'aggregator.sqlite3'})" in "".join(output.split())
    [(webhooks, events, sent, emails)] = re.findall(
        r"Delivered: (\d+) of (\d+) events as signed webhooks to \S+ (\d+) of (\d+) emails", output)
    assert webhooks == events and int(events) >= 13, output
    assert sent == emails and int(emails) >= 13, output
    assert len(list((var / "demo" / "mail").glob("*.eml"))) == int(emails)  # where the demo says they are
    assert not (var / "mail").exists()  # the server sent none of them
    assert _tenants(var / "demo" / "aggregator.sqlite3") == 1
    assert _tenants(var / "aggregator.sqlite3") == 0  # the server never saw the demo's tenant


def test_the_demo_takes_none_of_the_servers_own_settings(tmp_path):
    server = {"AGGREGATOR_DATABASE_URL": "postgresql+psycopg://db.internal/aggregator",
              "AGGREGATOR_STORAGE_DIR": "/srv/storage", "AGGREGATOR_SECRET_KEYS": "server-key",
              "AGGREGATOR_TEST_SMTP_URL": "smtp://127.0.0.1:2525"}
    settings = demo_settings(tmp_path / "demo", env=server)
    assert settings.database_url == f"sqlite:///{tmp_path / 'demo' / 'aggregator.sqlite3'}"
    assert settings.storage_dir == tmp_path / "demo" / "storage"
    assert settings.secret_keys == () and settings.secret_key_file == tmp_path / "demo" / "secret.key"
    assert settings.test_smtp_url == "smtp://127.0.0.1:2525"  # an operator's sink is still used
    with pytest.raises(DemoFailed, match="a database of its own"):
        demo_settings(tmp_path / "demo", "postgresql+psycopg://db.internal/aggregator", env=server)
