"""Finance's sessions: started by an admin key's sign-in, ended by signing out, by the key's
revocation or by their lifetime. Each use case owns its transaction; `now` is the app's clock."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa

from ..accounts.models import ApiKey
from ..auth import Principal
from ..db import db
from .models import FinanceSession


def _hash(token: str) -> bytes:
    # 256 random bits: a fast hash is enough, there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def start_session(principal: Principal, now: datetime, lifetime: timedelta) -> str:
    """A new session for an admin key; returns its token (for the cookie, never stored)."""
    token = secrets.token_urlsafe(32)
    db.session.add(FinanceSession(token_hash=_hash(token), tenant_id=principal.tenant_id,
                                  livemode=principal.livemode, key_id=principal.key_id, created_at=now,
                                  expires_at=now + lifetime))
    db.session.commit()
    return token


def live_session(token: str, now: datetime) -> FinanceSession | None:
    """The session of `token` if it is still alive: not signed out, not expired, and its key not
    revoked (checked here, in the same query, so revoking a key ends its sessions at once)."""
    return db.session.scalars(
        sa.select(FinanceSession)
        .join(ApiKey, ApiKey.id == FinanceSession.key_id)
        .where(FinanceSession.token_hash == _hash(token), FinanceSession.revoked_at.is_(None),
               FinanceSession.expires_at > now, ApiKey.revoked_at.is_(None))).one_or_none()


def end_session(token: str, now: datetime) -> None:
    """Sign out: the session is revoked (a second sign-out keeps the first time)."""
    db.session.execute(sa.update(FinanceSession)
                       .where(FinanceSession.token_hash == _hash(token), FinanceSession.revoked_at.is_(None))
                       .values(revoked_at=now))
    db.session.commit()
