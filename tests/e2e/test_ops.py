"""Probes and metrics: /healthz, /readyz and /metrics, outside /v1, without a key."""
from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from aggregator import create_app
from aggregator.config import Settings
from tests.support.invoicing import bill_body


def test_healthz_answers_while_the_process_is_up(client):
    response = client.get("/healthz")
    assert (response.status_code, response.json) == (200, {"status": "ok"})


def test_readyz_answers_when_the_database_does(client):
    response = client.get("/readyz")
    assert (response.status_code, response.json) == (200, {"status": "ready"})


def test_readyz_is_503_in_the_error_shape_when_the_database_is_unreachable(tmp_path):
    broken = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/nowhere", storage_dir=tmp_path)
    client = create_app({"SETTINGS": broken, "TESTING": True}).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    assert response.json["error"]["type"] == "api_error"
    assert client.get("/healthz").status_code == 200  # the process itself is up
    assert client.get("/metrics").status_code == 200  # what can be counted without the database


def test_probes_are_not_in_the_api_description(client):
    paths = client.get("/v1/openapi.json").json["paths"]
    assert not {"/healthz", "/readyz", "/metrics"} & set(paths)


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_by_route_and_status_and_accepted_bills(tenant, client):
    tenant.customer("cust-1")
    provider = tenant.provider()
    route = dict(route="/v1/bills/<bill_id>", method="GET", status="404")
    before = (_sample("aggregator_http_requests_total", **route), _sample("aggregator_bills_accepted_total",
                                                                          mode="test"))
    assert provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "m1"}).status_code == 201
    assert provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "m1"}).status_code == 201  # a replay
    batch = provider.post("/v1/bills/batch", {"bills": [bill_body(idempotency_key=f"b{n}") for n in range(3)]})
    assert batch.status_code == 200, batch.json
    provider.get("/v1/bills/bill_nope")
    provider.get("/v1/bills/bill_nope2")
    text = client.get("/metrics").get_data(as_text=True)
    after = (_sample("aggregator_http_requests_total", **route), _sample("aggregator_bills_accepted_total",
                                                                         mode="test"))
    assert after[0] - before[0] == 2  # one series for every id: the rule, not the path
    assert after[1] - before[1] == 1 + 3  # the replay is not a new bill
    assert 'aggregator_http_request_duration_seconds_count{method="POST",route="/v1/bills"}' in text
    for name in ("aggregator_queue_backlog{queue=\"events.dispatch\"}",
                 "aggregator_queue_backlog{queue=\"pdf.render\"}",
                 "aggregator_queue_backlog{queue=\"webhooks.deliver\"}",
                 "aggregator_queue_backlog{queue=\"email.send\"}",
                 "aggregator_outbox_backlog", "aggregator_oldest_undelivered_age_seconds",
                 "aggregator_tick_duration_seconds_count"):
        assert name in text, name


def test_the_outbox_backlog_is_read_from_the_database_at_scrape_time(app, tenant, client):
    from aggregator.events.dispatch import backlog

    tenant.customer("cust-1")  # tenant creation and customers write no events; a close does
    with app.app_context():
        count, _ = backlog()
    line = next(metric for metric in client.get("/metrics").get_data(as_text=True).splitlines()
                if metric.startswith("aggregator_outbox_backlog "))
    assert float(line.split()[1]) == count


@pytest.mark.slow
def test_metrics_of_every_process_are_summed_in_multiprocess_mode(tmp_path, database_url):
    import os
    import subprocess
    import sys

    from aggregator.config import PROJECT_ROOT

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "AGGREGATOR_DATABASE_URL": database_url}
    count = "from aggregator import metrics; metrics.DUE_DONE.labels('period.close').inc(2)"
    for _ in range(2):  # two processes (a worker's), each counting, then exiting
        subprocess.run([sys.executable, "-c", count], env=env, cwd=PROJECT_ROOT, check=True, timeout=60)
    scrape = ("from aggregator import create_app; "
              "print(create_app({'TESTING': True}).test_client().get('/metrics').get_data(as_text=True))")
    text = subprocess.run([sys.executable, "-c", scrape], env=env, cwd=PROJECT_ROOT, check=True, timeout=120,
                          capture_output=True, text=True).stdout
    assert 'aggregator_due_units_done_total{kind="period.close"} 4.0' in text
    assert any(Path(tmp_path).glob("counter_*.db"))
