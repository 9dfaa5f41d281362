"""What the composition root (aggregator.wiring) registers with aggregator.due."""
import pytest

from aggregator import due, wiring


@pytest.fixture(autouse=True)
def _wired():
    wiring.wire()


def test_every_queue_reports_its_backlog_to_the_metrics():
    assert [q.name for q in due.queues() if q.backlog is None] == []


def test_queue_names_are_unique_and_the_outbox_is_drained_first():
    names = [q.name for q in due.queues()]
    assert len(names) == len(set(names)) and names[0] == "events.dispatch"


def test_kinds_run_in_the_order_of_the_money_cycle():
    # an invoice becomes overdue after any charge due at the same instant (which may pay it)
    assert [kind.name for kind in due.kinds()] == ["period.close", "invoice.finalize", "invoice.charge",
                                                   "invoice.overdue", "payout.build"]


def test_wiring_twice_registers_nothing_twice():
    before = (due.kinds(), due.queues())
    wiring._register_due_work()
    assert (due.kinds(), due.queues()) == before
