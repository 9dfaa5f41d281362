"""The admin API: tenant settings, providers, customers and API keys."""
from __future__ import annotations

import json

from tests.support.callers import Caller


def test_tenant_settings_are_read_and_patched_with_an_admin_key(tenant):
    admin = tenant.admin["test"]
    assert admin.get("/v1/tenant").json["period_anchor_day"] == 25
    response = admin.patch("/v1/tenant", {"legal_name": "Marketplace Pty Ltd", "charge_day": 3,
                                          "default_tax_rate": "0.10", "invoice_prefix": "MKT",
                                          "address": {"line1": "1 George St", "city": "Sydney",
                                                      "country": "AU"}})
    assert response.status_code == 200, response.json
    body = admin.get("/v1/tenant").json
    assert (body["legal_name"], body["charge_day"], body["default_tax_rate"], body["invoice_prefix"]) == (
        "Marketplace Pty Ltd", 3, "0.1", "MKT")
    assert body["address"]["city"] == "Sydney"


def test_invalid_tenant_settings_are_refused_with_the_field_at_fault(tenant):
    admin = tenant.admin["test"]
    for field, value in [("period_anchor_day", 29), ("charge_day", 0), ("timezone", "Mars/Base"),
                         ("default_currency", "ZZZ"), ("default_tax_rate", 0.1),
                         ("default_tax_rate", "1.5"), ("invoice_prefix", "bad prefix")]:
        response = admin.patch("/v1/tenant", {field: value})
        assert response.status_code == 422, (field, response.json)
        assert field in response.json["error"]["fields"]


def test_creating_a_provider_returns_its_key_once(tenant):
    admin = tenant.admin["test"]
    response = admin.post("/v1/providers", {"name": "Accounting App", "email": "billing@app.example",
                                            "revenue_share_rate": "0.30"})
    assert response.status_code == 201
    body = response.json
    assert body["api_key"].startswith("agg_prov_test_") and body["api_key_id"].startswith("key_")
    assert body["revenue_share_rate"] == "0.3" and body["livemode"] is False
    fetched = admin.get(f"/v1/providers/{body['id']}").json
    assert "api_key" not in fetched and fetched["name"] == "Accounting App"


def test_provider_rate_must_be_a_decimal_string_between_zero_and_one(tenant):
    admin = tenant.admin["test"]
    for rate in ["1.01", "-0.1", 0.3, "30%", "0.1234567"]:
        response = admin.post("/v1/providers", {"name": "X", "revenue_share_rate": rate})
        assert response.status_code == 422, rate
        assert "revenue_share_rate" in response.json["error"]["fields"]


def test_providers_are_patched_and_listed_with_cursor_pagination(tenant):
    admin = tenant.admin["test"]
    ids = [tenant.provider(name=f"App {i}").id for i in range(5)]
    assert admin.patch(f"/v1/providers/{ids[0]}", {"revenue_share_rate": "0.25"}).json[
        "revenue_share_rate"] == "0.25"
    first = admin.get("/v1/providers?limit=2").json
    assert [p["id"] for p in first["data"]] == ids[::-1][:2] and first["has_more"]
    rest = admin.get(f"/v1/providers?limit=10&starting_after={first['data'][-1]['id']}").json
    assert [p["id"] for p in rest["data"]] == ids[::-1][2:] and not rest["has_more"]


def test_a_revoked_provider_key_no_longer_authenticates(tenant):
    provider = tenant.provider()
    admin = tenant.admin["test"]
    issued = admin.post(f"/v1/providers/{provider.id}/keys")
    assert issued.status_code == 201 and issued.json["secret"].startswith("agg_prov_test_")
    second = Caller(tenant.client, issued.json["secret"])
    assert second.get("/v1/bills").status_code == 200
    revoked = admin.delete(f"/v1/keys/{issued.json['id']}")
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    assert second.get("/v1/bills").status_code == 401
    assert provider.get("/v1/bills").status_code == 200  # the first key still works


