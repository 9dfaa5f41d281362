"""Meters through the API (create, list, read, change; what cannot change once used) and the
usage components of a plan refused for bad input: each a 4xx in the one error shape naming the
field, nothing stored."""
from __future__ import annotations

import pytest

IN_PERIOD = "2026-11-10T12:00:00+00:00"


def refused(response, status: int, field: str, code: str | None = None) -> None:
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert field in error.get("fields", {}), error
    assert code is None or error["code"] == code, error


def meter_body(code="storage", aggregation="sum", **fields):
    return {"code": code, "name": code.title(), "aggregation": aggregation, **fields}


def test_a_meter_is_created_listed_read_and_renamed(tenant):
    admin = tenant.admin["test"]
    created = admin.post("/v1/meters", meter_body(unit="GB", decimals=2, dimensions=["cloud", "region"]))
    assert created.status_code == 201, created.json
    meter = created.json
    assert {k: meter[k] for k in ("object", "code", "unit", "field", "aggregation", "reset", "decimals", "dimensions",
                                  "in_use", "livemode")} == {
        "object": "meter", "code": "storage", "unit": "GB", "field": None, "aggregation": "sum", "reset": "period",
        "decimals": 2, "dimensions": ["cloud", "region"], "in_use": False, "livemode": False}
    assert admin.get("/v1/meters/storage").json == meter
    assert admin.get(f"/v1/meters/{meter['id']}").json == meter
    assert [m["code"] for m in admin.get("/v1/meters").json["data"]] == ["storage"]
    provider = tenant.provider()
    assert provider.get("/v1/meters/storage").json["id"] == meter["id"]  # providers read the tenant's meters
    changed = admin.patch("/v1/meters/storage", {"name": "Block storage", "unit": "GiB", "aggregation": "max"})
    assert changed.status_code == 200, changed.json
    assert (changed.json["name"], changed.json["unit"], changed.json["aggregation"]) == ("Block storage", "GiB", "max")


def test_meters_are_the_tenants_and_the_modes_own(tenant, make_tenant):
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", meter_body()).status_code == 201
    assert tenant.admin["live"].get("/v1/meters/storage").status_code == 404
    assert tenant.admin["live"].get("/v1/meters").json["data"] == []
    other = make_tenant()
    assert other.admin["test"].get("/v1/meters/storage").status_code == 404
    assert other.admin["test"].post("/v1/meters", meter_body()).status_code == 201  # codes are per tenant
    assert tenant.admin["live"].post("/v1/meters", meter_body()).status_code == 201  # and per mode


@pytest.mark.parametrize("body, field, code", [
    (meter_body(), "code", "meter_code_taken"),
    (meter_body(code="x", aggregation="median"), "aggregation", None),
    (meter_body(code="x", aggregation="unique_count"), "field", None),
    (meter_body(code="x", aggregation="hourly_max", reset="never"), "reset", None),
    (meter_body(code="x", aggregation="time_weighted", reset="never"), "reset", None),
    (meter_body(code="x", decimals=10), "decimals", None),
    (meter_body(code="x", decimals="2"), "decimals", None),
    (meter_body(code="x", dimensions=["cloud", "cloud"]), "dimensions", None),
    (meter_body(code="x", dimensions=["a", "b", "c", "d", "e", "f"]), "dimensions", None),
    (meter_body(code="x", field="has space"), "field", None),
    ({"code": "x", "name": "X"}, "aggregation", None),
])
def test_a_bad_meter_is_refused_naming_the_field(tenant, body, field, code):
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", meter_body()).status_code == 201
    refused(admin.post("/v1/meters", body), 409 if code else 422, field, code)
    assert [m["code"] for m in admin.get("/v1/meters").json["data"]] == ["storage"]


def test_a_provider_cannot_create_or_change_a_meter(tenant):
    provider = tenant.provider()
    assert provider.post("/v1/meters", meter_body()).status_code in (401, 403)
    assert tenant.admin["test"].post("/v1/meters", meter_body()).status_code == 201
    assert provider.patch("/v1/meters/storage", {"name": "Mine"}).status_code in (401, 403)
    assert tenant.admin["test"].get("/v1/meters/storage").json["name"] == "Storage"


