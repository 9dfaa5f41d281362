"""API keys: generation, hashing, and resolving a request's key to who is calling."""
from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from flask import g, request

from .accounts.models import ApiKey, Tenant
from .db import run_prepared
from .errors import Forbidden, Unauthenticated


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one tenant, one mode, one role (and the provider, for provider keys)."""

    tenant_id: str
    livemode: bool
    role: str
    provider_id: str | None
    key_id: str
    # The tenant's calendar, read with the key (one query): intake needs it for every bill.
    period_anchor_day: int = 25
    timezone: str = "UTC"

    @property
    def mode(self) -> str:
        return "live" if self.livemode else "test"


@dataclass(frozen=True, slots=True)
class NewKey:
    plaintext: str
    key_hash: bytes
    hint: str


_ROLE_PREFIX = {"admin": "admin", "provider": "prov"}


def hash_key(plaintext: str) -> bytes:
    # Keys carry 240 bits of randomness, so a fast hash is safe: nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).digest()


def generate_key(role: str, livemode: bool) -> NewKey:
    prefix = f"agg_{_ROLE_PREFIX[role]}_{'live' if livemode else 'test'}_"
    plaintext = prefix + secrets.token_urlsafe(30)
    return NewKey(plaintext, hash_key(plaintext), f"{prefix}…{plaintext[-4:]}")


@functools.cache
def _KEY_LOOKUP() -> sa.Select:
    """Built once: the lookup runs on every request."""
    keys, tenants = ApiKey.__table__.c, Tenant.__table__.c
    return (sa.select(keys.id, keys.tenant_id, keys.livemode, keys.role, keys.provider_id, keys.key_hash,
                      tenants.period_anchor_day, tenants.timezone)
            .join_from(ApiKey.__table__, Tenant.__table__, tenants.id == keys.tenant_id)
            .where(keys.key_hash == sa.bindparam("digest"), keys.revoked_at.is_(None)))


def authenticate(header: str | None) -> Principal:
    if not header or not header.startswith("Bearer "):
        raise Unauthenticated(
            "Missing API key: send 'Authorization: Bearer <key>'.", code="missing_api_key"
        )
    presented = header[len("Bearer "):].strip()
    digest = hash_key(presented)
    row = run_prepared(_KEY_LOOKUP(), {"digest": digest}, whole=True).fetchone()
    if row is None:
        raise Unauthenticated("Invalid or revoked API key.")
    key_id, tenant_id, livemode, role, provider_id, key_hash, anchor_day, timezone = row
    if not hmac.compare_digest(bytes(key_hash), digest):
        raise Unauthenticated("Invalid or revoked API key.")
    return Principal(tenant_id, bool(livemode), role, provider_id, key_id, anchor_day, timezone)


def require(role: str) -> Principal:
    """The calling principal, which must hold `role`; cached for the request."""
    principal = require_any()
    if principal.role != role:
        raise Forbidden(f"This endpoint needs a {role} key; a {principal.role} key was used.")
    return principal


def require_any() -> Principal:
    """The calling principal, whatever its role; authenticated once per request."""
    principal = g.get("principal")
    if principal is None:
        principal = g.principal = authenticate(request.headers.get("Authorization"))
    return principal
