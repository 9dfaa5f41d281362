"""Exchange rates: the tenant's, per mode, each in effect from a date."""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from .. import due, money
from ..auth import Principal
from ..db import db
from ..errors import InvalidInput
from ..pagination import Page, paginate
from ..periods import transitions as period_transitions
from .models import FxRate


def set_fx_rate(principal: Principal, base: str, quote: str, rate: Decimal, effective_date: date,
                now: datetime) -> FxRate:
    """Record the rate (quote per one base) in effect from `effective_date`; re-sending the same
    pair and date replaces the rate. A close waiting for rates may now complete: it is due again."""
    if base == quote:
        raise InvalidInput.on("quote", "The quote currency must differ from the base.")
    existing = db.session.scalars(sa.select(FxRate).where(
        FxRate.tenant_id == principal.tenant_id, FxRate.livemode == principal.livemode,
        FxRate.base == base, FxRate.quote == quote, FxRate.effective_date == effective_date)).first()
    if existing is None:
        existing = FxRate(tenant_id=principal.tenant_id, livemode=principal.livemode, base=base,
                          quote=quote, effective_date=effective_date)
        db.session.add(existing)
    existing.rate, existing.created_at = money.format_rate(rate), now
    if period_transitions.unblock(principal.tenant_id, principal.livemode):
        due.nudge(principal.tenant_id, principal.livemode)
    db.session.commit()
    return existing


def list_fx_rates(principal: Principal, limit: int, starting_after: str | None = None) -> Page:
    return paginate(sa.select(FxRate).where(FxRate.tenant_id == principal.tenant_id,
                                            FxRate.livemode == principal.livemode),
                    FxRate.id, limit, starting_after)


def rates_in_effect(tenant_id: str, livemode: bool, on: date) -> dict[tuple[str, str], Decimal]:
    """For each pair, the rate with the latest effective date on or before `on`."""
    rows = db.session.execute(sa.select(FxRate.base, FxRate.quote, FxRate.rate, FxRate.effective_date)
                              .where(FxRate.tenant_id == tenant_id, FxRate.livemode == livemode,
                                     FxRate.effective_date <= on)
                              .order_by(FxRate.effective_date)).all()
    return {(r.base, r.quote): Decimal(r.rate) for r in rows}
