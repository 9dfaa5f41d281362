"""Prometheus metrics (the official prometheus_client), counted where things happen: the HTTP
layer, the bill intake blueprint, the worker. /metrics (aggregator.ops) exposes them.

Under gunicorn and with worker processes the metrics live in several processes: with
PROMETHEUS_MULTIPROC_DIR set (bin/start sets it, before any process starts, to a fresh folder)
prometheus_client writes each process's values to files there and a scrape sums them
(multiprocess mode). Queue backlogs are not counted by anyone: they are read from the database
when /metrics is scraped (one query per queue that reports one, see due.Queue.backlog).

The metric objects are module-level, as prometheus_client means them to be: they hold no
connection and no app, only counters (in memory, or files in multiprocess mode)."""
from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable, Iterable

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("aggregator_http_requests", "HTTP requests answered, by route (the URL rule), "
                        "method and status.", ["route", "method", "status"])
HTTP_DURATION = Histogram("aggregator_http_request_duration_seconds", "Time to answer an HTTP request, "
                          "by route and method.", ["route", "method"],
                          buckets=(.0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
BILLS_ACCEPTED = Counter("aggregator_bills_accepted", "Bills accepted by the intake API (new bills; "
                         "idempotent replays are not counted), by mode.", ["mode"])
DUE_DONE = Counter("aggregator_due_units_done", "Units of due work done, by kind.", ["kind"])
DUE_FAILED = Counter("aggregator_due_units_failed", "Units of due work that failed (the lane waits "
                     "and retries), by kind.", ["kind"])
QUEUE_DONE = Counter("aggregator_queue_items_done", "Queue items worked, by queue.", ["queue"])
QUEUE_FAILED = Counter("aggregator_queue_items_failed", "Queue items that failed (retried with "
                       "backoff), by queue.", ["queue"])
TICK_DURATION = Histogram("aggregator_tick_duration_seconds", "Duration of a worker's tick (claiming "
                          "the due lanes and catching them up).",
                          buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300))


def age_seconds(oldest: datetime | None, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


class BacklogCollector(Collector):
    """Read at scrape time: what waits in each queue that reports a backlog, and how old its
    oldest item is; the outbox's (undispatched events) also under its own name."""

    def __init__(self, backlogs: Callable[[], Iterable[tuple[str, int, datetime | None]]],
                 now: Callable[[], datetime]):
        self.backlogs, self.now = backlogs, now

    def collect(self):
        try:
            rows = list(self.backlogs())
        except Exception as exc:  # a scrape reports what it can: the database may be down
            log.warning("queue backlogs unavailable for /metrics: %s: %s", type(exc).__name__, exc)
            return
        now = self.now()
        waiting = GaugeMetricFamily("aggregator_queue_backlog", "Items waiting in a queue.", labels=["queue"])
        age = GaugeMetricFamily("aggregator_queue_oldest_age_seconds", "Age of the oldest live-mode item "
                                "waiting in a queue (0: none).", labels=["queue"])
        for name, count, oldest in rows:
            waiting.add_metric([name], count)
            age.add_metric([name], age_seconds(oldest, now))
        yield waiting
        yield age
        outbox = {name: (count, oldest) for name, count, oldest in rows}.get("events.dispatch")
        if outbox is not None:
            yield GaugeMetricFamily("aggregator_outbox_backlog", "Events not yet dispatched (the outbox).",
                                    value=outbox[0])
        oldest = min((o for _, _, o in rows if o is not None), default=None)
        yield GaugeMetricFamily("aggregator_oldest_undelivered_age_seconds", "Age of the oldest live-mode "
                                "message not yet delivered, over every queue (0: none).",
                                value=age_seconds(oldest, now))
