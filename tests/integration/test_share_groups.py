"""The one SQL share grouping (aggregator/revenue_sql.py), on the real database: whatever the
bills, their terms, the caller's keys and the bills' own fees, the groups it splits add up to
exactly what each bill's split gives, per provider, currency and key."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.revenue.terms import RevenueShare, policy
from aggregator.revenue_sql import ShareGrouping
from tests.support.revenue import rates

PROVIDERS = ["prov_a", "prov_b", "prov_c", "prov_d"]  # prov_d has no terms: `missing`
PERIODS = [date(2026, 9, 25), date(2026, 10, 25)]

_bills = sa.Table("share_group_bills", sa.MetaData(),
                  sa.Column("id", sa.Integer, primary_key=True), sa.Column("provider_id", sa.String(40)),
                  sa.Column("currency", sa.String(3)), sa.Column("revenue_share", sa.Boolean),
                  sa.Column("amount", sa.BigInteger), sa.Column("period_start", sa.Date),
                  sa.Column("platform_fee", sa.BigInteger, nullable=True), prefixes=["TEMPORARY"])

bills_strategy = st.lists(st.tuples(
    st.sampled_from(PROVIDERS), st.sampled_from(["USD", "JPY"]), st.booleans(),
    st.one_of(st.integers(-10**12, 10**12), st.integers(-20, 20)), st.sampled_from(PERIODS),
    st.one_of(st.none(), st.none(), st.integers(-10**12, 10**12))), min_size=1, max_size=40)
terms_strategy = st.dictionaries(st.tuples(st.sampled_from(PROVIDERS[:3]), st.sampled_from(PERIODS)), rates,
                                 min_size=6, max_size=6)


@pytest.fixture
def connection(app):
    from aggregator.db import db

    with app.app_context(), db.engine.connect() as conn:
        with conn.begin() as transaction:
            _bills.create(conn, checkfirst=True)
            yield conn
            _bills.drop(conn)  # (SQLite's DDL is not part of the transaction)
            transaction.rollback()


def _grouped(conn, terms, bills, by_period: bool, own_fees: bool):
    conn.execute(_bills.delete())
    conn.execute(_bills.insert(), [{"id": n, "provider_id": p, "currency": c, "revenue_share": r, "amount": a,
                                    "period_start": s, "platform_fee": f if own_fees else None}
                                   for n, (p, c, r, a, s, f) in enumerate(bills)])
    c = _bills.c
    keyed = {(p, s) if by_period else (p,): RevenueShare(rate) for (p, s), rate in terms.items()
             if by_period or s == PERIODS[0]}
    grouping = ShareGrouping(_bills, keyed, by=[c.period_start] if by_period else (),
                             own_fee=c.platform_fee if own_fees else None, missing=RevenueShare(Decimal(0)))
    found: dict[tuple, Counter] = defaultdict(Counter)
    for group in grouping.groups(conn.execute(grouping.select(sa.select().select_from(_bills)))):
        key = (group.provider_id, group.currency, group.revenue_share, group.negative, *group.keys)
        found[key].update({"count": group.count, "fee": group.split.fee, "net": group.split.net})
    return found


def _one_by_one(terms, bills, by_period: bool, own_fees: bool):
    expected: dict[tuple, Counter] = defaultdict(Counter)
    for provider_id, currency, revenue_share, amount, start, fee in bills:
        rate = terms.get((provider_id, start if by_period else PERIODS[0]), Decimal(0))
        share = policy(revenue_share, rate, fee if own_fees else None).split(amount)
        key = (provider_id, currency, revenue_share, amount < 0, *((start,) if by_period else ()))
        expected[key].update({"count": 1, "fee": share.fee, "net": share.net})
    return expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(terms_strategy, bills_strategy, st.booleans(), st.booleans())
def test_the_grouped_shares_are_the_bills_shares_exactly(connection, terms, bills, by_period, own_fees):
    """The close's shape (terms per provider) and the payout build's (terms per provider and
    period, grouped by period), with and without bills carrying their own fee: each group's split
    is the sum of its bills' own splits (each bill rounded on its own), to the minor unit."""
    assert _grouped(connection, terms, bills, by_period, own_fees) == _one_by_one(terms, bills, by_period, own_fees)


def test_bills_of_a_provider_without_terms_are_refused_unless_the_caller_says_what_applies(connection):
    connection.execute(_bills.insert(), [{"id": 1, "provider_id": "prov_x", "currency": "USD",
                                          "revenue_share": True, "amount": 1000, "period_start": PERIODS[0]}])
    grouping = ShareGrouping(_bills, {("prov_a",): RevenueShare(Decimal("0.3"))})
    with pytest.raises(KeyError):
        list(grouping.groups(connection.execute(grouping.select(sa.select().select_from(_bills)))))