def test_a_used_meter_keeps_how_it_aggregates(tenant):
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", meter_body(unit="GB")).status_code == 201
    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.post("/v1/plans", {"code": "p", "name": "P", "currency": "AUD", "fees": [
        {"name": "Storage", "usage": [{"meter": "storage", "model": "per_unit", "unit_amount": "0.10"}]}]}
    ).status_code == 201
    sub = provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "p"}).json
    sent = provider.post("/v1/usage_events", {"id": "e1", "subscription": sub["id"], "meter": "storage",
                                              "value": "5", "timestamp": IN_PERIOD})
    assert sent.status_code == 201, sent.json
    assert admin.get("/v1/meters/storage").json["in_use"] is True
    for change in ({"aggregation": "max"}, {"decimals": 2}, {"field": "gb"}, {"dimensions": ["region"]},
                   {"reset": "never"}):
        name = next(iter(change))
        refused(admin.patch("/v1/meters/storage", change), 409, name, "meter_in_use")
    renamed = admin.patch("/v1/meters/storage", {"name": "Disk", "aggregation": "sum"})  # the same: no change
    assert renamed.status_code == 200 and renamed.json["name"] == "Disk", renamed.json
    assert admin.get("/v1/meters/storage").json["aggregation"] == "sum"


# --- usage components refused at plan creation -----------------------------------------------------

@pytest.fixture
def provider(tenant):
    admin = tenant.admin["test"]
    assert admin.post("/v1/meters", meter_body("bandwidth", unit="GB", decimals=2)).status_code == 201
    assert admin.post("/v1/meters", meter_body("instance", "hourly_max", unit="core",
                                               dimensions=["resource"])).status_code == 201
    return tenant.provider()


def component(**fields):
    return {"meter": "bandwidth", "model": "graduated", "included_units": "100",
            "tiers": [{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}], **fields}


AT = "fees.0.usage.0."


@pytest.mark.parametrize("usage, status, field, code", [
    (component(meter="nope"), 404, AT + "meter", "unknown_meter"),
    (component(tiers=[{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": "500", "unit_amount": "0.04"},
                      {"up_to": None, "unit_amount": "0.03"}]), 422, AT + "tiers.1.up_to", None),  # overlap
    (component(tiers=[{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": "1000", "unit_amount": "0.04"},
                      {"up_to": None, "unit_amount": "0.03"}]), 422, AT + "tiers.1.up_to", None),
    (component(tiers=[{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": "2000", "unit_amount": "0.03"}]),
     422, AT + "tiers.1.up_to", None),  # a gap above the last bound
    (component(tiers=[{"up_to": None, "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}]),
     422, AT + "tiers.0.up_to", None),
    (component(tiers=[]), 422, AT + "tiers", None),
    (component(tiers=[{"up_to": 1000, "unit_amount": 0.05}, {"up_to": None, "unit_amount": "0.03"}]),
     422, "fees", None),  # a JSON number where a decimal string is required
    (component(thresholds=[80, 101]), 422, "fees", None),
    (component(thresholds=[0]), 422, "fees", None),
    (component(thresholds=[80, 80]), 422, "fees", None),
    (component(included_units="0", thresholds=[80]), 422, "fees", None),
    (component(meter="instance", model="per_unit", unit_amount="0.05", tiers=[], included_units="0",
               dimension={"cloud": "aws"}), 422, AT + "dimension", None),
    (component(model="per_unit", tiers=[], included_units="0"), 422, AT + "unit_amount", None),
    (component(model="per_unit", unit_amount="0.05"), 422, AT + "tiers", None),
    (component(model="package", tiers=[], unit_amount="5.00"), 422, AT + "package_size", None),
    (component(model="per_unit", tiers=[], unit_amount="-0.05"), 422, "fees", None),
    (component(minimum="10.00", maximum="5.00"), 422, AT + "minimum", None),
    (component(minimum="10.001"), 422, "fees", None),
])
def test_a_bad_usage_component_is_refused_naming_the_field_and_no_plan_is_stored(provider, usage, status, field,
                                                                                    code):
    response = provider.post("/v1/plans", {"code": "cloud", "name": "Cloud", "currency": "EUR", "fees": [
        {"name": "Hosting", "price": "49.99", "timing": "in_arrears", "usage": [usage]}]})
    assert response.status_code == status, response.json
    fields = response.json["error"].get("fields", {})
    assert field in fields or any(name.startswith(field) for name in fields), response.json
    if code:
        assert response.json["error"]["code"] == code
    if field == "fees":  # the schema names the nested field
        assert "usage" in str(fields), fields
    assert provider.get("/v1/plans/cloud").status_code == 404


def test_a_fee_prices_each_meter_and_dimension_value_once(provider):
    cpu = {"meter": "instance", "model": "per_unit", "unit_amount": "0.04", "dimension": {"resource": "cpu"}}
    response = provider.post("/v1/plans", {"code": "vm", "name": "VM", "currency": "EUR", "fees": [
        {"name": "Instance", "usage": [cpu, {**cpu, "dimension": {"resource": "memory"}}, cpu]}]})
    refused(response, 422, AT.replace("usage.0.", "usage.2.") + "meter")
    assert provider.get("/v1/plans/vm").status_code == 404
