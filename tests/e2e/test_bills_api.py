"""The bill intake API, as a provider's integration uses it."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.invoicing import bill_body


@pytest.fixture
def provider(tenant):
    tenant.customer("cust-1")
    return tenant.provider()


def post_bill(provider, key="key-1", **overrides):
    return provider.post("/v1/bills", bill_body(**overrides), headers={"Idempotency-Key": key})


def test_a_bill_is_accepted_and_shown_as_pending(provider, clock):
    response = post_bill(provider, metadata={"order": "A-17"},
                         service_period={"start": "2026-10-01", "end": "2026-10-31"})
    assert response.status_code == 201, response.json
    bill = response.json
    assert bill["id"].startswith("bill_")
    assert {k: bill[k] for k in ("status", "customer", "amount", "currency", "revenue_share",
                                 "description", "metadata", "livemode", "provider")} == {
        "status": "pending", "customer": "cust-1", "amount": "19.99", "currency": "AUD",
        "revenue_share": True, "description": "Pro plan, October", "metadata": {"order": "A-17"},
        "livemode": False, "provider": provider.id}
    assert bill["service_period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert bill["received_at"] == clock.now().isoformat()
    assert provider.get(f"/v1/bills/{bill['id']}").json == bill


def test_amounts_are_returned_in_the_currency_precision(tenant):
    tenant.customer("cust-1")
    provider = tenant.provider()
    for key, amount, currency, shown in [("a", "5", "USD", "5.00"), ("b", "1500", "JPY", "1500"),
                                         ("c", "1.234", "KWD", "1.234"), ("d", "-12.5", "AUD", "-12.50")]:
        response = post_bill(provider, key, amount=amount, currency=currency)
        assert response.status_code == 201, response.json
        assert response.json["amount"] == shown


def test_replaying_a_request_returns_the_original_bill_and_stores_nothing(provider):
    first = post_bill(provider)
    again = post_bill(provider, amount="19.990")  # the same amount, written differently
    assert again.status_code == 201 and again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(provider.get("/v1/bills").json["data"]) == 1


def test_reusing_a_key_for_a_different_bill_is_a_conflict(provider):
    post_bill(provider)
    response = post_bill(provider, amount="20.00")
    assert response.status_code == 409
    assert response.json["error"]["code"] == "idempotency_key_reused"


def test_keys_are_per_provider(tenant, provider):
    other = tenant.provider(name="Other app")
    assert post_bill(provider).json["id"] != post_bill(other).json["id"]


@pytest.mark.parametrize("field,value", [
    ("amount", 19.99), ("amount", 1999), ("amount", "1.005"), ("amount", "NaN"), ("amount", "Infinity"),
    ("amount", "1e3"), ("amount", "10000000000000"), ("amount", ""), ("amount", None),
    ("currency", "ZZZ"), ("currency", "DEM"), ("currency", 36), ("revenue_share", "yes"),
    ("revenue_share", None), ("customer", ""), ("description", "x" * 1001),
    ("metadata", {"k": 1}), ("metadata", {f"k{i}": "v" for i in range(51)}), ("metadata", "flat"),
    ("service_period", {"start": "2026-10-31", "end": "2026-10-01"}),
    ("service_period", {"start": "yesterday", "end": "2026-10-01"}),
    ("service_period", {"start": "20261001", "end": "2026-10-31"}),
    ("service_period", {"start": "2026-10-01", "end": "2026-W44-6"}),
])
def test_invalid_bills_are_refused_with_422_naming_the_field(provider, field, value):
    response = post_bill(provider, **{field: value})
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["type"] == "validation_error"
    assert any(name == field or name.startswith(field + ".") for name in error["fields"]), error


def test_yen_with_decimals_is_refused(provider):
    response = post_bill(provider, amount="1.5", currency="JPY")
    assert response.status_code == 422 and "amount" in response.json["error"]["fields"]


def test_missing_fields_and_unknown_fields_are_refused(provider):
    response = provider.post("/v1/bills", {"customer": "cust-1", "surprise": 1},
                             headers={"Idempotency-Key": "k"})
    assert response.status_code == 422
    assert {"amount", "currency", "revenue_share", "surprise"} <= set(response.json["error"]["fields"])


def test_a_bill_for_an_unknown_customer_is_refused_and_can_be_retried_later(tenant, provider):
    response = post_bill(provider, customer="newcomer")
    assert response.status_code == 404  # a reference to what does not exist (yet), as an unknown id in a URL
    assert response.json["error"]["code"] == "unknown_customer"
    assert list(response.json["error"]["fields"]) == ["customer"]
    tenant.customer("newcomer")
    assert post_bill(provider, customer="newcomer").status_code == 201


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": ""}, {"Idempotency-Key": "k" * 256}])
def test_the_idempotency_key_header_is_required_and_bounded(provider, headers):
    response = provider.post("/v1/bills", bill_body(), headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["error"]["fields"]


def test_a_key_of_255_characters_is_accepted(provider):
    assert post_bill(provider, key="k" * 255).status_code == 201


def test_malformed_json_is_a_400(provider):
    response = provider.post("/v1/bills", data="{not json", headers={
        "Idempotency-Key": "k", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("body", [[1, 2], "text", 42, None])
def test_a_body_that_is_not_an_object_is_refused(provider, body):
    response = provider.post("/v1/bills", data=__import__("json").dumps(body), headers={
        "Idempotency-Key": "k", "Content-Type": "application/json"})
    assert response.status_code in (400, 422) and "error" in response.json


def test_an_oversized_body_is_a_413(provider):
    response = provider.post("/v1/bills", data="x" * (5 * 1024 * 1024), headers={
        "Idempotency-Key": "k", "Content-Type": "application/json"})
    assert response.status_code == 413 and response.json["error"]["type"] == "request_too_large"


def test_authentication_errors(client, tenant, provider):
    assert client.post("/v1/bills", json=bill_body()).status_code == 401
    bad = client.post("/v1/bills", json=bill_body(), headers={"Authorization": "Bearer agg_prov_test_nope"})
    assert bad.status_code == 401 and bad.json["error"]["type"] == "authentication_error"
    wrong_role = tenant.admin["test"].post("/v1/bills", bill_body(), headers={"Idempotency-Key": "k"})
    assert wrong_role.status_code == 403


def test_unknown_routes_and_methods_answer_in_the_error_shape(client, provider):
    assert client.get("/v1/nothing-here").json["error"]["type"] == "not_found"
    response = provider.put("/v1/bills", bill_body())
    assert response.status_code == 405 and response.json["error"]["type"] == "method_not_allowed"


# --- batches -----------------------------------------------------------------------------

def test_a_batch_accepts_or_refuses_each_bill_on_its_own(provider):
    post_bill(provider, key="old")
    items = [
        {**bill_body(), "idempotency_key": "b1"},
        {**bill_body(amount="1.001"), "idempotency_key": "b2"},
        {**bill_body(customer="ghost"), "idempotency_key": "b3"},
        {**bill_body(), "idempotency_key": "old"},  # replay of a bill posted singly
        {**bill_body(amount="2.00"), "idempotency_key": "old"},  # conflict with it
        {**bill_body(), "idempotency_key": "b1"},  # replay within the batch
        {**bill_body(amount="3.00"), "idempotency_key": "b1"},  # conflict within the batch
        {"idempotency_key": "b4"},
    ]
    response = provider.post("/v1/bills/batch", {"bills": items})
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert [d["status"] for d in data] == [201, 422, 404, 201, 409, 201, 409, 422]
    assert "amount" in data[1]["error"]["fields"] and data[2]["error"]["code"] == "unknown_customer"
    assert data[3]["replayed"] and data[5]["replayed"] and not data[0]["replayed"]
    assert data[5]["bill"]["id"] == data[0]["bill"]["id"]
    assert {"amount", "currency", "customer", "revenue_share"} <= set(data[7]["error"]["fields"])
    assert len(provider.get("/v1/bills?limit=100").json["data"]) == 2


def test_a_whole_batch_replayed_returns_the_same_bills(provider):
    items = [{**bill_body(amount=f"{i}.00"), "idempotency_key": f"k{i}"} for i in range(1, 50)]
    first = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    again = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    assert [d["bill"]["id"] for d in first] == [d["bill"]["id"] for d in again]
    assert all(d["replayed"] for d in again)


@pytest.mark.parametrize("bills", [[], "nope", None])
def test_a_batch_must_be_a_non_empty_list(provider, bills):
    response = provider.post("/v1/bills/batch", {"bills": bills})
    assert response.status_code == 422 and "bills" in response.json["error"]["fields"]


def test_a_batch_holds_at_most_1000_bills(provider):
    items = [{**bill_body(), "idempotency_key": f"k{i}"} for i in range(1001)]
    response = provider.post("/v1/bills/batch", {"bills": items})
    assert response.status_code == 422 and "bills" in response.json["error"]["fields"]


def test_a_batch_of_1000_bills_is_stored(provider):
    items = [{**bill_body(amount=f"{i}.00"), "idempotency_key": f"k{i}"} for i in range(1000)]
    data = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    assert [d["status"] for d in data] == [201] * 1000
    assert [d["bill"]["amount"] for d in data[:3]] == ["0.00", "1.00", "2.00"]


# --- reading and cancelling ------------------------------------------------------------

def test_bills_are_listed_newest_first_with_filters_and_a_cursor(tenant, provider):
    tenant.customer("cust-2")
    ids = [post_bill(provider, f"k{i}", customer="cust-2" if i % 2 else "cust-1").json["id"]
           for i in range(5)]
    provider.delete(f"/v1/bills/{ids[4]}")
    page = provider.get("/v1/bills?limit=2").json
    assert [b["id"] for b in page["data"]] == [ids[4], ids[3]] and page["has_more"]
    page = provider.get(f"/v1/bills?limit=10&starting_after={ids[3]}").json
    assert [b["id"] for b in page["data"]] == [ids[2], ids[1], ids[0]] and not page["has_more"]
    assert [b["id"] for b in provider.get("/v1/bills?customer=cust-2").json["data"]] == [ids[3], ids[1]]
    assert [b["id"] for b in provider.get("/v1/bills?status=cancelled").json["data"]] == [ids[4]]
    assert provider.get("/v1/bills?status=bogus").status_code == 422
    assert provider.get("/v1/bills?limit=0").status_code == 422
    assert provider.get("/v1/bills?limit=101").status_code == 422


def test_cancelling_a_pending_bill(provider, clock):
    bill = post_bill(provider).json
    response = provider.delete(f"/v1/bills/{bill['id']}")
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert provider.delete(f"/v1/bills/{bill['id']}").json["status"] == "cancelled"  # idempotent


def test_an_invoiced_bill_cannot_be_cancelled(tenant, provider):
    bill = post_bill(provider).json
    advance = tenant.admin["test"].post("/v1/test_clock/advance", {"to": "2026-11-25T00:00:00+00:00"})
    assert advance.status_code == 200 and advance.json["ran"]["closes"][0]["invoices_created"] == 1
    assert provider.get(f"/v1/bills/{bill['id']}").json["status"] == "invoiced"
    assert [b["id"] for b in provider.get("/v1/bills?status=invoiced").json["data"]] == [bill["id"]]
    assert provider.get("/v1/bills?status=pending").json["data"] == []
    response = provider.delete(f"/v1/bills/{bill['id']}")
    assert response.status_code == 409 and response.json["error"]["code"] == "bill_already_invoiced"


def test_a_bill_cannot_be_cancelled_once_its_period_is_closing(tenant, provider):
    """A customer waiting for an FX rate has no invoice yet, but its bills are frozen too."""
    bill = post_bill(provider, currency="USD", amount="5.00").json
    advance = tenant.admin["test"].post("/v1/test_clock/advance", {"to": "2026-11-25T00:00:00+00:00"})
    assert advance.json["ran"]["closes"][0]["status"] == "closing"
    assert provider.get(f"/v1/bills/{bill['id']}").json["status"] == "pending"
    response = provider.delete(f"/v1/bills/{bill['id']}")
    assert response.status_code == 409 and response.json["error"]["code"] == "period_closed"
    late = post_bill(provider, key="late").json
    assert late["period"] == "2026-11-25"
    assert provider.delete(f"/v1/bills/{late['id']}").json["status"] == "cancelled"


def test_admins_read_every_providers_bills_but_cannot_submit(tenant, provider):
    other = tenant.provider(name="Other")
    mine, theirs = post_bill(provider).json, post_bill(other).json
    admin = tenant.admin["test"]
    assert {b["id"] for b in admin.get("/v1/bills").json["data"]} == {mine["id"], theirs["id"]}
    assert [b["id"] for b in admin.get(f"/v1/bills?provider={other.id}").json["data"]] == [theirs["id"]]
    assert admin.get(f"/v1/bills/{mine['id']}").status_code == 200
    assert admin.delete(f"/v1/bills/{mine['id']}").status_code == 403


# --- isolation -------------------------------------------------------------------------

def test_a_provider_never_sees_another_providers_bill(tenant, provider):
    other = tenant.provider(name="Other")
    bill = post_bill(provider).json
    assert other.get(f"/v1/bills/{bill['id']}").status_code == 404
    assert other.delete(f"/v1/bills/{bill['id']}").status_code == 404
    assert other.get("/v1/bills").json["data"] == []
    assert other.get(f"/v1/bills?provider={provider.id}").json["data"] == []
    assert provider.get(f"/v1/bills/{bill['id']}").status_code == 200


def test_tenants_and_modes_are_isolated(tenant, provider, make_tenant):
    bill = post_bill(provider).json
    stranger = make_tenant()
    stranger.customer("cust-1")
    foreign = stranger.provider()
    live = tenant.provider(mode="live")
    for caller in (foreign, live, stranger.admin["test"], tenant.admin["live"]):
        assert caller.get(f"/v1/bills/{bill['id']}").status_code == 404
        assert caller.get("/v1/bills").json["data"] == []
    # a live-mode provider cannot bill the test-mode customer
    response = post_bill(live)
    assert response.status_code == 404 and response.json["error"]["code"] == "unknown_customer"
    tenant.customer("cust-1", mode="live")
    live_bill = post_bill(live).json
    assert live_bill["livemode"] is True
    assert provider.get(f"/v1/bills/{live_bill['id']}").status_code == 404


# --- free trials ------------------------------------------------------------------------

def test_subscription_bills_are_refused_during_a_free_trial(provider, clock):
    ends = clock.now() + timedelta(days=14)
    response = provider.put("/v1/customers/cust-1/trial", {"ends_at": ends.isoformat()})
    assert response.status_code == 200 and response.json["ends_at"] == ends.isoformat()
    refused = post_bill(provider, "sub")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "in_free_trial"
    assert post_bill(provider, "sms", revenue_share=False, description="SMS pack").status_code == 201
    clock.set(ends)
    assert post_bill(provider, "sub").status_code == 201


def test_a_trial_is_per_provider_and_can_be_ended_early(tenant, provider, clock):
    provider.put("/v1/customers/cust-1/trial", {"ends_at": (clock.now() + timedelta(days=30)).isoformat()})
    other = tenant.provider(name="Other")
    assert post_bill(other, "o").status_code == 201
    assert provider.get("/v1/customers/cust-1/trial").status_code == 200
    assert other.get("/v1/customers/cust-1/trial").status_code == 404
    assert provider.delete("/v1/customers/cust-1/trial").status_code == 200
    assert post_bill(provider, "p").status_code == 201


def test_a_customer_whose_external_id_holds_a_slash_can_have_a_trial(tenant, clock):
    tenant.customer("team/acme")
    provider = tenant.provider()
    ends = (clock.now() + timedelta(days=14)).isoformat()
    assert provider.put("/v1/customers/team%2Facme/trial", {"ends_at": ends}).status_code == 200
    assert provider.get("/v1/customers/team/acme/trial").json["ends_at"] == ends
    refused = post_bill(provider, "sub", customer="team/acme")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "in_free_trial"
    assert provider.delete("/v1/customers/team%2Facme/trial").status_code == 200


def test_a_batch_judges_items_sharing_a_key_in_order(provider):
    items = [{**bill_body(customer="nobody"), "idempotency_key": "d1"},
             {**bill_body(), "idempotency_key": "d1"},
             {**bill_body(customer="nobody"), "idempotency_key": "d1"}]
    data = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    assert [d["status"] for d in data] == [404, 201, 409]
    assert data[0]["error"]["code"] == "unknown_customer"
    assert data[2]["error"]["code"] == "idempotency_key_reused"


def test_trial_requests_are_validated(provider):
    assert provider.put("/v1/customers/ghost/trial", {"ends_at": "2027-01-01T00:00:00Z"}).status_code == 404
    response = provider.put("/v1/customers/cust-1/trial", {"ends_at": "2027-01-01T00:00:00"})
    assert response.status_code == 422 and "ends_at" in response.json["error"]["fields"]


def test_a_batch_refuses_only_the_subscription_bills_of_a_customer_in_trial(provider, clock):
    provider.put("/v1/customers/cust-1/trial", {"ends_at": (clock.now() + timedelta(days=3)).isoformat()})
    items = [{**bill_body(), "idempotency_key": "a"},
             {**bill_body(revenue_share=False), "idempotency_key": "b"}]
    data = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    assert [d["status"] for d in data] == [409, 201]
    assert data[0]["error"]["code"] == "in_free_trial"


def test_a_stored_bill_is_replayed_even_after_its_customer_entered_a_trial(provider, clock):
    first = post_bill(provider, "sub")
    provider.put("/v1/customers/cust-1/trial", {"ends_at": (clock.now() + timedelta(days=5)).isoformat()})
    again = post_bill(provider, "sub")
    assert again.status_code == 201 and again.json["id"] == first.json["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert post_bill(provider, "sub", amount="1.00").status_code == 409


def test_a_batch_stores_each_bill_as_it_answers_it(provider):
    items = [{**bill_body(amount=f"{i}.50", currency=["AUD", "JPY", "KWD"][i % 3] if i % 3 == 0 else "AUD",
                          revenue_share=bool(i % 2), description=f"item {i} é",
                          **({"service_period": {"start": "2026-10-01", "end": f"2026-10-{10 + i:02d}"}}
                             if i % 2 else {}),
                          **({"metadata": {"order": f"A-{i}", "note": "ü"}} if i % 3 else {})),
              "idempotency_key": f"mixed-{i}"} for i in range(6)]
    data = provider.post("/v1/bills/batch", {"bills": items}).json["data"]
    assert [d["status"] for d in data] == [201] * 6
    for answered in data:
        assert provider.get(f"/v1/bills/{answered['bill']['id']}").json == answered["bill"]
    assert data[1]["bill"]["service_period"] == {"start": "2026-10-01", "end": "2026-10-11"}
    assert data[0]["bill"]["service_period"] is None and data[0]["bill"]["metadata"] == {}
    assert data[2]["bill"]["metadata"] == {"order": "A-2", "note": "ü"}


def test_a_bill_arriving_while_its_period_is_closing_goes_to_the_next_period(app, tenant, provider):
    from aggregator.db import db

    first = post_bill(provider, "before").json
    with app.app_context():  # what the close does first, under its exclusive lock on the row
        db.session.execute(db.text("UPDATE periods SET status = 'closing' WHERE tenant_id = :t AND start = :s"),
                           {"t": tenant.id, "s": first["period"]})
        db.session.commit()
    later = post_bill(provider, "during").json
    assert first["period"] == "2026-10-25" and later["period"] == "2026-11-25"
    assert provider.get(f"/v1/bills/{later['id']}").json["period"] == "2026-11-25"


@pytest.mark.parametrize("status, request_, code", [
    (404, lambda p: p.get("/v1/nothing-here"), "unknown_url"),
    (405, lambda p: p.put("/v1/bills", bill_body()), "method_not_allowed"),
    (413, lambda p: p.post("/v1/bills", data="x" * (5 * 1024 * 1024),
                           headers={"Idempotency-Key": "k", "Content-Type": "application/json"}), "request_too_large"),
    (415, lambda p: p.post("/v1/bills", data="customer=c", headers={
        "Idempotency-Key": "k", "Content-Type": "application/x-www-form-urlencoded"}), "unsupported_media_type"),
], ids=["404", "405", "413", "415"])
def test_http_errors_have_a_code_for_programs(client, provider, status, request_, code):
    from tests.support.openapi import conforms

    response = request_(provider)
    assert response.status_code == status
    error = response.json["error"]
    assert error["code"] == code and error["message"] and error["type"], error
    spec = client.get("/v1/openapi.json").json
    conforms(spec, "POST", "/v1/bills", response)  # the documented error shape
