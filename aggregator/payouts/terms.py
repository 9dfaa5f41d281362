"""The terms a period's bills were invoiced on: each provider's revenue-share rate, recorded
when the period starts closing (`record_rates`), read by the payouts (`rates_of`)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Mapping

import sqlalchemy as sa

from .. import money
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


def moduli(provider_column, rates: Mapping[str, Decimal]) -> tuple[sa.ColumnElement, dict[str, int]]:
    """The modulus each provider's bills are grouped by in SQL for their fees (money.rate_modulus
    of its rate: 10 for 0.3, 8 for 0.125), as one expression over `provider_column` (a CASE with a
    branch per modulus but the most common), and the map provider id -> modulus. Amounts
    grouped by sign and magnitude mod it are split exactly by money.apply_rate_to_many."""
    of = {provider_id: money.rate_modulus([rate]) for provider_id, rate in rates.items()}
    by_modulus: dict[int, list[str]] = {}
    for provider_id, modulus in sorted(of.items()):
        by_modulus.setdefault(modulus, []).append(provider_id)
    if not by_modulus:
        return sa.literal(1, literal_execute=True), of
    common = max(by_modulus, key=lambda m: len(by_modulus[m]))
    others = [(provider_column.in_(ids), sa.literal(m, literal_execute=True))
              for m, ids in sorted(by_modulus.items()) if m != common]
    expression = sa.case(*others, else_=sa.literal(common, literal_execute=True)) if others else \
        sa.literal(common, literal_execute=True)
    return expression, of
