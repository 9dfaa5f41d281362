"""Finance's sessions, kept server-side so that signing out, revoking the key that signed in, or
the session's lifetime ends it for good, whatever a copy of the cookie says."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db


class FinanceSession(db.Model):
    """One sign-in to finance's pages. The cookie carries a random token (signed, as Flask's
    cookie is); only its SHA-256 is stored here, so the table does not hold what opens a session."""

    __tablename__ = "finance_sessions"

    token_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    key_id: Mapped[str] = mapped_column(sa.ForeignKey("api_keys.id"), index=True)  # the admin key that signed in
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
