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


# --- bad input, nothing stored ------------------------------------------------------------------------

def rated(tenant, period) -> list[tuple[str, str]]:
    """(description, amount) of the lines of the invoices of `period`."""
    admin = tenant.admin["test"]
    return sorted((line["description"], line["amount"]) for i in admin.get("/v1/invoices?limit=100").json["data"]
                  if i["period"]["start"] == period for line in admin.get(f"/v1/invoices/{i['id']}").json["lines"])


def quantity(provider, sub_id, meter_code="bandwidth") -> str:
    data = provider.get(f"/v1/subscriptions/{sub_id}/usage").json["data"]
    return next(c["quantity"] for c in data if c["meter"] == meter_code)


@pytest.mark.parametrize("value", [1.5, 2.0, "1.001", "abc", "1e3", " 1", "0x10", True, None, {"v": 1}, [1], "",
                                   "1" * 41, "10000000000000"])
def test_a_value_of_the_wrong_type_or_with_too_many_decimals_is_refused_and_not_stored(metered, value):
    provider, sub = metered
    response = usage(provider, "bad", value)
    assert response.status_code == 422, response.json
    assert "value" in response.json["error"]["fields"], response.json
    assert quantity(provider, sub["id"]) == "0"
    assert usage(provider, "bad", "12.5").status_code == 201  # the id was not taken
    assert quantity(provider, sub["id"]) == "12.5"


def test_a_whole_json_number_is_a_value_and_a_decimal_string_with_trailing_zeros_too(metered):
    provider, sub = metered
    assert usage(provider, "e1", 7).json["value"] == "7"
    assert usage(provider, "e2", "0.50").json["value"] == "0.5"
    assert usage(provider, "e3", "1.000").status_code == 201  # trailing zeros are not decimals
    assert quantity(provider, sub["id"]) == "8.5"


@pytest.mark.parametrize("body, field", [
    ({"subscription": "vm-1", "meter": "bandwidth", "value": "1"}, "id"),
    ({"id": "", "subscription": "vm-1", "meter": "bandwidth", "value": "1"}, "id"),
    ({"id": 5, "subscription": "vm-1", "meter": "bandwidth", "value": "1"}, "id"),
    ({"id": "e", "meter": "bandwidth", "value": "1"}, "subscription"),
    ({"id": "e", "subscription": "vm-1", "value": "1"}, "meter"),
    ({"id": "e", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "timestamp": "yesterday"}, "timestamp"),
    ({"id": "e", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "timestamp": "2026-11-10T12:00:00"},
     "timestamp"),  # no offset
    ({"id": "e", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "properties": {"a": 1.5}}, "properties"),
    ({"id": "e", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "properties": {"a": {"b": 1}}},
     "properties"),
    ({"id": "e", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "properties": [1]}, "properties"),
])
def test_a_malformed_event_is_refused_naming_the_field(metered, body, field):
    provider, sub = metered
    refused(provider.post("/v1/usage_events", body), 422, field)
    assert quantity(provider, sub["id"]) == "0"


def test_an_event_in_a_closed_period_or_too_far_ahead_is_refused(tenant, metered):
    provider, sub = metered
    refused(usage(provider, "ahead", "1", timestamp="2026-11-10T12:05:01+00:00"), 422, "timestamp",
            "timestamp_in_future")
    assert usage(provider, "near", "1", timestamp="2026-11-10T12:05:00+00:00").status_code == 201
    advance(tenant)  # closes 2026-10-25 .. 2026-11-24
    refused(usage(provider, "late", "5", timestamp="2026-11-20T00:00:00+00:00"), 409, "timestamp", "period_closed")
    assert "2026-10-25" in usage(provider, "late", "5", timestamp="2026-11-20T00:00:00+00:00").json["error"]["message"]
    sent = usage(provider, "next", "2", timestamp="2026-11-24T13:00:00+00:00")  # the next period's first instant
    assert sent.status_code == 201 and sent.json["period"] == "2026-11-25", sent.json
    assert quantity(provider, sub["id"]) == "2"
    (line,) = [d for d, _ in rated(tenant, PERIOD) if d.startswith("Bandwidth")]
    assert line.startswith("Bandwidth — 1 GB"), line  # the refused event was not rated


def test_a_test_mode_event_is_judged_on_the_test_clock(tenant, metered):
    provider, sub = metered
    advance(tenant, "2026-11-20T00:00:00+00:00")  # the app's clock stays at 2026-11-10T12:00Z
    sent = provider.post("/v1/usage_events", {"id": "now", "subscription": "vm-1", "meter": "bandwidth", "value": "1"})
    assert sent.status_code == 201 and sent.json["timestamp"] == "2026-11-20T00:00:00+00:00", sent.json
    assert usage(provider, "soon", "1", timestamp="2026-11-20T00:04:00+00:00").status_code == 201
    refused(usage(provider, "later", "1", timestamp="2026-11-20T00:06:00+00:00"), 422, "timestamp",
            "timestamp_in_future")
    usage_now = provider.get(f"/v1/subscriptions/{sub['id']}/usage").json
    assert usage_now["as_of"].startswith("2026-11-20T00:00:00") and usage_now["data"][0]["quantity"] == "2"


