"""The webhook sender: the only module that makes HTTP requests (urllib3).

No server-side request forgery: each new connection resolves its host once, refuses it if ANY
address the name resolves to is one `addresses.refusal` refuses, and connects to the very
addresses it checked (no second lookup, so DNS cannot change in between). The Host header, TLS
SNI and certificate verification still use the host name. Redirects are never followed (a
3xx is a failed delivery). `allow_private` (AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1, development and
tests) lifts the address rules.

Connections are kept alive in per-host pools and requests sent concurrently from a thread pool:
thousands of deliveries a second to one receiver."""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Sequence

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from .addresses import refusal

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 15.0
MAX_RESPONSE_BYTES = 64 * 1024  # read (and drop) at most this much of an answer
USER_AGENT = "aggregator-webhooks/1"


class AddressRefused(NewConnectionError):
    """The host resolves to an address webhooks may not be sent to."""


def _checked_addresses(conn, host: str, port: int) -> list[str]:
    """Every address `host` resolves to, if all may be connected to (AddressRefused otherwise)."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NameResolutionError(host, conn, exc) from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not conn.allow_private:
        for address in addresses:
            if reason := refusal(ipaddress.ip_address(address.split("%")[0])):
                raise AddressRefused(conn, f"{host} resolves to {address}, {reason}: webhooks are not sent there "
                                           "(AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1 allows it in development)")
    return addresses


class _Pinned:
    """A urllib3 connection that connects only to addresses it has checked (see the module)."""

    allow_private = False

    def _new_conn(self) -> socket.socket:
        addresses = _checked_addresses(self, self._dns_host, self.port)
        error: OSError | None = None
        for address in addresses:  # each one checked above: no further lookup of the name
            try:
                return create_connection((address, self.port), self.timeout, source_address=self.source_address,
                                         socket_options=self.socket_options)
            except socket.timeout as exc:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out "
                                                f"(connect timeout={self.timeout})") from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")


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
    error: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, allow_private: bool = False, *, workers: int = 32, connect_timeout: float = CONNECT_TIMEOUT,
                 total_timeout: float = TOTAL_TIMEOUT, ca_certs: str | None = None):
        self.allow_private = allow_private
        self.workers = workers
        flag = {"allow_private": allow_private}
        http = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), flag)
        https = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), flag)
        self._pools = urllib3.PoolManager(num_pools=256, maxsize=workers, block=False, retries=False,
                                          timeout=urllib3.Timeout(connect=connect_timeout, read=total_timeout,
                                                                  total=total_timeout),
                                          headers={"User-Agent": USER_AGENT}, ca_certs=ca_certs)
        self._pools.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https})}
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def send(self, request: Outgoing) -> Outcome:
        started = time.perf_counter()
        try:
            response = self._pools.request("POST", request.url, body=request.body, redirect=False,
                                           preload_content=False,
                                           headers={"Content-Type": "application/json", **request.headers})
            try:
                response.read(MAX_RESPONSE_BYTES, decode_content=False)
                if response.read(1, decode_content=False):  # longer than we read: not worth keeping alive
                    response.close()
            finally:
                response.release_conn()
            return Outcome(response.status, _ms_since(started),
                           None if 200 <= response.status < 300 else f"HTTP {response.status}")
        except HTTPError as exc:
            return Outcome(None, _ms_since(started), _describe(exc))

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


def _describe(exc: BaseException) -> str:
    """The root cause, in one line (urllib3 wraps causes in MaxRetryError and others)."""
    while getattr(exc, "reason", None) is not None and isinstance(exc.reason, BaseException):
        exc = exc.reason
    text = str(exc)
    if isinstance(exc, NewConnectionError) and ": " in text:  # "<conn object>: message"
        text = text.split(": ", 1)[1]
    return f"{type(exc).__name__}: {text}"[:500]
