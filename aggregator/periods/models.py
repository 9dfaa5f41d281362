from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import UTCDateTime, db
from ..states import machine

PERIOD_STATES = machine("period", {"open": {"closing"}, "closing": {"closed"}, "closed": set()})


class PeriodRecord(db.Model):
    """A tenant's invoicing period in one mode, once anything has happened in it."""

    __tablename__ = "periods"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    end: Mapped[date] = mapped_column(sa.Date)
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    closing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why a close that ran left the period closing ("missing_fx_rates", "errors"): the scheduler
    # does not run it again until something that could unblock it happens (an FX rate is set)
    # or an operator closes it again.
    waiting: Mapped[str | None] = mapped_column(sa.String(32))

    __table_args__ = (sa.CheckConstraint("status IN ('open', 'closing', 'closed')", name="status"),)
