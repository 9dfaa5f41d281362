"""The webhook sender: POSTs deliveries through `outbound.connections` (urllib3 pools whose
connections resolve each host once, refuse it if any of its addresses is loopback, private,
link-local and the like, and connect to the very addresses checked: see there). Redirects are
never followed (a 3xx is a failed delivery). `allow_private` (AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1,
development and tests) lifts the address rules.

An attempt's `error` is a short reason a tenant may read (`address_refused`, `timeout`,
`http_503`, …); its `detail` (host names, addresses) goes to the operator's logs only.

Connections are kept alive in per-host pools and requests sent concurrently from a thread pool:
thousands of deliveries a second to one receiver."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Sequence

import urllib3
from urllib3.exceptions import HTTPError

from ..outbound import VERSION
from ..outbound.connections import classify, describe, pinned_pools

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
MAX_RESPONSE_BYTES = 64 * 1024  # read (and drop) at most this much of an answer
USER_AGENT = f"aggregator-webhooks/{VERSION}"


@dataclass(frozen=True)
class Outgoing:
    """One POST to make."""

    url: str
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Outcome:
    """What became of one POST: the status code if an answer came, else the error."""

    status_code: int | None
    duration_ms: int
    error: str | None = None  # a short reason the tenant may read: address_refused, timeout, http_503, …
    detail: str | None = None  # what exactly happened, for the operator's logs only

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, allow_private: bool = False, *, workers: int = 32, connect_timeout: float = CONNECT_TIMEOUT,
                 total_timeout: float = TOTAL_TIMEOUT, ca_certs: str | None = None):
        self.allow_private = allow_private
        self.workers = workers
        self._pools = pinned_pools(allow_private, num_pools=256, maxsize=workers, block=False, retries=False,
                                   timeout=urllib3.Timeout(connect=connect_timeout, read=total_timeout,
                                                           total=total_timeout), ca_certs=ca_certs)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def send(self, request: Outgoing) -> Outcome:
        started = time.perf_counter()
        try:
            response = self._pools.request("POST", request.url, body=request.body, redirect=False,
                                           preload_content=False,
                                           headers={"Content-Type": "application/json", "User-Agent": USER_AGENT,
                                                    **request.headers})
            try:
                response.read(MAX_RESPONSE_BYTES, decode_content=False)
                if response.read(1, decode_content=False):  # longer than we read: not worth keeping alive
                    response.close()
            finally:
                response.release_conn()
            return Outcome(response.status, _ms_since(started),
                           None if 200 <= response.status < 300 else f"http_{response.status}")
        except HTTPError as exc:
            return Outcome(None, _ms_since(started), classify(exc), describe(exc))

    def send_many(self, requests: Sequence[Outgoing]) -> list[Outcome]:
        """Send concurrently; the outcomes in the order of `requests`."""
        if len(requests) <= 1:
            return [self.send(r) for r in requests]
        with self._lock:  # one pool of threads, whichever worker thread asks first
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="webhooks")
        return list(self._executor.map(self.send, requests))

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
        self._pools.clear()


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

