"""Connections that go only where `addresses.refusal` allows (no server-side request forgery).

Each new connection resolves its host once, refuses it if ANY address the name resolves to is
refused, and connects to the very addresses it checked (no second lookup, so DNS cannot change
in between: no rebinding). The Host header, TLS SNI and certificate verification still use the
host name. `allow_private` (AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE=1, development and tests) lifts
the address rules.

`classify` turns a failed request into a short reason a tenant may read (`address_refused`,
`timeout`, …): the detail (host names, addresses, the peer's words) is for the operator's logs."""
from __future__ import annotations

import ipaddress
import socket

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import TimeoutError as Urllib3Timeout
from urllib3.util.connection import create_connection

from .addresses import refusal


class AddressRefused(NewConnectionError):
    """The host resolves to an address requests may not be sent to."""


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
                raise AddressRefused(conn, f"{host} resolves to {address}, {reason}: nothing is sent there "
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


def pinned_pools(allow_private: bool, **options) -> urllib3.PoolManager:
    """A urllib3 PoolManager (`options`: its own) whose every connection is checked and pinned."""
    flag = {"allow_private": allow_private}
    http = type("PinnedHTTPConnection", (_Pinned, HTTPConnection), flag)
    https = type("PinnedHTTPSConnection", (_Pinned, HTTPSConnection), flag)
    pools = urllib3.PoolManager(**options)
    pools.pool_classes_by_scheme = {
        "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https})}
    return pools


def root_cause(exc: BaseException) -> BaseException:
    """The error under urllib3's wrappers (MaxRetryError and others keep it as `reason`)."""
    while getattr(exc, "reason", None) is not None and isinstance(exc.reason, BaseException):
        exc = exc.reason
    return exc


def classify(exc: BaseException) -> str:
    """What a tenant is told of a request that got no answer: address_refused, name_not_resolved,
    timeout, tls_error or connection_failed (never a host, an address or the peer's words)."""
    exc = root_cause(exc)
    if isinstance(exc, AddressRefused):
        return "address_refused"
    if isinstance(exc, NameResolutionError):
        return "name_not_resolved"
    if isinstance(exc, NewConnectionError):  # (urllib3 makes it a kind of ConnectTimeoutError)
        return "connection_failed"
    if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError, Urllib3Timeout, socket.timeout)):
        return "timeout"
    if isinstance(exc, SSLError):
        return "tls_error"
    if isinstance(exc, ProtocolError) and isinstance(exc.__context__, socket.timeout):
        return "timeout"
    return "connection_failed"


def describe(exc: BaseException) -> str:
    """The root cause in one line, for the operator's logs."""
    exc = root_cause(exc)
    text = str(exc)
    if isinstance(exc, NewConnectionError) and ": " in text:  # "<conn object>: message"
        text = text.split(": ", 1)[1]
    return f"{type(exc).__name__}: {text}"[:500]