def test_a_key_revoked_after_submitting_bills_can_submit_nothing_more(tenant):
    # Intake recalls keys it has seen (no query); revocation must still take effect at once.
    tenant.customer("cust-1")
    provider = tenant.provider()
    admin = tenant.admin["test"]
    issued = admin.post(f"/v1/providers/{provider.id}/keys").json
    second = Caller(tenant.client, issued["secret"])
    bill = {"customer": "cust-1", "amount": "1.00", "currency": "AUD", "revenue_share": False}
    assert second.post("/v1/bills", bill, headers={"Idempotency-Key": "k1"}).status_code == 201
    assert admin.delete(f"/v1/keys/{issued['id']}").status_code == 200

    from aggregator import auth

    digest = auth.hash_key(issued["secret"])
    remembered = auth._RECALLED[digest]
    for body, key in [(bill, "k2"), (bill, "k1"), ({**bill, "amount": 1.5}, "k3"),
                      ({**bill, "customer": "nobody"}, "k4"), (bill, None), ("{", "k5")]:
        auth._RECALLED[digest] = remembered  # as another worker process still remembers it
        kwargs = {"data": body, "content_type": "application/json"} if body == "{" else {"json": body}
        response = second.client.post("/v1/bills", headers={
            "Authorization": f"Bearer {second.key}", **({"Idempotency-Key": key} if key else {})}, **kwargs)
        assert response.status_code == 401, (body, key, response.json)  # not 201, 409, 422 or 400
    assert len(provider.get("/v1/bills").json["data"]) == 1
    assert provider.post("/v1/bills", bill, headers={"Idempotency-Key": "k2"}).status_code == 201


