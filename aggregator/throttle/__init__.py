"""Throttling: failed authentication, per client address and per key prefix, and (when
configured) requests per API key. Counting is the `limits` library's fixed-window strategy over
a storage shared by every process: the service's database by default (throttle.storage), or
Redis.

Failed authentication: a key that is malformed, unknown or revoked (API or finance sign-in)
counts one against the client's address (an IPv6 address by its /64: one host's usual share)
and one against the key's prefix. Once either is over its limit, every request from that
address, or with a key of that prefix, is answered 429 with Retry-After until the window ends,
whether its key is right or not, before its key is even looked up.

The key prefix: our keys have no public identifier, only their role and mode
(`agg_prov_live_`) before the secret, and counting on that alone would let anyone lock out
every key of a kind. The prefix counted is that part and the secret's first 8 characters: it
catches guessing aimed at one key whose beginning has leaked (from many addresses), and blocks
no other key. It is stored hashed.

The hot path: a request whose key is right writes nothing, and reads the counters only when
this process has not looked at its address and prefix for `recheck_seconds` (it remembers that
they were clear, and that they were blocked until when): with a steady caller, no read at all
in the common case. The cost is that a block set by another process reaches this one up to
`recheck_seconds` late. A key's request limit (off by default) counts every request: one write
each; use Redis for it.

When the counters cannot be reached (Redis down), the throttle fails open: requests are
authenticated as usual, unthrottled, and each miss is logged; the API stays up."""
from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Callable

from flask import Flask, Response, current_app, g
from limits import RateLimitItem, parse_many
from limits.errors import StorageError
from limits.storage import Storage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from ..db import db
from ..errors import RateLimited
from .storage import DatabaseStorage

log = logging.getLogger(__name__)

_KEY_KIND = re.compile(r"agg_[a-z]+_[a-z]+_")
SECRET_CHARACTERS_COUNTED = 8
#: The most addresses and prefixes a process remembers the state of (a bound, not a policy).
REMEMBERED_MAX = 10_000


def limits_of(text: str, setting: str = "limit") -> list[RateLimitItem]:
    """'20/minute', '100/second;5000/minute' (the `limits` notation); '' or 'off': none.
    ValueError naming `setting` for anything else."""
    text = text.strip()
    if text in ("", "off"):
        return []
    try:
        return parse_many(text)
    except ValueError:
        raise ValueError(f"{setting}: {text!r} is not a rate limit; write e.g. '20/minute' or "
                         "'100/second;5000/minute', or 'off'.") from None