def test_usage_is_walled_between_providers_modes_and_tenants(tenant, make_tenant, metered):
    provider, sub = metered
    other = tenant.provider(name="Other")
    for ref in ("vm-1", sub["id"]):
        refused(usage(other, "x", "1", subscription=ref), 404, "subscription", "unknown_subscription")
    assert other.get(f"/v1/subscriptions/{sub['id']}/usage").status_code == 404
    live = tenant.provider(mode="live", name="Cloudy live")
    refused(usage(live, "x", "1"), 404, "meter", "unknown_meter")  # meters are per mode too
    assert tenant.admin["live"].post("/v1/meters", {"code": "bandwidth", "name": "B", "aggregation": "sum",
                                                    "decimals": 2}).status_code == 201
    refused(usage(live, "x", "1"), 404, "subscription", "unknown_subscription")
    stranger = make_tenant().provider(name="Stranger")
    refused(usage(stranger, "x", "1", subscription=sub["id"]), 404, "meter")
    assert stranger.get(f"/v1/subscriptions/{sub['id']}/usage").status_code == 404
    assert quantity(provider, sub["id"]) == "0"
    # the same event id is the other provider's own: no conflict with this one's
    assert usage(provider, "x", "3").status_code == 201
    assert tenant.admin["test"].get(f"/v1/subscriptions/{sub['id']}/usage").json["data"][0]["quantity"] == "3"


# --- batches -----------------------------------------------------------------------------------------

def test_a_batch_of_a_thousand_judges_each_event_alone(metered):
    provider, sub = metered
    events, expected, total = [], [], 0
    for n in range(1000):
        event = {"id": f"b{n}", "subscription": "vm-1", "meter": "bandwidth", "value": "1", "timestamp": IN_PERIOD}
        kind = n % 10
        if kind == 1:
            event["value"] = "1.001"
        elif kind == 2:
            event["meter"] = "nope"
        elif kind == 3:
            event["subscription"] = "nope"
        elif kind == 4:
            event["timestamp"] = "2026-11-11T00:00:00+00:00"  # ahead
        elif kind == 5:
            event = {"id": f"b{n}"}
        elif kind == 6:
            event = "not an object"
        events.append(event)
        expected.append({1: 422, 2: 404, 3: 404, 4: 422, 5: 422, 6: 422}.get(kind, 201))
        total += expected[-1] == 201
    response = provider.post("/v1/usage_events/batch", {"events": events})
    assert response.status_code == 200, response.json
    results = response.json["data"]
    assert [r["status"] for r in results] == expected
    assert all(r["event"]["id"] == f"b{n}" for n, r in enumerate(results) if r["status"] == 201)
    assert all("fields" in r["error"] for r in results if r["status"] != 201)
    assert quantity(provider, sub["id"]) == str(total) == "400"
    too_many = provider.post("/v1/usage_events/batch", {"events": events + [events[0]]})
    refused(too_many, 422, "events")
    refused(provider.post("/v1/usage_events/batch", {"events": []}), 422, "events")
    assert quantity(provider, sub["id"]) == "400"


def test_replays_in_a_batch_are_stored_once(metered):
    provider, sub = metered

    def event(event_id, value):
        return {"id": event_id, "subscription": "vm-1", "meter": "bandwidth", "value": value, "timestamp": IN_PERIOD}

    first = provider.post("/v1/usage_events/batch", {"events": [event("r1", "10"), event("r1", "10"),
                                                                event("r1", "11"), event("r2", "1")]})
    assert [(r["status"], r.get("replayed")) for r in first.json["data"]] == [
        (201, False), (201, True), (409, None), (201, False)], first.json
    assert first.json["data"][2]["error"]["code"] == "idempotency_key_reused"
    again = provider.post("/v1/usage_events/batch", {"events": [event("r2", "1"), event("r1", "10"),
                                                                event("r1", "12"), event("r3", "5")]})
    assert [(r["status"], r.get("replayed")) for r in again.json["data"]] == [
        (201, True), (201, True), (409, None), (201, False)], again.json
    assert again.json["data"][1]["event"] == first.json["data"][0]["event"]
    assert quantity(provider, sub["id"]) == "16"


# --- aggregations over the API --------------------------------------------------------------------------

