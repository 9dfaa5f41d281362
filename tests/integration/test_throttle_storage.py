"""The throttle's counters: the database storage for `limits` (fixed windows on the app's clock,
atomic under concurrent hits), and a block counted by one process seen by another, on the
database and on Redis (when a Redis server answers at 127.0.0.1:6379)."""
from __future__ import annotations

import dataclasses
import os
import random
import socket
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aggregator import create_app, throttle
from aggregator.clock import FixedClock
from aggregator.db import db
from aggregator.throttle.storage import RATE_LIMITS, DatabaseStorage
from tests.support.clock import START
from tests.support.database import is_postgres

REDIS_URL = os.environ.get("AGGREGATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def storage(app):
    clock = FixedClock(START)
    with app.app_context():
        made = DatabaseStorage(engine=lambda: db.engine, now=lambda: clock.now().timestamp())
        made.reset()
        made.clock = clock
        yield made
        made.reset()


def test_hits_add_up_within_a_window_and_start_again_after_it(storage):
    assert [storage.incr("k", 60) for _ in range(3)] == [1, 2, 3]
    assert storage.get("k") == 3 and storage.get_expiry("k") == START.timestamp() + 60
    storage.clock.set(START + timedelta(seconds=59))
    assert storage.incr("k", 60, amount=2) == 5 and storage.get_expiry("k") == START.timestamp() + 60
    storage.clock.set(START + timedelta(seconds=60))
    assert storage.get("k") == 0 and storage.get_expiry("k") == storage.clock.now().timestamp()
    assert storage.incr("k", 60) == 1 and storage.get_expiry("k") == START.timestamp() + 120
    assert storage.get("other") == 0


def test_ended_windows_are_purged_and_clear_forgets_one_counter(storage):
    storage.incr("short", 10)
    storage.incr("long", 100)
    storage.incr("kept", 100)
    storage.clear("kept")
    storage.clock.set(START + timedelta(seconds=10))
    assert storage.purge() == 1
    with db.engine.connect() as connection:
        assert connection.execute(sa.select(RATE_LIMITS.c.key)).scalars().all() == ["long"]
    assert storage.check()


def test_concurrent_hits_are_each_counted_once(app, storage, database_url):
    threads, each = (8, 25) if is_postgres(database_url) else (4, 10)

    def hit():
        with app.app_context():
            for _ in range(each):
                storage.incr("race", 60)

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert storage.get("race") == threads * each


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


_FAIL_FIVE_TIMES = """
import sys
from aggregator import create_app
client = create_app().test_client()
client.environ_base["REMOTE_ADDR"] = sys.argv[1]
print(" ".join(str(client.get("/v1/tenant", headers={"Authorization": f"Bearer agg_prov_test_guess{n}"}).status_code)
               for n in range(5)))
"""


@pytest.mark.slow
@pytest.mark.parametrize("counters", ["database", "redis"])
def test_failures_counted_in_another_process_block_this_one(app, tenant, tmp_path, counters):
    """The 2,000-bad-keys attack spread over gunicorn's workers: what one process counted, every
    other one enforces, even against a right key."""
    if counters == "redis" and not _redis_answers():
        pytest.skip(f"no Redis server at {REDIS_URL}")
    settings = app.config["AGGREGATOR_SETTINGS"]
    storage_uri = REDIS_URL if counters == "redis" else ""
    address = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "AGGREGATOR_VAR_DIR": str(tmp_path),
           "AGGREGATOR_DATABASE_URL": settings.database_url, "AGGREGATOR_AUTH_FAILURES_PER_ADDRESS": "5/minute",
           "AGGREGATOR_AUTH_FAILURES_PER_KEY_PREFIX": "", "AGGREGATOR_RATELIMIT_STORAGE_URI": storage_uri}
    done = subprocess.run([sys.executable, "-c", _FAIL_FIVE_TIMES, address], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.split() == ["401"] * 5, done.stderr
    here = create_app({"SETTINGS": dataclasses.replace(settings, auth_failures_per_address="5/minute",
                                                       auth_failures_per_key_prefix="",
                                                       ratelimit_storage_uri=storage_uri or None),
                       "TESTING": True})  # the system clock, as the other process's
    try:
        client = here.test_client()
        right = {"Authorization": f"Bearer {tenant.admin['test'].key}"}
        blocked = client.get("/v1/tenant", headers=right, environ_base={"REMOTE_ADDR": address})
        assert blocked.status_code == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60
        assert client.get("/v1/tenant", headers=right, environ_base={"REMOTE_ADDR": "10.255.255.254"}).status_code \
            == 200
        with here.app_context():
            assert type(throttle.current().storage).__name__ == ("RedisStorage" if storage_uri else "DatabaseStorage")
    finally:
        with here.app_context():
            db.engine.dispose()


def test_unreachable_counters_leave_the_api_up_unthrottled(app, tenant, caplog):
    """Fail open: with Redis down, keys are still checked (401 and 200 as ever), nothing is
    throttled, and every miss is logged."""
    settings = dataclasses.replace(app.config["AGGREGATOR_SETTINGS"], auth_failures_per_address="1/minute",
                                   key_rate_limit="1/minute", ratelimit_storage_uri="redis://127.0.0.1:1/0")
    down = create_app({"SETTINGS": settings, "TESTING": True})
    try:
        client = down.test_client()
        for _ in range(3):
            assert client.get("/v1/tenant", headers={"Authorization": "Bearer agg_prov_test_guess"}).status_code \
                == 401
        right = client.get("/v1/tenant", headers={"Authorization": f"Bearer {tenant.admin['test'].key}"})
        assert right.status_code == 200 and "X-RateLimit-Limit" not in right.headers
        assert "throttle: counters unreachable" in caplog.text
    finally:
        with down.app_context():
            db.engine.dispose()


def test_a_keys_request_limit_counted_in_redis(app, tenant):
    """The recommended set-up for a key's request limit: its counters in Redis."""
    if not _redis_answers():
        pytest.skip(f"no Redis server at {REDIS_URL}")
    settings = dataclasses.replace(app.config["AGGREGATOR_SETTINGS"], key_rate_limit="2/minute",
                                   ratelimit_storage_uri=REDIS_URL)
    limited = create_app({"SETTINGS": settings, "TESTING": True})
    try:
        client = limited.test_client()
        key = {"Authorization": f"Bearer {tenant.admin['test'].key}"}  # a new key: its own counter
        answers = [client.get("/v1/tenant", headers=key) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
        assert 55 <= int(answers[2].headers["Retry-After"]) <= 60
    finally:
        with limited.app_context():
            db.engine.dispose()
