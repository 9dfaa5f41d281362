"""How long a refund whose outcome is unknown waits before the queue looks it up again."""
from datetime import timedelta

from aggregator.payments.refund_service import retry_delay


def test_a_first_unknown_outcome_is_looked_up_again_after_a_minute():
    assert retry_delay(0) == retry_delay(1) == retry_delay(7) == timedelta(minutes=1)


def test_the_wait_doubles_with_each_round_of_tries_up_to_an_hour():
    assert [retry_delay(7 * n) for n in (2, 3, 4)] == [timedelta(minutes=m) for m in (2, 4, 8)]
    assert retry_delay(7 * 50) == retry_delay(10**6) == timedelta(hours=1)
