"""The usage export's rows (docs/metering.md, Usage export): pure functions over the hourly
rollups of one (subscription, meter, dimension values) in a period, in hour order.

Each rollup hour gives one row whose quantity is that hour's per the meter's aggregation, so
that a platform's own billing can re-aggregate the rows exactly as rating does:

- `count`: the hour's events; `sum`: their total; `max` and `hourly_max`: the hour's largest
  value (Σ over hours is hourly_max's quantity, max over hours max's); `latest`: the hour's last
  value (the last row's is latest's quantity).
- `unique_count`: no quantity (distinct values are counted over the period, not per hour: an
  hour's distinct values do not add up); `events` still counts them.
- `time_weighted`: the value-hours of the row's *span*: from its hour (the period's start for a
  key's first row, so the value carried into the period counts) to the next row's hour (the
  period's end, or the export's `as_of` while the period is open, for the last). Spans tile the
  period, so Σ over a key's rows is the rated quantity. Value-hours are not always a finite
  decimal (ms / 3,600,000): `quantity` shows them to 9 places (half up) and `unit_milliseconds`,
  the integral in the meter's unit × milliseconds, is exact; Σ unit_milliseconds / 3,600,000 is
  the rated quantity exactly.

Every other quantity is exact, at the meter's decimals.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from fractions import Fraction

from . import aggregation as A

#: The export's columns before its dimensions' (one `dim_<property>` column per dimension).
COLUMNS = ("subscription", "external_billing_id", "customer", "provider", "provider_name", "plan", "meter",
           "unit", "aggregation", "hour", "quantity", "unit_milliseconds", "events")
DIMENSION_PREFIX = "dim_"
#: Places shown of a time-weighted quantity (value-hours; `unit_milliseconds` is the exact one).
TIME_WEIGHTED_PLACES = 9


def dimension_columns(dimensions: Iterable[str]) -> list[str]:
    """The dimension columns: one per property name, sorted."""
    return [DIMENSION_PREFIX + name for name in sorted(set(dimensions))]


def hour_quantities(aggregation: str, decimals: int, hours: Sequence[A.Hour], *, start_at: datetime,
                    end_at: datetime, carried: int | None = None) -> list[tuple[str, str]]:
    """For each of one key's `hours` (same subscription, meter and dims, in hour order) its
    (quantity, unit_milliseconds) as decimal strings ("" where none applies). `start_at`/`end_at`:
    the period's start and its end or the export's as-of; `carried`: the value held at start_at
    (time_weighted)."""
    scale = 10 ** decimals
    if aggregation == A.TIME_WEIGHTED:
        return [(A.format_quantity(Fraction(ms, scale * A.MS_PER_HOUR), TIME_WEIGHTED_PLACES),
                 A.format_quantity(Fraction(ms, scale), decimals))
                for ms in span_ms(hours, start_at, end_at, carried or 0)]
    return [(_hour_quantity(aggregation, h, scale, decimals), "") for h in hours]


def _hour_quantity(aggregation: str, h: A.Hour, scale: int, decimals: int) -> str:
    if aggregation == A.COUNT:
        return str(h.events)
    if aggregation == A.SUM:
        return A.format_quantity(Fraction(h.total, scale), decimals)
    if aggregation in (A.MAX, A.HOURLY_MAX):
        return A.format_quantity(Fraction(h.maximum, scale), decimals)
    if aggregation == A.LATEST:
        return A.format_quantity(Fraction(h.last_value, scale), decimals)
    if aggregation == A.UNIQUE_COUNT:
        return ""
    raise ValueError(f"unknown aggregation {aggregation!r}")


def span_ms(hours: Sequence[A.Hour], start_at: datetime, end_at: datetime, level: int) -> list[int]:
    """Each hour's span's integral (value × ms): the integral up to the span's end minus the
    integral up to its start, each computed as aggregation.time_weighted_ms computes the
    period's, so that the spans add up to exactly the period's (whatever the sub-millisecond
    instants). `level`: the value held at start_at."""
    out, total, at, before = [], 0, start_at, 0
    for i, h in enumerate(hours):
        end = hours[i + 1].hour if i + 1 < len(hours) else end_at
        total += level * A.ms(at, h.first_at) + h.tw_inner
        level, at = h.last_value, h.last_at
        upto = total + level * A.ms(at, max(end, at))
        out.append(upto - before)
        before = upto
    return out


def dimension_cells(dims: str, names: Sequence[str]) -> list[str]:
    """The values of `dims` (a rollup's dims key) under the dimension columns `names` (property
    names, in column order): "" where the row has none."""
    values: Mapping[str, str] = A.dims_of(dims)
    return [values.get(name, "") for name in names]
