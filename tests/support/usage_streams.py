"""Random usage event streams and the quantity of each aggregation computed straight from the
raw events (a GROUP BY in Python): what the rollups must agree with (tests/unit/test_usage_aggregation.py
folds them purely; tests/integration/test_usage_store.py through the real store)."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

from hypothesis import strategies as st

from aggregator.metering import aggregation as A

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)  # the previous period starts
START = T0 + timedelta(hours=5)  # the rated period [START, END)
END = START + timedelta(hours=6)
ZONES = [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3))]


def period_of(at: datetime) -> date:
    return date(2026, 11, 2) if at >= START else date(2026, 11, 1)


@st.composite
def streams(draw):
    """Events (id, timestamp, value, dims key, unique value) with distinct instants (which event
    is the latest at one instant is not defined by their content), then their arrival: a
    permutation cut into batches."""
    count = draw(st.integers(min_value=0, max_value=40))
    offsets = draw(st.lists(st.integers(min_value=0, max_value=int((END - T0).total_seconds() * 1000) - 1),
                            min_size=count, max_size=count, unique=True))
    events = []
    for n, offset in enumerate(offsets):
        zone = draw(st.sampled_from(ZONES))
        micros = draw(st.integers(min_value=0, max_value=999))
        at = (T0 + timedelta(milliseconds=offset, microseconds=micros)).astimezone(zone)
        value = draw(st.integers(min_value=-50, max_value=10_000))
        region = draw(st.sampled_from(["eu", "us", None]))
        dims = A.dims_key(("region",), {} if region is None else {"region": region})
        events.append((f"e{n}", at, value, dims, draw(st.sampled_from(["u1", "u2", "u3", "u4"]))))
    order = draw(st.permutations(events))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(order)), max_size=5)))
    batches, last = [], 0
    for cut in cuts + [len(order)]:
        batches.append(order[last:cut])
        last = cut
    return events, batches


def raw(events, aggregation: str, dimension: dict, *, never: bool = False) -> Fraction:
    """The quantity straight from the raw events of the period (all periods so far: `never`)."""
    mine = [e for e in events if A.matches(e[3], dimension)]
    inside = sorted((e for e in mine if (never or e[1] >= START) and e[1] < END), key=lambda e: e[1])
    if aggregation == A.COUNT:
        return Fraction(len(inside))
    if aggregation == A.SUM:
        return Fraction(sum(e[2] for e in inside))
    if aggregation == A.MAX:
        return Fraction(max((e[2] for e in inside), default=0))
    if aggregation == A.LATEST:
        return Fraction(inside[-1][2] if inside else 0)
    if aggregation == A.UNIQUE_COUNT:
        return Fraction(len({e[4] for e in inside}))
    if aggregation == A.HOURLY_MAX:
        per_hour: dict[tuple, int] = {}
        for _, at, value, dims, _ in inside:
            key = (dims, at.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0))
            per_hour[key] = max(per_hour.get(key, value), value)
        return Fraction(sum(per_hour.values()))
    assert aggregation == A.TIME_WEIGHTED
    total = 0
    for dims in {e[3] for e in mine}:
        before = [e for e in mine if e[3] == dims and e[1] < START]
        level = max(before, key=lambda e: e[1])[2] if before else 0
        at = START
        for _, t, value, d, _ in inside:
            if d == dims:
                total += level * A.ms(at, t)
                level, at = value, t
        total += level * A.ms(at, END)
    return Fraction(total, A.MS_PER_HOUR)
