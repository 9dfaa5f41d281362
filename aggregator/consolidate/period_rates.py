"""The terms a period's bills were invoiced on: each provider's revenue-share rate, recorded
when the period starts closing (`record_rates`), read by whatever splits those bills later: an
invoice's parts (`lines.py`), the payouts (`rates_of`)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import sqlalchemy as sa

from ..accounts.models import Provider
from ..db import db, dialect_insert
from .models import PeriodRate

_rates = PeriodRate.__table__


def record_rates(tenant_id: str, livemode: bool, period_start: date) -> None:
    """Every provider's current rate for this period, in the caller's transaction; a rate
    already recorded (a close run again) is kept."""
    providers = Provider.__table__
    select = sa.select(providers.c.tenant_id, providers.c.livemode, sa.literal(period_start, sa.Date),
                       providers.c.id, providers.c.revenue_share_rate).where(
        providers.c.tenant_id == tenant_id, providers.c.livemode == livemode)
    db.session.execute(dialect_insert(_rates).from_select(
        ["tenant_id", "livemode", "period_start", "provider_id", "revenue_share_rate"], select)
        .on_conflict_do_nothing())


def rates_of(tenant_id: str, livemode: bool, period_start: date) -> dict[str, Decimal]:
    """provider id -> its rate for the bills of this period."""
    return {provider: Decimal(rate) for provider, rate in db.session.execute(
        sa.select(_rates.c.provider_id, _rates.c.revenue_share_rate).where(
            _rates.c.tenant_id == tenant_id, _rates.c.livemode == livemode, _rates.c.period_start == period_start))}