def test_intake_refuses_an_admin_key_it_has_seen_before(tenant):
    admin = tenant.admin["test"]
    assert admin.get("/v1/bills").status_code == 200
    response = admin.post("/v1/bills", {"customer": "c"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 403


def test_bills_follow_a_calendar_changed_after_their_key_was_seen(tenant, clock):
    from datetime import datetime, timezone

    tenant.customer("cust-1")
    provider = tenant.provider()
    assert provider.get("/v1/bills").status_code == 200  # the key is now known to this process
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"timezone": "UTC", "period_anchor_day": 1}).status_code == 200
    clock.set(datetime(2026, 11, 30, 20, 0, tzinfo=timezone.utc))  # 1 December in Sydney
    bill = {"customer": "cust-1", "amount": "1.00", "currency": "AUD", "revenue_share": False}
    response = provider.post("/v1/bills", bill, headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201, response.json
    assert response.json["period"] == "2026-11-01"  # not Sydney's 2026-11-25
    again = provider.post("/v1/bills", bill, headers={"Idempotency-Key": "k2"})
    assert again.json["period"] == "2026-11-01"


def test_keys_are_stored_only_as_hashes(app, tenant):
    from aggregator.accounts.models import ApiKey
    from aggregator.db import db

    plaintext = tenant.admin["test"].key
    with app.app_context():
        rows = db.session.scalars(db.select(ApiKey).where(ApiKey.tenant_id == tenant.id)).all()
    assert rows and all(plaintext.encode() not in r.key_hash and plaintext not in r.hint for r in rows)


def test_customers_have_a_unique_external_id_per_tenant_and_mode(tenant, make_tenant):
    first = tenant.customer("acme", name="Acme Pty Ltd", email="ap@acme.example")
    assert first["currency"] == "AUD"  # the tenant's default
    again = tenant.admin["test"].post("/v1/customers", {"external_id": "acme"})
    assert again.status_code == 409 and "external_id" in again.json["error"]["fields"]  # a state conflict
    assert tenant.customer("acme", mode="live")["livemode"] is True
    assert make_tenant().customer("acme")["external_id"] == "acme"


def test_customers_are_patched_found_by_external_id_and_carry_tax_settings(tenant):
    customer = tenant.customer("acme", currency="usd", tax_rate="0.1",
                               address={"line1": "2 Pitt St", "country": "AU"})
    assert customer["currency"] == "USD" and customer["tax_rate"] == "0.1"
    admin = tenant.admin["test"]
    patched = admin.patch(f"/v1/customers/{customer['id']}", {"tax_exempt": True, "name": "Acme"})
    assert patched.json["tax_exempt"] is True and patched.json["name"] == "Acme"
    found = admin.get("/v1/customers?external_id=acme").json["data"]
    assert [c["id"] for c in found] == [customer["id"]]


def test_objects_of_another_tenant_or_mode_are_not_found(tenant, make_tenant):
    provider_id = tenant.provider().id
    customer_id = tenant.customer()["id"]
    for other in (make_tenant().admin["test"], tenant.admin["live"]):
        assert other.get(f"/v1/providers/{provider_id}").status_code == 404
        assert other.get(f"/v1/customers/{customer_id}").status_code == 404
        assert other.patch(f"/v1/customers/{customer_id}", {"name": "x"}).status_code == 404
        assert other.get("/v1/providers").json["data"] == []


def test_a_provider_key_cannot_use_the_admin_api(tenant):
    provider = _provider(tenant)
    response = provider.get("/v1/providers")
    assert response.status_code == 403 and response.json["error"]["type"] == "permission_error"
    for method, path in [("get", "/v1/keys"), ("get", f"/v1/keys/{provider.key_id}"),
                         ("post", "/v1/tenant/keys"), ("delete", f"/v1/keys/{provider.key_id}")]:
        assert getattr(provider, method)(path).status_code == 403, path


# --- keys --------------------------------------------------------------------------------

KEY_FIELDS = {"id", "object", "role", "provider", "hint", "livemode", "created_at", "revoked_at"}


def _provider(tenant, name="App"):
    """A caller with the provider's first key, knowing the provider's id and the key's."""
    response = tenant.admin["test"].post("/v1/providers", {"name": name})
    assert response.status_code == 201, response.json
    caller = Caller(tenant.client, response.json["api_key"])
    caller.id, caller.key_id = response.json["id"], response.json["api_key_id"]
    return caller


def _admin_key_id(tenant, mode="test") -> str:
    admin = tenant.admin[mode]
    listed = admin.get("/v1/keys?role=admin&limit=100").json["data"]
    (key,) = [k for k in listed if k["hint"].endswith(admin.key[-4:])]
    return key["id"]


def test_the_key_returned_when_a_provider_is_created_can_be_revoked_by_its_id(tenant):
    provider = _provider(tenant)
    assert provider.get("/v1/bills").status_code == 200
    revoked = tenant.admin["test"].delete(f"/v1/keys/{provider.key_id}")
    assert revoked.status_code == 200, revoked.json
    assert (revoked.json["id"], revoked.json["role"], revoked.json["provider"]) == (
        provider.key_id, "provider", provider.id)
    assert revoked.json["revoked_at"]
    assert provider.get("/v1/bills").status_code == 401


def test_keys_are_listed_newest_first_without_their_secrets(tenant):
    admin = tenant.admin["test"]
    admin_key_id = _admin_key_id(tenant)
    first = _provider(tenant, name="First")
    second_key = admin.post(f"/v1/providers/{first.id}/keys").json
    other = _provider(tenant, name="Other")
    listed = admin.get("/v1/keys").json
    assert [k["id"] for k in listed["data"]] == [other.key_id, second_key["id"], first.key_id, admin_key_id]
    assert not listed["has_more"]
    for key in listed["data"]:
        assert set(key) == KEY_FIELDS and key["object"] == "api_key" and key["livemode"] is False
    secrets = {admin.key, first.key, other.key, second_key["secret"]}
    assert not any(secret in json.dumps(listed) for secret in secrets)
    assert listed["data"][-1]["role"] == "admin" and listed["data"][-1]["provider"] is None
    assert admin.get(f"/v1/keys/{second_key['id']}").json == listed["data"][1]


def test_keys_are_paginated_and_filtered_by_provider_and_role(tenant):
    admin = tenant.admin["test"]
    first, other = _provider(tenant, name="First"), _provider(tenant, name="Other")
    issued = [admin.post(f"/v1/providers/{first.id}/keys").json["id"] for _ in range(2)]
    admin.delete(f"/v1/keys/{issued[0]}")
    page = admin.get("/v1/keys?limit=2").json
    assert [k["id"] for k in page["data"]] == issued[::-1] and page["has_more"]
    assert page["data"][1]["revoked_at"]  # revoked keys are listed, with when
    rest = admin.get(f"/v1/keys?starting_after={issued[0]}").json
    assert [k["id"] for k in rest["data"]] == [other.key_id, first.key_id, _admin_key_id(tenant)]
    assert not rest["has_more"]
    mine = admin.get(f"/v1/keys?provider={first.id}").json["data"]
    assert [k["id"] for k in mine] == [issued[1], issued[0], first.key_id]
    assert [k["role"] for k in admin.get("/v1/keys?role=admin").json["data"]] == ["admin"]
    assert len(admin.get("/v1/keys?role=provider").json["data"]) == 4
    assert admin.get(f"/v1/keys?role=admin&provider={first.id}").json["data"] == []
    refused = admin.get("/v1/keys?role=owner")
    assert refused.status_code == 422 and "role" in refused.json["error"]["fields"]


def test_keys_of_another_tenant_or_mode_are_never_listed_shown_or_revoked(tenant, make_tenant):
    provider = _provider(tenant)
    admin_key_id = _admin_key_id(tenant)
    elsewhere = make_tenant()
    elsewhere.provider()
    for other in (elsewhere.admin["test"], tenant.admin["live"]):
        listed = other.get("/v1/keys?limit=100").json["data"]
        assert {provider.key_id, admin_key_id}.isdisjoint(k["id"] for k in listed)
        assert all(k["role"] == "admin" or k["provider"] != provider.id for k in listed)
        assert other.get(f"/v1/keys?provider={provider.id}").json["data"] == []
        for key_id in (provider.key_id, admin_key_id):
            assert other.get(f"/v1/keys/{key_id}").status_code == 404
            assert other.delete(f"/v1/keys/{key_id}").status_code == 404
    assert provider.get("/v1/bills").status_code == 200
    assert tenant.admin["test"].get("/v1/keys").status_code == 200


def test_the_last_admin_key_of_a_mode_cannot_be_revoked(tenant):
    admin = tenant.admin["test"]
    first_id = _admin_key_id(tenant)
    refused = admin.delete(f"/v1/keys/{first_id}")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "last_admin_key"
    assert admin.get(f"/v1/keys/{first_id}").json["revoked_at"] is None
    # Rotation: issue another admin key, then revoke the old one (even with itself).
    issued = admin.post("/v1/tenant/keys")
    assert issued.status_code == 201 and issued.json["secret"].startswith("agg_admin_test_")
    assert (issued.json["role"], issued.json["provider"]) == ("admin", None)
    rotated = Caller(tenant.client, issued.json["secret"])
    assert admin.delete(f"/v1/keys/{first_id}").status_code == 200
    assert admin.get("/v1/keys").status_code == 401
    assert rotated.delete(f"/v1/keys/{first_id}").json["revoked_at"]  # revoking again changes nothing
    refused = rotated.delete(f"/v1/keys/{issued.json['id']}")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "last_admin_key"
    assert rotated.get("/v1/tenant").status_code == 200
    assert tenant.admin["live"].get("/v1/tenant").status_code == 200  # each mode has its own


def test_admins_revoking_each_others_keys_at_once_leave_one(postgres_only, app, tenant):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    admin = tenant.admin["test"]
    issued = [admin.post("/v1/tenant/keys").json for _ in range(5)]
    secrets = [admin.key] + [k["secret"] for k in issued]
    ids = [_admin_key_id(tenant)] + [k["id"] for k in issued]
    barrier = threading.Barrier(len(ids))

    def revoke_the_next(i):  # each admin revokes the next one's key
        caller = Caller(app.test_client(), secrets[i])
        barrier.wait()
        return caller.delete(f"/v1/keys/{ids[(i + 1) % len(ids)]}").status_code

    with ThreadPoolExecutor(len(ids)) as pool:
        statuses = list(pool.map(revoke_the_next, range(len(ids))))
    assert set(statuses) <= {200, 401, 409}, statuses  # 401: revoked before its own request
    survivors = [s for s in secrets if Caller(app.test_client(), s).get("/v1/tenant").status_code == 200]
    assert survivors and statuses.count(200) == len(ids) - len(survivors)


def test_cli_creates_a_tenant_and_prints_its_admin_keys(app, client):
    result = app.test_cli_runner().invoke(args=[
        "tenants", "create", "--name", "Shop", "--timezone", "America/New_York", "--currency", "usd",
        "--anchor-day", "1", "--charge-day", "5", "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["admin_keys"]["live"].startswith("agg_admin_live_")
    tenant = Caller(client, created["admin_keys"]["test"]).get("/v1/tenant").json
    assert (tenant["id"], tenant["timezone"], tenant["default_currency"], tenant["period_anchor_day"],
            tenant["charge_day"]) == (created["id"], "America/New_York", "USD", 1, 5)
    for mode in ("live", "test"):  # the ids of the keys printed, to revoke them once rotated
        admin = Caller(client, created["admin_keys"][mode])
        (key,) = admin.get("/v1/keys").json["data"]
        assert key["id"] == created["admin_key_ids"][mode] and key["role"] == "admin"


def _tenant_count(app) -> int:
    from aggregator.accounts.models import Tenant
    from aggregator.db import db

    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(Tenant))


def test_cli_refuses_what_the_api_refuses_naming_the_option(app):
    before = _tenant_count(app)
    for option, value, words in [
        ("--timezone", "Nowhere", "time zone"), ("--name", "", "Length"),
        ("--invoice-prefix", "bad prefix", "upper-case"), ("--invoice-prefix", "P" * 20, "upper-case"),
        ("--currency", "ZZZ", "ZZZ"), ("--anchor-day", "29", "28"), ("--charge-day", "0", "1"),
        ("--legal-name", "L" * 201, "Length"), ("--name", "N" * 201, "Length"),
    ]:
        args = {"--name": "Shop", option: value}
        result = app.test_cli_runner().invoke(
            args=["tenants", "create", *[a for kv in args.items() for a in kv]])
        assert result.exit_code == 2, (option, value, result.output)
        assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
        assert f"Invalid value for '{option}'" in result.output, result.output
        assert words.lower() in result.output.lower(), result.output
    assert _tenant_count(app) == before


def test_cli_names_every_option_at_fault(app):
    result = app.test_cli_runner().invoke(args=[
        "tenants", "create", "--name", "", "--invoice-prefix", "inv", "--currency", "usd"])
    assert result.exit_code == 2
    assert "'--name'" in result.output and "'--invoice-prefix'" in result.output
    assert "'--currency'" not in result.output  # lower case is accepted, as by the API


def test_the_calendar_is_fixed_once_bills_have_been_received(tenant):
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"period_anchor_day": 1}).status_code == 200  # nothing billed yet
    tenant.customer("c")
    provider = tenant.provider()
    provider.post("/v1/bills", {"customer": "c", "amount": "1.00", "currency": "AUD", "revenue_share": False},
                  headers={"Idempotency-Key": "k"})
    response = admin.patch("/v1/tenant", {"period_anchor_day": 25})
    assert response.status_code == 409 and response.json["error"]["code"] == "calendar_in_use"
    assert admin.patch("/v1/tenant", {"timezone": "Europe/Paris"}).status_code == 409
    assert admin.patch("/v1/tenant", {"period_anchor_day": 1, "name": "Same calendar"}).status_code == 200


def test_a_customer_is_found_by_its_id_or_its_external_id(tenant):
    admin = tenant.admin["test"]
    customer = tenant.customer("acme/co-1")
    other = tenant.customer(customer["id"] + "-x")
    for ref in (customer["id"], "acme/co-1"):
        assert admin.get(f"/v1/customers/{ref}").json["id"] == customer["id"]
    changed = admin.patch("/v1/customers/acme/co-1", {"name": "Acme Co"})
    assert changed.status_code == 200 and changed.json["name"] == "Acme Co"
    assert admin.get(f"/v1/customers/{other['external_id']}").json["id"] == other["id"]
    missing = admin.get("/v1/customers/nobody")
    assert missing.status_code == 404
    assert missing.json["error"]["message"] == "No customer with id or external_id 'nobody' in test mode."
    assert tenant.admin["live"].get("/v1/customers/acme/co-1").status_code == 404  # another mode


def test_an_external_id_that_is_another_customers_id_finds_the_customer_with_that_id(tenant):
    admin = tenant.admin["test"]
    first = tenant.customer("first")
    tenant.customer(first["id"])  # external_id equal to the first one's id
    assert admin.get(f"/v1/customers/{first['id']}").json["id"] == first["id"]
