"""Grouping bills by their provider's terms in SQL: the modulus each provider's fees are
grouped by (the rates themselves are consolidate's, recorded at the close: `period_rates.py`)."""
from __future__ import annotations

from decimal import Decimal
from typing import Mapping

import sqlalchemy as sa

from .. import money


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
