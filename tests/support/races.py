"""Concurrent callers for race tests: n clients of one key released together by a barrier."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.support.callers import Caller


def race(app, key: str, n: int, make_request) -> list:
    """Run `make_request(caller, i)` from n threads at once, each with its own test client;
    -> their answers in order of i."""
    barrier = threading.Barrier(n)

    def one(i):
        caller = Caller(app.test_client(), key)
        barrier.wait()
        return make_request(caller, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))