@functools.lru_cache(maxsize=4096)  # parsing an address costs more than the rest of the check
def address_of(remote_addr: str | None) -> str:
    """The client address counted: an IPv4 address as is, an IPv6 address by its /64 (a host
    usually holds a whole /64), anything else (no address) as one shared "unknown"."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return "unknown"
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def presented_key(authorization: str | None) -> str | None:
    """The key text in an Authorization header (None: no header, nothing was tried)."""
    if authorization is None:
        return None
    return authorization[len("Bearer "):].strip() if authorization.startswith("Bearer ") else authorization


def prefix_of(key: str) -> str:
    """The counted prefix of a presented key (see the module's docstring), hashed: its kind
    (`agg_prov_live_`) and the secret's first characters; for text of another form, its first
    characters."""
    kind = _KEY_KIND.match(key)
    end = (kind.end() if kind else 0) + SECRET_CHARACTERS_COUNTED
    return hashlib.sha256(key[:end].encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class Limits:
    per_address: list[RateLimitItem]
    per_key_prefix: list[RateLimitItem]
    per_key: list[RateLimitItem]


class Throttle:
    """The limits and their shared counters, and what this process remembers of them."""

    def __init__(self, storage: Storage, limits: Limits, *, now: Callable[[], float], recheck_seconds: float):
        self.storage, self.limits, self.now, self.recheck_seconds = storage, limits, now, recheck_seconds
        self.limiter = FixedWindowRateLimiter(storage)
        self._clear_until: dict[tuple[str, str], float] = {}  # (scope, identifier): every limit clear
        self._blocked_until: dict[str, float] = {}  # counter: its window's end

    def _scopes(self, remote_addr: str | None, key: str | None):
        yield "address", address_of(remote_addr), self.limits.per_address
        if key is not None:
            yield "prefix", prefix_of(key), self.limits.per_key_prefix

    def check(self, remote_addr: str | None, key: str | None) -> None:
        """RateLimited if this address, or this key's prefix, has failed too often for now."""
        now = self.now()
        for scope, identifier, items in self._scopes(remote_addr, key):
            if not items or self._clear_until.get((scope, identifier), 0) > now:
                continue  # the hot path: known clear, nothing read
            try:
                wait = max(self._blocked_for(item, scope, identifier, now) for item in items)
            except StorageError:
                log.warning("throttle: counters unreachable; %s %s not checked", scope, identifier, exc_info=True)
                return  # fail open: the key is still checked, only the throttle is not
            if wait:
                raise RateLimited(
                    f"Too many failed authentications from this {'address' if scope == 'address' else 'key'};"
                    f" try again in {wait} seconds.", retry_after=wait, code="too_many_failed_authentications")
            _remember(self._clear_until, (scope, identifier), now + self.recheck_seconds)

    def _blocked_for(self, item: RateLimitItem, scope: str, identifier: str, now: float) -> int:
        """Seconds until this counter's window ends if it is over its limit, else 0."""
        counter = item.key_for(scope, identifier)
        if self._blocked_until.get(counter, 0) > now:
            return _seconds(self._blocked_until[counter] - now)
        if self.limiter.test(item, scope, identifier):
            return 0
        # a window never ends more than its length from now: Redis keeps expiries in whole seconds of
        # its own clock, which put the end up to a second past that (a Retry-After of 61 on a minute)
        ends = min(self.storage.get_expiry(counter), now + item.get_expiry())
        _remember(self._blocked_until, counter, ends)
        return _seconds(ends - now)

    def failed(self, remote_addr: str | None, key: str | None) -> None:
        """Count a failed authentication against the address and the key's prefix."""
        for scope, identifier, items in self._scopes(remote_addr, key):
            self._clear_until.pop((scope, identifier), None)  # read it afresh next time
            try:
                for item in items:
                    self.limiter.hit(item, scope, identifier)
            except StorageError:
                log.warning("throttle: counters unreachable; a failure of %s %s not counted", scope, identifier,
                            exc_info=True)

    def count_request(self, key_id: str) -> dict[str, str]:
        """Count a request against its key's limits (if any): RateLimited when one is spent,
        else the X-RateLimit-* headers of the one nearest to being spent."""
        tightest = None
        for item in self.limits.per_key:
            try:
                allowed = self.limiter.hit(item, "key", key_id)
                stats = self.limiter.get_window_stats(item, "key", key_id)
            except StorageError:
                log.warning("throttle: counters unreachable; key %s not counted", key_id, exc_info=True)
                return {}
            headers = {"X-RateLimit-Limit": str(item.amount), "X-RateLimit-Remaining": str(stats.remaining),
                       "X-RateLimit-Reset": str(math.ceil(stats.reset_time))}
            if not allowed:
                wait = _seconds(stats.reset_time - self.now())
                raise RateLimited(f"This key's request limit ({item}) is spent; try again in {wait} seconds.",
                                  retry_after=wait, headers=headers, code="key_rate_limited")
            if tightest is None or stats.remaining < tightest[0]:
                tightest = (stats.remaining, headers)
        return tightest[1] if tightest else {}


def _seconds(span: float) -> int:
    return max(1, math.ceil(span))


def _remember(memory: dict, counter, until: float) -> None:
    if len(memory) >= REMEMBERED_MAX:
        memory.clear()
    memory[counter] = until


def current() -> Throttle:
    return current_app.extensions["aggregator.throttle"]


def init_app(app: Flask, settings) -> Throttle:
    """The app's throttle, from its settings: counters in Redis if a redis:// URI is given, else
    in the app's database, timed by the app's clock (so a test clock moves the windows)."""
    limits = Limits(limits_of(settings.auth_failures_per_address, "AGGREGATOR_AUTH_FAILURES_PER_ADDRESS"),
                    limits_of(settings.auth_failures_per_key_prefix, "AGGREGATOR_AUTH_FAILURES_PER_KEY_PREFIX"),
                    limits_of(settings.key_rate_limit, "AGGREGATOR_KEY_RATE_LIMIT"))
    if settings.ratelimit_storage_uri:
        storage = storage_from_string(settings.ratelimit_storage_uri, wrap_exceptions=True)
        now = time.time  # the server's own expiry
    else:
        def now() -> float:
            return current_app.extensions["aggregator.adapters"].clocks.base.now().timestamp()

        storage = DatabaseStorage(engine=lambda: db.engine, now=now, wrap_exceptions=True)
    throttle = app.extensions["aggregator.throttle"] = Throttle(storage, limits, now=now,
                                                                recheck_seconds=settings.ratelimit_recheck_seconds)
    if limits.per_key:
        @app.after_request
        def _rate_limit_headers(response: Response) -> Response:
            response.headers.update(g.get("rate_limit_headers") or {})
            return response
    return throttle
