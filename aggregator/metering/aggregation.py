"""How a meter's events become a quantity (docs/metering.md): pure functions over hourly
rollups, so that rating, current usage and thresholds read the same few rows whatever the
number of raw events.

A rollup (`Hour`) holds the events of one (subscription, meter, dimension values, period, UTC
hour): their count, sum, maximum, first and last sample, and the time-weighted integral between
its own samples. Every aggregation composes from those:

- `count`: Σ events; `sum`: Σ values; `max`: the largest value; `latest`: the value of the
  latest event; `unique_count`: distinct values of a property (counted in their own table);
- `hourly_max` (Omnistrate's rule): per hour, the maximum of the samples in it, summed over the
  hours (per dimension values: an instance's cores are not another's);
- `time_weighted`: each sample's value held until the next one (the last held to the end),
  per dimension values, as value × hours (GB-hours). The value held at the period's start is the
  last sample before it (`carried`). Integrals are exact at a millisecond's resolution.

Values are integers scaled by 10^decimals (the meter's); quantities come out as exact Fractions.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

COUNT, SUM, MAX, LATEST = "count", "sum", "max", "latest"
UNIQUE_COUNT, TIME_WEIGHTED, HOURLY_MAX = "unique_count", "time_weighted", "hourly_max"
AGGREGATIONS = (COUNT, SUM, MAX, LATEST, UNIQUE_COUNT, TIME_WEIGHTED, HOURLY_MAX)
#: Aggregations over time measure each period on its own: they cannot run across periods.
TIMED = (TIME_WEIGHTED, HOURLY_MAX)
PERIOD, NEVER = "period", "never"
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True, slots=True)
class Hour:
    """One rollup row."""

    dims: str
    hour: datetime
    events: int
    total: int
    maximum: int
    first_at: datetime
    first_value: int
    last_at: datetime
    last_value: int
    tw_inner: int = 0  # Σ value × ms between the hour's own consecutive samples


def dims_key(dimensions: Sequence[str], properties: Mapping[str, object]) -> str:
    """The key of an event's dimension values: "" for a meter without dimensions, else the
    values it carries of the meter's dimensions as canonical JSON."""
    if not dimensions:
        return ""
    found = {name: str(properties[name]) for name in sorted(dimensions) if name in properties}
    return json.dumps(found, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def dims_of(key: str) -> dict[str, str]:
    return json.loads(key) if key else {}


def matches(key: str, dimension: Mapping[str, str]) -> bool:
    """Whether usage with dimension values `key` is priced by a component for `dimension`
    (a component without one prices all of its meter's usage)."""
    if not dimension:
        return True
    values = dims_of(key)
    return all(values.get(name) == value for name, value in dimension.items())


def ms(a: datetime, b: datetime) -> int:
    """Milliseconds from a to b (floored)."""
    delta = b - a
    return (delta.days * 86_400_000) + delta.seconds * 1000 + delta.microseconds // 1000


def merge(hours: Iterable[Hour]) -> Hour | None:
    """Rollups of the same key merged (the same hour's rows of several batches compose only
    for the additive fields; time-weighted hours are recomputed from their events instead)."""
    out: Hour | None = None
    for h in hours:
        if out is None:
            out = h
            continue
        first = out if out.first_at <= h.first_at else h
        last = h if h.last_at >= out.last_at else out
        out = Hour(out.dims, out.hour, out.events + h.events, out.total + h.total, max(out.maximum, h.maximum),
                   first.first_at, first.first_value, last.last_at, last.last_value, out.tw_inner + h.tw_inner)
    return out


def quantity(aggregation: str, hours: Sequence[Hour], decimals: int, *, start_at: datetime, end_at: datetime,
             carried: Mapping[str, int] | None = None, uniques: int = 0) -> Fraction:
    """The quantity of `hours` (one subscription's rollups of one meter, already filtered to
    the dimension values priced) over [start_at, end_at). `carried`: dims key -> the value
    held at start_at (time_weighted); `uniques`: the distinct values counted (unique_count)."""
    scale = 10 ** decimals
    if aggregation == COUNT:
        return Fraction(sum(h.events for h in hours))
    if aggregation == UNIQUE_COUNT:
        return Fraction(uniques)
    if aggregation == SUM:
        return Fraction(sum(h.total for h in hours), scale)
    if aggregation == MAX:
        return Fraction(max((h.maximum for h in hours), default=0), scale)
    if aggregation == LATEST:
        last = max(hours, key=lambda h: h.last_at, default=None)
        return Fraction(last.last_value if last else 0, scale)
    if aggregation == HOURLY_MAX:
        return Fraction(sum(h.maximum for h in hours), scale)
    if aggregation == TIME_WEIGHTED:
        return Fraction(time_weighted_ms(hours, start_at, end_at, carried or {}), scale * MS_PER_HOUR)
    raise ValueError(f"unknown aggregation {aggregation!r}")


def collapse(aggregation: str, hours: Iterable[Hour]) -> list[Hour]:
    """`hours` (of one subscription and meter) as one row per dimension key, from which
    `quantity` gives the same result for `aggregation` (any but time_weighted, which chains
    hours): counts, sums and maxima merged, the first and last samples kept; for hourly_max
    `maximum` is the sum of the hours' maxima. What a store may compute where the rows are."""
    out: dict[str, Hour] = {}
    for h in hours:
        o = out.get(h.dims)
        if o is None:
            out[h.dims] = h
            continue
        first = h if h.first_at < o.first_at else o
        last = h if h.last_at > o.last_at else o
        out[h.dims] = Hour(h.dims, min(o.hour, h.hour), o.events + h.events, o.total + h.total,
                           o.maximum + h.maximum if aggregation == HOURLY_MAX else max(o.maximum, h.maximum),
                           first.first_at, first.first_value, last.last_at, last.last_value)
    return [out[k] for k in sorted(out)]


def time_weighted_ms(hours: Sequence[Hour], start_at: datetime, end_at: datetime,
                     carried: Mapping[str, int]) -> int:
    """Σ over dimension values of ∫ value dt in value × ms over [start_at, end_at): each sample
    held until the next, the last until end_at, the carried value from start_at to the first."""
    by_dims: dict[str, list[Hour]] = {}
    for h in hours:
        by_dims.setdefault(h.dims, []).append(h)
    total = 0
    for dims in set(by_dims) | set(carried):
        rows = sorted(by_dims.get(dims, ()), key=lambda h: h.first_at)
        level, at = carried.get(dims, 0), start_at
        for h in rows:
            if h.first_at >= end_at:
                break
            total += level * ms(at, h.first_at) + h.tw_inner
            level, at = h.last_value, h.last_at
        if at < end_at:
            total += level * ms(at, end_at)
    return total


def inner_ms(samples: Sequence[tuple[datetime, int]]) -> int:
    """Σ value × ms between consecutive samples (sorted by time) of one hour: its `tw_inner`."""
    return sum(v * ms(t, samples[i + 1][0]) for i, (t, v) in enumerate(samples[:-1]))


def percent_used(quantity: Fraction, included: Fraction) -> Fraction | None:
    """Quantity as a % of the included units (None when nothing is included)."""
    return None if not included else quantity * 100 / included


def thresholds_crossed(before: Fraction, after: Fraction, included: Fraction,
                       thresholds: Iterable[int]) -> list[int]:
    """The thresholds (% of included units) that usage going from `before` to `after` reaches
    (a quantity at exactly a threshold has reached it)."""
    if not included:
        return []
    return sorted(t for t in thresholds if before * 100 < t * included <= after * 100)


def format_quantity(value: Fraction, places: int = 6) -> str:
    """An exact quantity as a decimal string: exact when it has at most `places` places,
    otherwise rounded half up to `places` (display only; rating keeps the Fraction)."""
    scaled = value * 10 ** places
    whole = int(scaled)
    rest = scaled - whole
    if rest and abs(rest) * 2 >= 1:
        whole += 1 if value > 0 else -1
    sign = "-" if whole < 0 else ""
    digits = str(abs(whole)).rjust(places + 1, "0")
    text = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".") if places else digits
    return sign + text


def component_quantity(aggregation: str, decimals: int, dimension: Mapping[str, str], hours: Sequence[Hour],
                       *, start_at: datetime, end_at: datetime, carried: Mapping[str, int] | None = None,
                       uniques: Iterable[tuple[str, str]] = ()) -> Fraction:
    """The quantity a usage component prices: its meter's usage restricted to the component's
    dimension values (`hours`, `carried` and `uniques` being the subscription's for the meter)."""
    if dimension:
        hours = [h for h in hours if matches(h.dims, dimension)]
        carried = {d: v for d, v in (carried or {}).items() if matches(d, dimension)}
    distinct = {v for d, v in uniques if not dimension or matches(d, dimension)}
    return quantity(aggregation, hours, decimals, start_at=start_at, end_at=end_at, carried=carried,
                    uniques=len(distinct))
