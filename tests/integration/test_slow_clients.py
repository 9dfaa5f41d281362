"""bin/start's front against slow clients (issue 16): 128 connections sending their headers or
bodies a byte at a time do not stall the API, and each is cut after the front's timeout.
(AGGREGATOR_FRONT=none in the environment runs them against gunicorn alone, which fails.)"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from aggregator.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 128
TIMEOUT = 6  # AGGREGATOR_FRONT_TIMEOUT_SECONDS for this test (bin/start: 10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """bin/start as an operator runs it (with a short front timeout); -> (port, stdout, stderr)."""
    tmp_path, port = tmp_path_factory.mktemp("served"), _free_port()
    env = {**os.environ, "AGGREGATOR_VAR_DIR": str(tmp_path), "PORT": str(port), "WORKERS": "1",
           "AGGREGATOR_EMBEDDED_WORKERS": "0", "AGGREGATOR_FRONT_TIMEOUT_SECONDS": str(TIMEOUT)}
    for name in ("AGGREGATOR_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "AGGREGATOR_TRUSTED_PROXIES"):
        env.pop(name, None)
    out, err = tmp_path / "start.out", tmp_path / "start.log"
    start = subprocess.Popen([str(PROJECT_ROOT / "bin" / "start")], env=env, stdout=out.open("w"),
                             stderr=err.open("w"), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "aggregator listening on" not in err.read_text():
            assert start.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.2)
        yield port, out, err
        start.send_signal(signal.SIGTERM)
        assert start.wait(timeout=60) == 0, err.read_text()
    finally:
        if start.poll() is None:
            os.killpg(start.pid, signal.SIGKILL)
    with pytest.raises(ConnectionRefusedError):  # the front stopped with it
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def _slow_connection(port: int, kind: str) -> socket.socket:
    """A client that has sent part of its request: headers cut short, or a POST's headers and
    the start of a body much longer than that."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == "headers":
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    else:
        sock.sendall(b"POST /v1/bills HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000\r\n\r\n{\"amount\": ")
    sock.setblocking(False)
    return sock


def _closed(sock: socket.socket) -> bool:
    """Whether the server has ended this connection (an answer such as 408, an EOF or a reset)."""
    try:
        return sock.recv(4096) is not None
    except BlockingIOError:
        return False
    except OSError:
        return True


def _probe(port: int) -> tuple[int, float]:
    began = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
        response.read()
        return response.status, time.monotonic() - began


def test_slow_clients_neither_stall_the_api_nor_stay(served):
    port, out, _ = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60):
        pass  # gunicorn's worker has booted
    header_clients = [_slow_connection(port, "headers") for _ in range(SLOW_CLIENTS * 3 // 4)]
    body_clients = [_slow_connection(port, "body") for _ in range(SLOW_CLIENTS // 4)]
    opened = time.monotonic()
    trickling = threading.Event()

    def trickle():  # a byte every half second on each header connection, for at most 3 timeouts
        while not trickling.wait(0.5) and time.monotonic() < opened + 3 * TIMEOUT:
            for sock in header_clients:
                try:
                    sock.send(b"x")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        time.sleep(0.5)
        probes = []
        for _ in range(10):
            probes.append(_probe(port))
            time.sleep(0.1)
        probed = time.monotonic() - opened
        assert [status for status, _ in probes] == [200] * 10
        assert max(seconds for _, seconds in probes) < 1, probes
        # ... while every slow client was still connected, waiting
        assert probed < TIMEOUT and not any(_closed(s) for s in header_clients + body_clients), probed

        # The front gives each one TIMEOUT for its headers (all of them, however it trickles) and
        # TIMEOUT between two reads of its body, then closes it.
        deadline = opened + TIMEOUT + 6
        waiting = header_clients + body_clients
        while waiting and time.monotonic() < deadline:
            waiting = [s for s in waiting if not _closed(s)]
            time.sleep(0.2)
        assert not waiting, f"{len(waiting)} slow clients still connected after {TIMEOUT + 6} s"
        assert time.monotonic() - opened >= TIMEOUT - 0.5
    finally:
        trickling.set()
        trickler.join(timeout=5)
        for sock in header_clients + body_clients:
            sock.close()

    # The app believes the front about the client's address, not the client's own header.
    request = urllib.request.Request(f"http://127.0.0.1:{port}/healthz",
                                     headers={"X-Forwarded-For": "203.0.113.9"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    time.sleep(0.5)
    lines = [line for line in out.read_text().splitlines() if '"GET /healthz HTTP/1.1" 200' in line]
    assert lines and all(line.startswith("127.0.0.1 - - [") for line in lines), lines[-3:]


def test_the_front_answers_a_body_over_the_limit_in_the_api_error_shape(served):
    port, _, _ = served
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/bills", method="POST",
                                     data=b"x" * (4 * 1024 * 1024 + 1),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    assert answer.value.code == 413
    assert answer.value.headers["Content-Type"] == "application/json"
    assert answer.value.read().decode() == (
        '{"error":{"type":"request_too_large","message":"The request body is too large.",'
        '"code":"request_too_large"}}\n')