@pytest.fixture
def counters(tenant):
    """Meters of every simple aggregation, each priced at 1.00 a unit on one plan."""
    admin = tenant.admin["test"]
    meter(admin, "seats", "sum", unit="seat", reset="never")
    meter(admin, "users", "unique_count", unit="user", field="user")
    meter(admin, "queue", "latest", unit="job")
    meter(admin, "peak", "max", unit="conn")
    meter(admin, "calls", "count", unit="call")
    tenant.customer("cust-1")
    provider = tenant.provider()
    response = provider.post("/v1/plans", {"code": "app", "name": "App", "currency": "AUD", "fees": [
        {"name": "Usage", "usage": [{"meter": code, "model": "per_unit", "unit_amount": "1.00"}
                                    for code in ("seats", "users", "queue", "peak", "calls")]}]})
    assert response.status_code == 201, response.json
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "app", "external_billing_id": "vm-1"})
    return provider, sub.json


def quantities(provider, sub_id) -> dict[str, str]:
    return {c["meter"]: c["quantity"] for c in provider.get(f"/v1/subscriptions/{sub_id}/usage").json["data"]}




def test_seats_never_reset_carry_a_running_count_across_periods(tenant, counters):
    provider, sub = counters
    advance(tenant, "2026-11-14T00:00:00+00:00")
    for n, (value, day) in enumerate([(1, 11), (1, 11), (1, 12), (-1, 13), (1, 14)]):
        assert usage(provider, f"s{n}", value, timestamp=f"2026-11-{day}T00:00:00+00:00",
                     meter_code="seats").status_code == 201
    assert quantities(provider, sub["id"])["seats"] == "3"
    advance(tenant)  # the close of 2026-10-25 bills 3 seats
    assert ("Seats — 3 seat × A$1.00 = A$3.00", "3.00") in rated(tenant, PERIOD)
    assert quantities(provider, sub["id"])["seats"] == "3"  # carried into the next period
    assert usage(provider, "s9", -1, timestamp="2026-11-25T00:00:00+00:00", meter_code="seats").status_code == 201
    assert quantities(provider, sub["id"])["seats"] == "2"
    advance(tenant, "2026-12-25T00:00:00+00:00")
    assert ("Seats — 2 seat × A$1.00 = A$2.00", "2.00") in rated(tenant, "2026-11-25")


def test_unique_count_latest_max_and_count(tenant, counters):
    provider, sub = counters
    sent = [("users", None, {"user": "ann"}, 11), ("users", None, {"user": "bob"}, 11),
            ("users", None, {"user": "ann"}, 12), ("users", None, {"user": 7}, 13),
            ("queue", 5, {}, 14), ("queue", 3, {}, 16), ("queue", 9, {}, 15),  # out of order: 3 is the latest
            ("peak", 5, {}, 14), ("peak", 9, {}, 15), ("peak", 3, {}, 16),
            ("calls", None, {}, 11), ("calls", None, {}, 11)]
    batch = [{"id": f"u{n}", "subscription": "vm-1", "meter": code, "value": value, "properties": props,
              "timestamp": f"2026-11-{day}T00:00:00+00:00"} for n, (code, value, props, day) in enumerate(sent)]
    advance(tenant, "2026-11-20T00:00:00+00:00")
    response = provider.post("/v1/usage_events/batch", {"events": batch})
    assert [r["status"] for r in response.json["data"]] == [201] * len(sent), response.json
    refused(usage(provider, "nouser", None, meter_code="users", timestamp="2026-11-19T00:00:00+00:00"), 422,
            "properties.user")
    assert quantities(provider, sub["id"]) == {"seats": "0", "users": "3", "queue": "3", "peak": "9", "calls": "2"}
    advance(tenant)
    assert rated(tenant, PERIOD) == sorted([
        ("Users — 3 user × A$1.00 = A$3.00", "3.00"), ("Queue — 3 job × A$1.00 = A$3.00", "3.00"),
        ("Peak — 9 conn × A$1.00 = A$9.00", "9.00"), ("Calls — 2 call × A$1.00 = A$2.00", "2.00")])


def test_more_removed_than_added_prices_as_no_usage_and_the_close_goes_on(tenant, counters):
    provider, sub = counters
    assert usage(provider, "minus", -2, meter_code="seats").status_code == 201
    assert usage(provider, "low", -3, meter_code="peak").status_code == 201
    current = {c["meter"]: (c["quantity"], c["amount"]) for c in
               provider.get(f"/v1/subscriptions/{sub['id']}/usage").json["data"]}
    assert current["seats"] == ("-2", "0.00") and current["peak"] == ("-3", "0.00"), current
    advance(tenant)
    assert tenant.admin["test"].get("/v1/periods/2026-10-25").json["status"] == "closed"
    assert rated(tenant, PERIOD) == []


