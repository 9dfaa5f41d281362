"""The usage export's rows (aggregator/metering/export.py) agree with rating: a key's rows
re-aggregate to exactly the quantity aggregation.quantity gives the period, whatever the samples
(sub-millisecond instants included) and the value carried into the period."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from aggregator.metering import aggregation as A
from aggregator.metering import export as X

START = datetime(2026, 10, 24, 13, tzinfo=timezone.utc)
END = START + timedelta(days=2)

samples = st.lists(st.tuples(st.integers(0, int((END - START).total_seconds() * 1_000_000) - 1),
                             st.integers(0, 10_000)), min_size=1, max_size=30)


def hours_of(points: list[tuple[int, int]]) -> list[A.Hour]:
    """The rollups the store would fold these (µs after START, value) samples into."""
    by_hour: dict[datetime, list[tuple[datetime, int]]] = {}
    for offset, value in sorted(points):
        at = START + timedelta(microseconds=offset)
        by_hour.setdefault(at.replace(minute=0, second=0, microsecond=0), []).append((at, value))
    return [A.Hour("", hour, len(s), sum(v for _, v in s), max(v for _, v in s), s[0][0], s[0][1], s[-1][0],
                   s[-1][1], A.inner_ms(s)) for hour, s in sorted(by_hour.items())]


@given(samples, st.integers(0, 10_000), st.integers(0, 3))
def test_time_weighted_rows_add_up_to_the_periods_quantity(points, carried, decimals):
    hours = hours_of(points)
    spans = X.span_ms(hours, START, END, carried)
    assert sum(spans) == A.time_weighted_ms(hours, START, END, {"": carried})
    rows = X.hour_quantities(A.TIME_WEIGHTED, decimals, hours, start_at=START, end_at=END, carried=carried)
    exact = sum(Fraction(unit_ms) for _, unit_ms in rows) / A.MS_PER_HOUR
    assert exact == A.quantity(A.TIME_WEIGHTED, hours, decimals, start_at=START, end_at=END, carried={"": carried})


@given(samples, st.integers(0, 3))
def test_hourly_rows_re_aggregate_to_the_periods_quantity(points, decimals):
    hours = hours_of(points)
    quantity = {aggregation: [Fraction(q) for q, _ in X.hour_quantities(aggregation, decimals, hours, start_at=START,
                                                                          end_at=END)]
                for aggregation in (A.COUNT, A.SUM, A.MAX, A.HOURLY_MAX, A.LATEST)}

    def rated(aggregation):
        return A.quantity(aggregation, hours, decimals, start_at=START, end_at=END)

    assert sum(quantity[A.COUNT]) == rated(A.COUNT)
    assert sum(quantity[A.SUM]) == rated(A.SUM)
    assert sum(quantity[A.HOURLY_MAX]) == rated(A.HOURLY_MAX)
    assert max(quantity[A.MAX]) == rated(A.MAX)
    assert quantity[A.LATEST][-1] == rated(A.LATEST)


def test_a_unique_count_row_has_no_quantity_and_dimensions_fill_their_columns():
    hours = hours_of([(0, 1), (10, 2)])
    assert X.hour_quantities(A.UNIQUE_COUNT, 0, hours, start_at=START, end_at=END) == [("", "")]
    assert X.dimension_columns(["region", "cloud", "region"]) == ["dim_cloud", "dim_region"]
    assert X.dimension_cells('{"cloud":"aws"}', ["cloud", "region"]) == ["aws", ""]
