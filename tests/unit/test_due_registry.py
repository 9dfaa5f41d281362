"""What the areas register with aggregator.due."""
from aggregator import due


def test_every_queue_reports_its_backlog_to_the_metrics():
    assert [q.name for q in due.queues() if q.backlog is None] == []


def test_queue_names_are_unique_and_the_outbox_is_drained_first():
    names = [q.name for q in due.queues()]
    assert len(names) == len(set(names)) and names[0] == "events.dispatch"
