"""A closed period's usage of a subscription (`GET /v1/subscriptions/{id}/usage?period=…`): what
its close rated into bills — quantity, tier breakdown, amount, platform fee, bill — read back from
the usage charges; refused for a period not closed, and invisible to another provider."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance

PERIOD = "2026-10-25"  # the test clock starts 2026-11-10T12:00Z in Sydney's period 2026-10-25 .. 2026-11-24
IN_PERIOD = "2026-11-10T12:00:00+00:00"


@pytest.fixture
def resold(tenant):
    """Bandwidth on the platform's parent plan (0.01 a GB) and on a provider's resold plan
    (100 GB included, then graduated 0.05 / 0.03), a subscription vm-1 of cust-1."""
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", {"code": "bandwidth", "name": "Bandwidth", "aggregation": "sum", "unit": "GB",
                                     "decimals": 2}).status_code == 201
    response = admin.post("/v1/plans", {"code": "platform", "name": "Platform", "currency": "AUD",
                                        "granted_to": ["*"], "fees": [
        {"name": "Hosting", "price": "10.00", "timing": "in_arrears", "usage": [
            {"meter": "bandwidth", "name": "Bandwidth", "model": "per_unit", "unit_amount": "0.01"}]}]})
    assert response.status_code == 201, response.json
    tenant.customer("cust-1")
    provider = tenant.provider(name="Cloudy")
    response = provider.post("/v1/plans", {"code": "cloud", "name": "Cloud", "currency": "AUD",
                                           "parent_plan": "platform", "fees": [
        {"name": "Hosting", "price": "49.99", "timing": "in_arrears", "parent_fee": "Hosting", "usage": [
            {"meter": "bandwidth", "name": "Bandwidth", "model": "graduated", "included_units": "100",
             "tiers": [{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}]}]}]})
    assert response.status_code == 201, response.json
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "cloud", "external_billing_id": "vm-1"})
    assert sub.status_code == 201, sub.json
    return provider, sub.json


def test_a_closed_periods_usage_is_what_its_close_rated(tenant, resold):
    provider, sub = resold
    response = provider.post("/v1/usage_events", {"id": "e1", "subscription": "vm-1", "meter": "bandwidth",
                                                  "value": "1340", "timestamp": IN_PERIOD})
    assert response.status_code == 201, response.json
    now = provider.get("/v1/subscriptions/vm-1/usage").json
    assert now["closed"] is False and now["data"][0]["amount"] == "55.20"
    refused = provider.get("/v1/subscriptions/vm-1/usage", query_string={"period": PERIOD})
    assert refused.status_code == 409 and "period" in refused.json["error"]["fields"], refused.json
    assert refused.json["error"]["code"] == "period_not_closed"
    advance(tenant)
    closed = provider.get(f"/v1/subscriptions/{sub['id']}/usage", query_string={"period": PERIOD})
    assert closed.status_code == 200, closed.json
    (line,) = closed.json["data"]
    assert (closed.json["closed"], closed.json["period"], closed.json["currency"]) == (True, PERIOD, "AUD")
    assert (line["name"], line["quantity"], line["included_units"], line["amount"], line["platform_fee"]) == \
        ("Bandwidth", "1340", "100", "55.20", "13.40")
    assert [(s["units"], s["unit_amount"], s["amount"]) for s in line["breakdown"]] == [
        ("900", "0.05", "45.00"), ("340", "0.03", "10.20")]
    assert line["description"] == "Bandwidth — 1,340 GB: 100 GB included, 900 × A$0.05, 340 × A$0.03 = A$55.20"
    bill = provider.get(f"/v1/bills/{line['bill']}")
    assert bill.status_code == 200 and bill.json["amount"] == "55.20", bill.json
    # the same for the admin; nothing for another provider
    assert tenant.admin["test"].get(f"/v1/subscriptions/{sub['id']}/usage", query_string={"period": PERIOD}).json == \
        closed.json
    other = tenant.provider(name="Other")
    assert other.get(f"/v1/subscriptions/{sub['id']}/usage", query_string={"period": PERIOD}).status_code == 404


def test_a_bad_period_is_refused_naming_it(resold):
    provider, _ = resold
    for bad in ("2026-13-01", "yesterday", ""):
        response = provider.get("/v1/subscriptions/vm-1/usage", query_string={"period": bad})
        assert response.status_code == 422 and "period" in response.json["error"]["fields"], response.json
    response = provider.get("/v1/subscriptions/vm-1/usage", query_string={"period": "2026-09-25"})
    assert response.status_code == 409 and "period" in response.json["error"]["fields"], response.json
