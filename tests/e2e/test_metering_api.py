"""Usage metering through the API and the test clock: meters, usage events (one and batched,
replayed, refused), current usage, and usage rated into invoice lines at the close."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance

# The test clock starts 2026-11-10T12:00Z in Sydney's period 2026-10-25 .. 2026-11-24.
PERIOD = "2026-10-25"
IN_PERIOD = "2026-11-10T12:00:00+00:00"


def meter(admin, code, aggregation="sum", **fields):
    response = admin.post("/v1/meters", {"code": code, "name": code.title(), "aggregation": aggregation, **fields})
    assert response.status_code == 201, response.json
    return response.json


def refused(response, status: int, field: str, code: str | None = None) -> None:
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert field in error.get("fields", {}), error
    assert code is None or error["code"] == code, error


@pytest.fixture
def metered(tenant):
    """A bandwidth meter (GB, sum) priced as PLATFORMA's example: 100 GB included, then EUR-style
    graduated tiers up to 1,000 GB at 0.05 and 0.03 beyond; a subscription of cust-1."""
    admin = tenant.admin["test"]
    meter(admin, "bandwidth", unit="GB", decimals=2)
    tenant.customer("cust-1")
    provider = tenant.provider(name="Cloudy")
    response = provider.post("/v1/plans", {"code": "cloud", "name": "Cloud", "currency": "AUD", "fees": [
        {"name": "Hosting", "price": "49.99", "timing": "in_arrears", "usage": [
            {"meter": "bandwidth", "name": "Bandwidth", "model": "graduated", "included_units": "100",
             "tiers": [{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}],
             "thresholds": [80, 90, 100]}]}]})
    assert response.status_code == 201, response.json
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "cloud", "external_billing_id": "vm-1"})
    assert sub.status_code == 201, sub.json
    return provider, sub.json


def usage(provider, event_id, value, timestamp=IN_PERIOD, subscription="vm-1", meter_code="bandwidth", **fields):
    return provider.post("/v1/usage_events", {"id": event_id, "subscription": subscription, "meter": meter_code,
                                              "value": value, "timestamp": timestamp, **fields})


def test_usage_is_rated_into_one_line_with_its_tier_breakdown(tenant, metered):
    provider, sub = metered
    assert usage(provider, "e1", "1000").status_code == 201
    batch = provider.post("/v1/usage_events/batch", {"events": [
        {"id": "e2", "subscription": "vm-1", "meter": "bandwidth", "value": "300", "timestamp": IN_PERIOD},
        {"id": "e3", "subscription": sub["id"], "meter": "bandwidth", "value": "40.00", "timestamp": IN_PERIOD}]})
    assert batch.status_code == 200 and [r["status"] for r in batch.json["data"]] == [201, 201], batch.json
    now = provider.get(f"/v1/subscriptions/{sub['id']}/usage").json
    (line,) = now["data"]
    assert (line["quantity"], line["included_units"], line["percent_used"], line["amount"]) == \
        ("1340", "100", "1340", "55.20")
    advance(tenant)
    (invoice,) = tenant.admin["test"].get("/v1/invoices").json["data"]
    lines = tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}").json["lines"]
    assert sorted((x["description"], x["amount"]) for x in lines) == [
        ("Bandwidth — 1,340 GB: 100 GB included, 900 × A$0.05, 340 × A$0.03 = A$55.20", "55.20"),
        ("Hosting — Cloud, 15 of 31 days", "24.19")]


def test_a_replay_answers_the_stored_event_and_another_payload_conflicts(metered):
    provider, _ = metered
    first = usage(provider, "e1", "10")
    again = usage(provider, "e1", "10")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json == first.json
    refused(usage(provider, "e1", "11"), 409, "id", "idempotency_key_reused")


def test_bad_events_are_refused_naming_the_field(metered):
    provider, _ = metered
    refused(usage(provider, "x1", "1", meter_code="nope"), 404, "meter", "unknown_meter")
    refused(usage(provider, "x2", "1", subscription="nope"), 404, "subscription", "unknown_subscription")
    refused(usage(provider, "x3", 1.5), 422, "value")
    refused(usage(provider, "x4", "1.001"), 422, "value")
    refused(usage(provider, "x5", "1", timestamp="2026-11-10T12:06:00+00:00"), 422, "timestamp", "timestamp_in_future")
    refused(usage(provider, "x6", "1", timestamp="2026-10-20T00:00:00+00:00"), 409, "timestamp",
            "subscription_not_active")
