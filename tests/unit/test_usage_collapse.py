"""aggregation.collapse: one row per dimension key prices as the hours it replaces."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from aggregator.metering import aggregation as A

START = datetime(2026, 10, 25, tzinfo=timezone.utc)


@st.composite
def hours(draw):
    out = []
    for h in sorted(draw(st.sets(st.integers(0, 200), min_size=0, max_size=12))):
        for k, dims in enumerate(sorted(draw(st.sets(st.sampled_from(["", '{"r":"eu"}', '{"r":"us"}']), min_size=1)))):
            first = draw(st.integers(0, 1800))
            last = draw(st.integers(first, 3599))
            values = draw(st.lists(st.integers(-10**6, 10**9), min_size=1, max_size=5))
            at = START + timedelta(hours=h)
            out.append(A.Hour(dims, at, len(values), sum(values), max(values), at + timedelta(seconds=first),
                              values[0], at + timedelta(seconds=last, microseconds=k), values[-1]))  # no ties
    return out


@given(hours(), st.sampled_from([A.COUNT, A.SUM, A.MAX, A.LATEST, A.HOURLY_MAX]), st.integers(0, 3))
def test_collapsed_hours_price_as_the_hours(rows, aggregation, decimals):
    end = START + timedelta(days=30)
    collapsed = A.collapse(aggregation, rows)
    assert len(collapsed) == len({h.dims for h in rows})
    for dimension in ({}, {"r": "eu"}):
        assert A.component_quantity(aggregation, decimals, dimension, collapsed, start_at=START, end_at=end) == \
            A.component_quantity(aggregation, decimals, dimension, rows, start_at=START, end_at=end)
