"""What the payout emails to finance read of the payouts: a payout day's run awaiting review (its
payouts per currency, and per provider up to REVIEW_PROVIDERS), a failed payout with its
provider. Read when the email is built, as the payouts are then."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import sqlalchemy as sa

from ..accounts.models import Provider
from ..db import db
from ..payouts.models import Payout, PayoutRun

#: Providers listed by name in the review email; any beyond are counted.
REVIEW_PROVIDERS = 100


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    payouts: int
    amount: int


@dataclass(frozen=True)
class ProviderPayout:
    provider: str
    currency: str
    amount: int
    status: str


@dataclass(frozen=True)
class PayoutReview:
    run_id: str
    payout_date: date
    period_start: date
    currencies: list[CurrencyTotal]
    providers: list[ProviderPayout]  # the first REVIEW_PROVIDERS, by provider name
    more_providers: int


def _with_provider(query: sa.Select) -> sa.Select:
    return query.join(Provider, sa.and_(Provider.tenant_id == Payout.tenant_id, Provider.livemode == Payout.livemode,
                                        Provider.id == Payout.provider_id))


def payout_review(run_id: str) -> PayoutReview:
    """A payout day's payouts: counts and amounts to transfer per currency, and a line per
    provider and currency."""
    run = db.session.get(PayoutRun, run_id)
    p = Payout.__table__.c
    currencies = [CurrencyTotal(c, int(n), int(a or 0)) for c, n, a in db.session.execute(
        sa.select(p.currency, sa.func.count(), sa.func.sum(p.amount)).where(p.run_id == run_id)
        .group_by(p.currency).order_by(p.currency)).all()]
    providers = [ProviderPayout(*row) for row in db.session.execute(
        _with_provider(sa.select(Provider.name, Payout.currency, Payout.amount, Payout.status))
        .where(Payout.run_id == run_id).order_by(Provider.name, Payout.currency, Payout.id)
        .limit(REVIEW_PROVIDERS)).all()]
    return PayoutReview(run_id, run.payout_date, run.period_start, currencies, providers,
                        sum(c.payouts for c in currencies) - len(providers))


def payout_with_provider(payout_id: str) -> tuple[Payout, Provider]:
    return db.session.execute(_with_provider(sa.select(Payout, Provider)).where(Payout.id == payout_id)).one()
