"""Authentication: resolving a request's API key to who is calling (what a key is, and
`Principal`, are `aggregator.accounts.keys`, re-exported here)."""
from __future__ import annotations

import dataclasses
import functools
import hmac

import sqlalchemy as sa
from flask import g, request

from . import throttle
from .accounts.keys import NewKey, Principal, generate_key, hash_key  # noqa: F401  # re-exported
from .accounts.models import ApiKey, TenantSettings
from .db import run_prepared
from .errors import Forbidden, Unauthenticated


@functools.cache
def _KEY_LOOKUP(by: str) -> sa.Select:
    """Built once: the lookup runs on every request. `by` is "key_hash" or "id"."""
    keys, settings = ApiKey.__table__.c, TenantSettings.__table__.c
    return (sa.select(keys.id, keys.tenant_id, keys.livemode, keys.role, keys.provider_id, keys.key_hash,
                      settings.period_anchor_day, settings.timezone)
            .join_from(ApiKey.__table__, TenantSettings.__table__,
                       sa.and_(settings.tenant_id == keys.tenant_id, settings.livemode == keys.livemode))
            .where(keys[by] == sa.bindparam("value"), keys.revoked_at.is_(None)))


def _digest(header: str | None) -> bytes:
    if not header or not header.startswith("Bearer "):
        raise Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    return hash_key(header[len("Bearer "):].strip())


def authenticate(header: str | None) -> Principal:
    return _lookup(_digest(header))


def _lookup(digest: bytes) -> Principal:
    row = run_prepared(_KEY_LOOKUP("key_hash"), {"value": digest}, whole=True).fetchone()
    if row is None:
        _RECALLED.pop(digest, None)
        raise Unauthenticated("Invalid or revoked API key.")
    if not hmac.compare_digest(bytes(row[5]), digest):
        raise Unauthenticated("Invalid or revoked API key.")
    return _principal(row)


# Keys this process has authenticated, by digest (of the whole key: no two keys share one),
# with who they are. A key's tenant, mode, role and provider never change; its revocation and
# a change of the tenant's calendar (possible until the tenant has periods) can make an entry
# stale, and whatever acts on a recalled principal checks both first.
_RECALLED: dict[bytes, Principal] = {}
_RECALLED_MAX = 10_000


def _principal(row) -> Principal:
    """The principal of a _KEY_LOOKUP row, remembered for `recall`."""
    key_id, tenant_id, livemode, role, provider_id, key_hash, anchor_day, timezone = row
    principal = Principal(tenant_id, bool(livemode), role, provider_id, key_id, anchor_day, timezone)
    if len(_RECALLED) >= _RECALLED_MAX:
        _RECALLED.clear()  # a bound, not a policy: keys in use are relearnt at one lookup each
    _RECALLED[bytes(key_hash)] = dataclasses.replace(principal, verified=False)
    return principal


def recall(header: str | None) -> Principal:
    """The principal of a key this process authenticated before, from memory (no query), marked
    unverified; a key not seen before is authenticated now. For the intake hot path, whose one
    statement checks the key and the calendar again (otherwise, see `verified`)."""
    digest = _digest(header)
    return _RECALLED.get(digest) or _lookup(digest)


def verified(principal: Principal) -> Principal:
    """`principal`, read again from the database if it was recalled: the key must still be
    valid (Unauthenticated otherwise), and the tenant's calendar is read as it is now."""
    if principal.verified:
        return principal
    row = run_prepared(_KEY_LOOKUP("id"), {"value": principal.key_id}, whole=True).fetchone()
    if row is None:
        raise Unauthenticated("Invalid or revoked API key.")
    return _principal(row)


def require(role: str) -> Principal:
    """The calling principal, which must hold `role`; cached for the request."""
    principal = require_any()
    if principal.role != role:
        raise Forbidden(f"This endpoint needs a {role} key; a {principal.role} key was used.")
    return principal


def require_any(*, recalled: bool = False) -> Principal:
    """The calling principal, whatever its role; authenticated once per request (throttled:
    see `authenticate_request`), and counted against its key's request limit if there is one.
    With `recalled`, possibly from memory and unverified (see `recall`)."""
    principal = g.get("principal")
    if principal is None:
        principal = authenticate_request(request.headers.get("Authorization"), recalled=recalled)
        guard = throttle.current()
        if guard.limits.per_key:
            g.rate_limit_headers = guard.count_request(principal.key_id)
        g.principal = principal
    return principal


def authenticate_request(header: str | None, *, recalled: bool = False) -> Principal:
    """`authenticate` (or `recall`) the request's key, throttled: RateLimited, before the key is
    looked up, if the client's address or the key's prefix has failed too often for now; a
    failure (any key that does not authenticate; not a missing one) is counted against both."""
    guard, address, key = throttle.current(), request.remote_addr, throttle.presented_key(header)
    guard.check(address, key)
    try:
        return recall(header) if recalled else authenticate(header)
    except Unauthenticated:
        if key is not None:
            guard.failed(address, key)
        raise


def confirm() -> None:
    """Authenticate the request afresh if its principal was recalled (Unauthenticated if its key
    has been revoked since, which also forgets it): before any answer but the hot path's own."""
    if not g.principal.verified:
        g.principal = authenticate_request(request.headers.get("Authorization"))