def test_a_threshold_on_usage_over_time_is_reached_by_usage_so_far(tenant):
    """GB-hours so far, not the level projected to the period's end: 10 GB held from now reaches
    80 % of 1,000 GB-hours after 80 hours, which the next event (or none) finds."""
    admin = tenant.admin["test"]
    meter(admin, "disk", "time_weighted", unit="GB-h")
    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "disk", "name": "Disk", "currency": "AUD", "fees": [
        {"name": "Disk", "usage": [{"meter": "disk", "model": "per_unit", "unit_amount": "0.01",
                                    "included_units": "1000", "thresholds": [80, 100]}]}]}).status_code == 201
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "disk"}).json

    def reached():
        return sorted((e["data"]["object"]["threshold"], e["data"]["object"]["reached_at"])
                      for e in admin.get("/v1/events?limit=100").json["data"] if e["type"] == "usage.threshold_reached")

    assert usage(provider, "d1", 10, subscription=sub["id"], meter_code="disk").status_code == 201
    assert reached() == []
    advance(tenant, "2026-11-13T20:00:00+00:00")  # 80 hours later: 800 GB-hours
    assert usage(provider, "d2", 10, subscription=sub["id"], meter_code="disk",
                 timestamp="2026-11-13T20:00:00+00:00").status_code == 201
    assert reached() == [(80, "2026-11-13T20:00:00+00:00")]


def test_a_level_is_held_until_the_subscription_ends_not_to_the_periods_end(tenant):
    admin = tenant.admin["test"]
    meter(admin, "disk", "time_weighted", unit="GB-h")
    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "disk", "name": "Disk", "currency": "AUD", "fees": [
        {"name": "Disk", "usage": [{"meter": "disk", "model": "per_unit", "unit_amount": "0.01"}]}]}).status_code == 201
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "disk"}).json
    assert usage(provider, "d1", 10, subscription=sub["id"], meter_code="disk").status_code == 201
    advance(tenant, "2026-11-11T12:00:00+00:00")
    assert provider.delete(f"/v1/subscriptions/{sub['id']}").status_code == 200
    advance(tenant, "2026-11-12T12:00:00+00:00")
    assert provider.get(f"/v1/subscriptions/{sub['id']}/usage").json["data"][0]["quantity"] == "240"
    advance(tenant)
    assert rated(tenant, PERIOD) == [("Disk — 240 GB-h × A$0.01 = A$2.40", "2.40")]  # 10 GB for 24 hours


def test_an_event_sent_again_without_a_timestamp_is_a_replay_though_the_clock_moved(tenant, metered):
    provider, _ = metered
    body = {"id": "no-ts", "subscription": "vm-1", "meter": "bandwidth", "value": "3"}
    first = provider.post("/v1/usage_events", body)
    assert first.status_code == 201, first.json
    tenant.admin["test"].post("/v1/test_clock/advance", {"to": "2026-11-10T12:00:05+00:00"})
    again = provider.post("/v1/usage_events", body)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.json
    assert again.json["timestamp"] == first.json["timestamp"]
    refused(provider.post("/v1/usage_events", {**body, "timestamp": "2026-11-10T12:00:05+00:00"}), 409, "id",
            "idempotency_key_reused")


def test_a_later_copy_of_a_refused_event_in_a_batch_is_refused_alike(tenant, metered):
    provider, _ = metered
    advance(tenant)  # closes 2026-10-25 .. 2026-11-24
    event = {"id": "twice", "subscription": "vm-1", "meter": "bandwidth", "value": "1",
             "timestamp": "2026-11-20T00:00:00+00:00"}
    batch = provider.post("/v1/usage_events/batch", {"events": [event, event]})
    assert [(r["status"], r["error"]["code"]) for r in batch.json["data"]] == [(409, "period_closed")] * 2, batch.json


def test_properties_too_large_to_store_are_refused_naming_them(tenant):
    admin = tenant.admin["test"]
    meter(admin, "bw", unit="GB", dimensions=["a", "b", "c"])
    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "p", "name": "P", "currency": "AUD", "fees": [
        {"name": "F", "usage": [{"meter": "bw", "model": "per_unit", "unit_amount": "1"}]}]}).status_code == 201
    assert provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "p", "external_billing_id": "s"}
                         ).status_code == 201
    refused(usage(provider, "big", "1", subscription="s", meter_code="bw", properties={"x": 2**64}), 422,
            "properties")
    refused(usage(provider, "long", "1", subscription="s", meter_code="bw",
                  properties={"a": "x" * 200, "b": "y" * 200, "c": "z" * 200}), 422, "properties")
    assert provider.get("/v1/subscriptions/s/usage").json["data"][0]["quantity"] == "0"
