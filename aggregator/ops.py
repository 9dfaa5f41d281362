"""What an operator's probes and Prometheus read, outside /v1, without a key, and not in the
OpenAPI document: GET /healthz (the process answers), GET /readyz (the database answers),
GET /metrics (Prometheus text format)."""
from __future__ import annotations

import time

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app, jsonify, request

from . import due, metrics, readiness
from .adapters import current as current_adapters
from .db import db
from .error_responses import error_body

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@blp.get("/readyz")
def readyz():
    problem = readiness.ready(current_app)
    if problem is not None:
            return error_body(503, "api_error", problem.public, problem.code)
    try:
        db.session.execute(sa.text("SELECT 1"))
    except Exception as exc:
        db.session.rollback()
        return error_body(503, "api_error", f"The database is unreachable: {type(exc).__name__}.",
                          "database_unavailable")
    return jsonify({"status": "ready"})


@blp.get("/metrics")
def scrape():
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    backlog = CollectorRegistry(auto_describe=True)
    if readiness.ready(current_app) is None:  # the queues' backlogs once there are queues to look at
        backlog.register(metrics.BacklogCollector(_backlogs, current_adapters().clocks.base.now))
    counted = REGISTRY
    if current_app.config["AGGREGATOR_SETTINGS"].metrics_dir:
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    body = generate_latest(counted) + generate_latest(backlog)
    db.session.rollback()
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _backlogs():
    for queue in due.queues():
        if queue.backlog is not None:
            count, oldest = queue.backlog()
            yield queue.name, count, oldest


def count_requests(app: Flask) -> None:
    """Every request is counted by its route (the URL rule, not the path: ids would make a
    series per object) and status, and timed from when the WSGI call began. Cheap: about 7 us
    (one after_request hook, the labelled series looked up once and kept)."""
    wsgi_app = app.wsgi_app

    def timed(environ, start_response):
        environ["aggregator.started"] = time.perf_counter()
        return wsgi_app(environ, start_response)

    app.wsgi_app = timed
    counters: dict = {}
    timers: dict = {}

    @app.after_request
    def _count(response):
        rule = request.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        method, status = request.method, response.status_code
        if (inc := counters.get((route, method, status))) is None:
            inc = counters[route, method, status] = metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc
        if (observe := timers.get((route, method))) is None:
            observe = timers[route, method] = metrics.HTTP_DURATION.labels(route, method).observe
        inc()
        started = request.environ.get("aggregator.started")
        if started is not None:
            observe(time.perf_counter() - started)
        return response
