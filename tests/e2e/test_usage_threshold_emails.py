"""Usage thresholds through the API: `usage.threshold_reached` once per threshold and period, as
of the event that reached it, which webhook endpoints may subscribe to; and the customer's email
about it, in the tenant's locale and time zone, delivered to a real SMTP server (aiosmtpd) unless
the tenant's notification settings turn it off."""
from __future__ import annotations

import pytest

from tests.support.mail import deliver, deliveries

ANN = "ann@example.com"
# The test clock starts 2026-11-10T12:00Z (23:00 in Sydney) in the period 2026-10-25 .. 2026-11-24.
IN_PERIOD = "2026-11-10T12:00:00+00:00"
LATER = "2026-11-10T12:04:00+00:00"  # within the 5 minutes an event may be ahead


@pytest.fixture
def metered(tenant):
    """PLATFORMA's bandwidth: 100 GB included, thresholds at 80/90/100 %, on the plan Cloud of a
    subscription (vm-1) of Ann."""
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", {"code": "bandwidth", "name": "Bandwidth", "aggregation": "sum", "unit": "GB",
                                     "decimals": 2}).status_code == 201
    tenant.customer("cust-1", name="Ann", email=ANN)
    provider = tenant.provider(name="Cloudy")
    response = provider.post("/v1/plans", {"code": "cloud", "name": "Cloud", "currency": "AUD", "fees": [
        {"name": "Hosting", "price": "49.99", "timing": "in_arrears", "usage": [
            {"meter": "bandwidth", "name": "Bandwidth", "model": "per_unit", "unit_amount": "0.05",
             "included_units": "100", "thresholds": [80, 90, 100]}]}]})
    assert response.status_code == 201, response.json
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "cloud", "external_billing_id": "vm-1"})
    assert sub.status_code == 201, sub.json
    return provider, sub.json


def _use(provider, events):
    response = provider.post("/v1/usage_events/batch", {"events": [
        {"id": i, "subscription": "vm-1", "meter": "bandwidth", "value": v, "timestamp": t} for i, v, t in events]})
    assert response.status_code == 200 and {d["status"] for d in response.json["data"]} == {201}, response.json


def _reached(tenant) -> list[dict]:
    response = tenant.admin["test"].get("/v1/events", query_string={"type": "usage.threshold_reached", "limit": 100})
    assert response.status_code == 200, response.json
    return sorted((e["data"]["object"] for e in response.json["data"]), key=lambda o: o["threshold"])


def test_a_threshold_is_published_once_as_of_the_event_that_reached_it(tenant, metered):
    provider, sub = metered
    _use(provider, [("e1", "1", LATER), ("e2", "79.5", IN_PERIOD)])  # 80.5 GB: 80 % reached by e1, the later
    _use(provider, [("e1b", "0.5", IN_PERIOD)])  # 81 GB
    _use(provider, [("e3", "1", IN_PERIOD)])  # 82 GB, below 90 %: nothing new
    (crossing,) = _reached(tenant)
    assert crossing == {
        "object": "usage_threshold", "subscription": sub["id"], "external_billing_id": "vm-1",
        "customer": crossing["customer"], "customer_external_id": "cust-1", "provider": provider.id,
        "plan": "cloud", "plan_name": "Cloud", "component": crossing["component"], "name": "Bandwidth",
        "meter": "bandwidth", "unit": "GB", "dimension": {}, "threshold": 80, "quantity": "80.5",
        "included_units": "100", "period": "2026-10-25", "period_end": "2026-11-24",
        "reached_at": LATER}
    # 112 GB: 90 % reached by e5 (the earlier event), 100 % by e4, in one batch
    _use(provider, [("e4", "20", LATER), ("e5", "10", IN_PERIOD)])
    assert [(c["threshold"], c["quantity"], c["reached_at"]) for c in _reached(tenant)] == [
        (80, "80.5", LATER), (90, "112", IN_PERIOD), (100, "112", LATER)]


def test_webhook_endpoints_may_subscribe_to_thresholds(tenant):
    response = tenant.admin["test"].post("/v1/webhook_endpoints", {"url": "https://hooks.example/usage",
                                                                   "enabled_events": ["usage.threshold_reached"]})
    assert response.status_code == 201, response.json
    assert response.json["enabled_events"] == ["usage.threshold_reached"]


