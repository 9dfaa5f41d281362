from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import db


class PeriodRate(db.Model):
    """A provider's revenue-share rate as it was when a period was invoiced: recorded once, when
    the period starts closing (no bill enters or leaves it after), so a later change of the
    provider's rate never rewrites what its bills of that period owe. One row per provider and
    period, not per bill: a bill's rate is its provider's row for the bill's period."""

    __tablename__ = "period_rates"

    tenant_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    period_start: Mapped[date] = mapped_column(sa.Date, primary_key=True)
    provider_id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    revenue_share_rate: Mapped[str] = mapped_column(sa.String(16))

    __table_args__ = (
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
    )
