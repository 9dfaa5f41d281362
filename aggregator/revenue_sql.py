"""The share rules over bills the database sums: the one grouping of bills for their shares, used
by the close (`consolidate/close_service.py`, a chunk's journal) and by the payout build
(`payouts/build_service.py`, the whole collections), with no row per bill in Python.

The database groups the bills by provider, currency, revenue share, the caller's own keys (the
payout build: the bills' period, whose terms they were invoiced on), sign and magnitude mod the
provider's modulus (the least common multiple of its policies' moduli: 10 for a rate of 0.3),
and, when the bills carry their own platform fee, whether they do; it sums their amounts (and
those fees). Each group is then split by its bills' policy (`revenue/terms.py`):
`ExplicitFee(Σ fee)` for bills with their own fee, `PassThrough` for pass-through bills, else the
provider's terms; `split_group` gives exactly the sum of the bill-by-bill splits, to the minor
unit (`tests/integration/test_share_groups.py` holds the SQL to that, on both databases).

Beside `revenue/`, not in it: it builds SQL, which the pure rules must not import. It imports no
area (the caller hands it the bills table), so consolidate and payouts both import it downward.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .revenue.terms import PASS_THROUGH, ExplicitFee, SharePolicy, Split

#: (provider id, *the caller's keys) -> the policy of that provider's revenue-share bills.
Terms = Mapping[tuple[Any, ...], SharePolicy]


@dataclass(frozen=True, slots=True)
class ShareGroup:
    """Bills of one provider, currency, revenue share, caller's keys and sign, split at once."""

    provider_id: str
    currency: str
    revenue_share: bool
    keys: tuple[Any, ...]  # the caller's keys' values, in the order given
    count: int
    split: Split  # fee and net summed over the group's bills

    @property
    def gross(self) -> int:
        return self.split.amount

    @property
    def negative(self) -> bool:
        """The group's bills are credits (each amount < 0)."""
        return self.split.amount < 0


class ShareGrouping:
    """One grouping of `bills` (a table or alias with provider_id, currency, revenue_share and
    amount columns) for their shares under `terms`, grouped also by the columns `by`. Bills of a
    provider missing from `terms` are split by `missing` (None: a KeyError). `own_fee`, when given,
    is the bills' own platform fee (NULL: none), which wins over the provider's terms."""

    def __init__(self, bills: sa.FromClause, terms: Terms, by: Sequence[sa.ColumnElement[Any]] = (),
                 own_fee: sa.ColumnElement[Any] | None = None, missing: SharePolicy | None = None) -> None:
        c = bills.c
        self._terms, self._missing, self._by, self._own_fee = terms, missing, len(by), own_fee is not None
        remainder = sa.func.abs(c.amount) % _modulus(c.provider_id, terms)
        self._keys: list[sa.ColumnElement[Any]] = [c.provider_id, c.currency, c.revenue_share, *by, c.amount < 0,
                                                   remainder]
        self._sums: list[sa.ColumnElement[Any]] = [sa.func.count(), sa.func.sum(c.amount)]
        if own_fee is not None:
            self._keys.append(own_fee.is_not(None))
            self._sums.append(sa.func.sum(own_fee))

    def select(self, query: sa.Select[Any]) -> sa.Select[Any]:
        """`query` (its FROM and WHERE choose the bills) selecting the groups (see `groups`)."""
        return query.add_columns(*self._keys, *self._sums).group_by(*self._keys)

    def groups(self, rows: Iterable[Sequence[Any]]) -> Iterator[ShareGroup]:
        """The groups of the rows `select` gave, each split by its bills' policy."""
        n, own_fee = self._by, self._own_fee
        for row in rows:
            provider_id, revenue_share = row[0], bool(row[2])
            keys = tuple(row[3:3 + n]) if n else ()
            remainder, count, total = int(row[4 + n]), int(row[5 + n + own_fee]), int(row[6 + n + own_fee])
            policy: SharePolicy | None
            if own_fee and row[5 + n]:
                policy = ExplicitFee(int(row[8 + n]))
            elif not revenue_share:
                policy = PASS_THROUGH
            else:
                policy = self._terms.get((provider_id, *keys), self._missing)
                if policy is None:
                    raise KeyError(f"no terms for the bills of provider {provider_id} {keys}")
            yield ShareGroup(provider_id, row[1], revenue_share, keys, count,
                             policy.split_group(count, total, remainder))

def _modulus(provider: sa.ColumnElement[Any], terms: Terms) -> sa.ColumnElement[Any]:
    """The modulus a provider's bills are grouped by, as one expression over `provider` (a CASE
    with a branch per modulus but the most common, which is also that of providers without terms):
    the least common multiple of the moduli of its policies."""
    of: dict[str, int] = {}
    for key, policy in terms.items():
        of[key[0]] = math.lcm(of.get(key[0], 1), policy.modulus)
    by_modulus: dict[int, list[str]] = {}
    for provider_id, modulus in sorted(of.items()):
        by_modulus.setdefault(modulus, []).append(provider_id)
    if not by_modulus:
        return sa.literal(1, literal_execute=True)
    common = max(by_modulus, key=lambda m: len(by_modulus[m]))
    others = [(provider.in_(ids), sa.literal(m, literal_execute=True))
              for m, ids in sorted(by_modulus.items()) if m != common]
    if not others:
        return sa.literal(common, literal_execute=True)
    return sa.case(*others, else_=sa.literal(common, literal_execute=True))