def test_the_customer_is_emailed_in_the_tenants_locale_and_time_zone(app, tenant, metered, smtp, mailer):
    provider, _ = metered
    _use(provider, [("e1", "80", IN_PERIOD)])
    deliver(app, tenant, mailer)
    (received,) = smtp.handler.to(ANN)
    message = received.message
    assert message["Subject"] == "[test] You have used 80% of the 100 GB included in Cloud (Bandwidth)"
    text = " ".join(message.get_body(preferencelist=("plain",)).get_content().replace("\u202f", " ").split())
    # 12:00Z is 23:00 on November 10 in Sydney
    assert ("You have used 80% of the 100 GB included in Cloud (Bandwidth) for the period Oct 25 – Nov 24, 2026: "
            "80 GB as of Nov 10, 2026 at 11:00 PM AEDT.") in text
    assert "Subscription: vm-1" in text and "billed" not in text
    html = message.get_body(preferencelist=("html",)).get_content()
    assert "80%</strong>" in html
    _use(provider, [("e2", "30", IN_PERIOD)])  # 110 GB: 90 % and 100 %
    deliver(app, tenant, mailer)
    subjects = sorted(r.message["Subject"] for r in smtp.handler.to(ANN))
    assert subjects == ["[test] You have used 100% of the 100 GB included in Cloud (Bandwidth)",
                        "[test] You have used 80% of the 100 GB included in Cloud (Bandwidth)",
                        "[test] You have used 90% of the 100 GB included in Cloud (Bandwidth)"]
    assert sorted(d["kind"] for d in deliveries(tenant, recipient=ANN)) == ["usage_threshold"] * 3
    deliver(app, tenant, mailer)  # nothing twice
    assert len(smtp.handler.to(ANN)) == 3


def test_turned_off_no_email_is_recorded_but_the_event_is_published(app, tenant, metered, smtp, mailer):
    provider, _ = metered
    assert tenant.admin["test"].patch("/v1/notification_settings", {"usage_threshold": False}).status_code == 200
    _use(provider, [("e1", "95", IN_PERIOD)])
    deliver(app, tenant, mailer)
    assert [c["threshold"] for c in _reached(tenant)] == [80, 90]
    assert deliveries(tenant, recipient=ANN) == [] and smtp.handler.to(ANN) == []


def test_a_customer_without_an_address_gets_a_failed_delivery_that_shows(app, tenant, metered, smtp, mailer):
    provider, _ = metered
    assert tenant.admin["test"].patch("/v1/customers/cust-1", {"email": None}).status_code == 200
    _use(provider, [("e1", "85", IN_PERIOD)])
    deliver(app, tenant, mailer)
    (delivery,) = [d for d in deliveries(tenant) if d["kind"] == "usage_threshold"]
    assert delivery["status"] == "failed" and not delivery["recipient"], delivery


def test_per_dimension_thresholds_count_only_their_dimensions_usage(tenant):
    """Omnistrate's per-dimension prices: a component for region eu reaches its thresholds on eu's
    usage only; usage of another region after it reached one is accepted and publishes nothing."""
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", {"code": "storage", "name": "Storage", "aggregation": "sum", "unit": "GB",
                                     "dimensions": ["region"]}).status_code == 201
    tenant.customer("cust-1")
    provider = tenant.provider()
    response = provider.post("/v1/plans", {"code": "geo", "name": "Geo", "currency": "AUD", "fees": [
        {"name": "Storage", "price": "0.00", "timing": "in_arrears", "usage": [
            {"meter": "storage", "name": "Storage EU", "dimension": {"region": "eu"}, "model": "per_unit",
             "unit_amount": "0.10", "included_units": "10", "thresholds": [50, 100]},
            {"meter": "storage", "name": "Storage US", "dimension": {"region": "us"}, "model": "per_unit",
             "unit_amount": "0.08", "included_units": "100", "thresholds": [100]}]}]})
    assert response.status_code == 201, response.json
    assert provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "geo",
                                               "external_billing_id": "vm-1"}).status_code == 201

    def store(event_id, value, region):
        response = provider.post("/v1/usage_events", {"id": event_id, "subscription": "vm-1", "meter": "storage",
                                                      "value": value, "timestamp": IN_PERIOD,
                                                      "properties": {"region": region}})
        assert response.status_code == 201, response.json

    store("s1", "6", "eu")  # eu: 60 % of 10 GB
    store("s2", "40", "us")  # us: 40 % of 100 GB, and eu's 60 % stays as it was
    store("s3", "5", "eu")  # eu: 110 %
    assert [(c["name"], c["threshold"], c["quantity"], c["dimension"]) for c in _reached(tenant)] == [
        ("Storage EU", 50, "6", {"region": "eu"}), ("Storage EU", 100, "11", {"region": "eu"})]
