"""API keys: what a key is made of (generated, hashed: the plaintext is never stored) and who
a key speaks for (`Principal`). `aggregator.auth` authenticates a request's key against them."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: one tenant, one mode, one role (and the provider, for provider keys)."""

    tenant_id: str
    livemode: bool
    role: str
    provider_id: str | None
    key_id: str
    # The tenant's calendar in the key's mode, read with the key (one query): intake needs it for
    # every bill.
    period_anchor_day: int = 25
    timezone: str = "UTC"
    # False for a principal recalled from this process's memory of keys (`recall`): the key may
    # have been revoked since. Whatever acts on it must check the key again (`verified`).
    verified: bool = True

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
