"""What follows a failed charge (payments/dunning.py): retried on the schedule counted from the
first failure, waiting for a payment method or a recorded payment, or given up."""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from aggregator.payments.dunning import NOT_CHARGEABLE, Failure, next_step


@dataclass
class Settings:
    retry_days: list[int]
    timezone: str
    after_final_failure: str


instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                        timezones=st.just(timezone.utc))
settings = st.builds(Settings, st.lists(st.integers(1, 30), max_size=5),
                     st.sampled_from(["UTC", "Europe/Paris", "Australia/Sydney", "America/New_York"]),
                     st.sampled_from(["uncollectible", "past_due"]))
soft = st.builds(Failure, st.sampled_from([None, "card_declined", "insufficient_funds", "processing_error"]),
                 st.just(False))


@given(settings, instants, st.integers(0, 40 * 24 * 3600))
def test_a_soft_decline_is_retried_at_the_first_scheduled_day_still_ahead(policy, first, seconds_later):
    now = first + timedelta(seconds=seconds_later)
    step = next_step(Failure("card_declined", False), policy, first, now)
    local = first.astimezone(ZoneInfo(policy.timezone))
    ahead = sorted(at for at in (
        datetime.combine(local.date() + timedelta(days=d), local.timetz().replace(tzinfo=None),
                         ZoneInfo(policy.timezone)).astimezone(timezone.utc) for d in policy.retry_days) if at > now)
    assert step.first_failed_at == first
    if ahead:
        assert (step.collection, step.retry_at, step.final, step.write_off) == ("retrying", ahead[0], False, False)
    else:
        assert step.retry_at is None and step.final
        assert step.collection == ("past_due" if policy.after_final_failure == "past_due" else None)
        assert step.write_off == (policy.after_final_failure == "uncollectible")


@given(settings, soft, instants)
def test_the_first_failure_starts_the_schedule(policy, failure, now):
    step = next_step(failure, policy, None, now)
    assert step.first_failed_at == now
    assert step.retry_at is None or step.retry_at > now


@given(settings, st.one_of(st.none(), instants), instants, st.sampled_from([None, "card_declined", "lost_card"]))
def test_a_hard_decline_waits_for_a_new_payment_method(policy, first, now, code):
    step = next_step(Failure(code, True), policy, first, now)
    assert (step.collection, step.retry_at, step.final, step.write_off) == ("payment_method_required", None,
                                                                           False, False)
    assert step.first_failed_at == (first or now)


@given(settings, st.one_of(st.none(), instants), instants)
def test_an_amount_the_gateway_cannot_take_waits_for_a_recorded_payment(policy, first, now):
    step = next_step(Failure(NOT_CHARGEABLE, False), policy, first, now)
    assert (step.collection, step.retry_at, step.final, step.write_off) == ("manual", None, False, False)


def test_the_retry_keeps_its_wall_clock_time_across_a_dst_change():
    first = datetime(2026, 3, 27, 8, 0, tzinfo=timezone.utc)  # 09:00 in Paris, before the change
    step = next_step(Failure("card_declined", False), Settings([3], "Europe/Paris", "past_due"), first, first)
    assert step.retry_at == datetime(2026, 3, 30, 7, 0, tzinfo=timezone.utc)  # 09:00 in Paris, after it


def test_no_retry_days_gives_up_at_the_first_failure():
    now = datetime(2026, 1, 5, 9, tzinfo=timezone.utc)
    step = next_step(Failure("card_declined", False), Settings([], "UTC", "uncollectible"), None, now)
    assert step.final and step.write_off and step.collection is None and step.retry_at is None
