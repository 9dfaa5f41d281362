"""Plans through the API: versioned prices (from a period on, never into one closing or closed,
never finer than the currency's minor unit), parent plans granted to providers (one, or all),
the tenant's environments and a plan limited to some, an unbilled plan, quotas and the
entitlements that explain them, and the events plans and subscriptions announce."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance

# Sydney, anchor 25: the test clock starts 2026-11-10T12:00Z (23:00 local, 10 Nov) in the period
# 2026-10-25 .. 2026-11-24 (31 days, ending 2026-11-24T13:00Z); the next runs 2026-11-25 ..
# 2026-12-24 (30 days, ending 2026-12-24T13:00Z).
NEXT_END = "2026-12-25T00:00:00+00:00"


def plan(caller, code, price="31.00", timing="in_arrears", **fields):
    body = {"code": code, "name": code.title(), "currency": "AUD",
            "fees": [{"name": "Hosting", "price": price, "timing": timing}], **fields}
    response = caller.post("/v1/plans", body)
    assert response.status_code == 201, response.json
    return response.json


def subscribe(provider, status=201, **fields):
    response = provider.post("/v1/subscriptions", {"customer": "cust-1", **fields})
    assert response.status_code == status, response.json
    return response.json


def refused(response, status: int, field: str, code: str | None = None) -> dict:
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert field in error.get("fields", {}), error
    if code:
        assert error["code"] == code, error
    return error


def charges(provider, sub_id, period):
    """(description, amount, platform fee) of what the close of `period` billed the subscription."""
    statements = provider.get(f"/v1/subscriptions/{sub_id}/statements").json["data"]
    found = [s for s in statements if s["period"] == period]
    return sorted((c["description"], c["amount"], c["platform_fee"]) for s in found for c in s["charges"])


@pytest.fixture
def provider(tenant):
    tenant.customer("cust-1")
    return tenant.provider(name="Hosting Co")


# --- versions ------------------------------------------------------------------------------------

def test_a_price_change_from_the_next_period_leaves_the_open_one_alone(tenant, provider):
    plan(provider, "solo", price="31.00")
    changed = provider.post("/v1/plans/solo/versions", {"effective_from": "2026-11-25", "prices": {"Hosting": "60.00"}})
    assert changed.status_code == 201, changed.json
    (fee,) = changed.json["fees"]
    assert fee["price"] == "31.00"  # the open period's price
    assert [(p["effective_from"], p["amount"]) for p in fee["prices"]] == [(None, "31.00"), ("2026-11-25", "60.00")]
    sub = subscribe(provider, plan="solo")
    advance(tenant)
    # 10 .. 24 Nov (Sydney): 15 of 31 days at the old price
    assert charges(provider, sub["id"], "2026-10-25") == [("Hosting — Solo, 15 of 31 days", "15.00", None)]
    assert provider.get("/v1/plans/solo").json["fees"][0]["price"] == "60.00"
    advance(tenant, NEXT_END)
    assert charges(provider, sub["id"], "2026-11-25") == [("Hosting — Solo", "60.00", None)]


def test_a_price_change_into_a_closed_or_closing_period_is_refused(tenant, provider):
    plan(provider, "solo")
    advance(tenant)  # 2026-10-25 is closed; 2026-11-25 is open
    for effective_from in ("2026-10-25", "2026-09-25"):
        response = provider.post("/v1/plans/solo/versions", {"effective_from": effective_from,
                                                             "prices": {"Hosting": "1.00"}})
        refused(response, 409, "effective_from", "period_closed")
    refused(provider.post("/v1/plans/solo/versions", {"effective_from": "2026-12-01", "prices": {"Hosting": "1.00"}}),
            409, "effective_from", "not_a_period_start")  # on the tenant's calendar
    assert [p["amount"] for p in provider.get("/v1/plans/solo").json["fees"][0]["prices"]] == ["31.00"]


def test_a_price_change_into_a_period_still_closing_is_refused(tenant, provider):
    from tests.support.invoicing import send

    plan(provider, "solo")
    send(provider, "usd-1", currency="USD")  # no USD->AUD rate: the close waits, the period stays closing
    advance(tenant)
    assert tenant.admin["test"].get("/v1/periods/2026-10-25").json["status"] == "closing"
    refused(provider.post("/v1/plans/solo/versions", {"effective_from": "2026-10-25", "prices": {"Hosting": "1.00"}}),
            409, "effective_from", "period_closed")
    sub = subscribe(provider, plan="solo", starts_at="2026-11-24T13:00:00+00:00")  # the open period's start
    refused(provider.patch(f"/v1/subscriptions/{sub['id']}", {"quantity": 2, "at": "2026-11-20T00:00:00Z"}),
            409, "at", "period_closed")


@pytest.mark.parametrize("currency, price", [("AUD", "10.001"), ("JPY", "100.5"), ("AUD", "-1.00")])
def test_a_price_finer_than_the_currency_allows_is_refused_naming_the_fee(provider, currency, price):
    response = provider.post("/v1/plans", {"code": "fine", "name": "Fine", "currency": currency,
                                           "fees": [{"name": "Hosting", "price": "1"},
                                                    {"name": "Support", "price": price}]})
    refused(response, 422, "fees.1.price")
    assert provider.get("/v1/plans").json["data"] == []


def test_two_versions_at_one_instant_are_one_the_last_holding(provider):
    plan(provider, "solo")
    for price in ("40.00", "45.00"):  # the test clock stands still: both recorded at the same instant
        assert provider.post("/v1/plans/solo/versions", {"effective_from": "2026-11-25",
                                                         "prices": {"Hosting": price}}).status_code == 201
    prices = provider.get("/v1/plans/solo").json["fees"][0]["prices"]
    assert [(p["effective_from"], p["amount"]) for p in prices] == [(None, "31.00"), ("2026-11-25", "45.00")]


def test_a_new_version_finer_than_the_minor_unit_is_refused_naming_the_fee(provider):
    plan(provider, "solo")
    for price in ("10.001", "-5.00"):
        refused(provider.post("/v1/plans/solo/versions", {"prices": {"Hosting": price}}), 422, "prices.Hosting")
    refused(provider.post("/v1/plans/solo/versions", {"prices": {"Nope": "1.00"}}), 409, "prices", "unknown_fee")
    assert len(provider.get("/v1/plans/solo").json["fees"][0]["prices"]) == 1


@pytest.mark.parametrize("owner", ["admin", "provider"])
def test_a_second_plan_with_the_same_code_is_refused_not_an_error(tenant, provider, owner):
    caller = tenant.admin["test"] if owner == "admin" else provider
    grants = {"granted_to": ["*"]} if owner == "admin" else {}
    plan(caller, "same", **grants)
    refused(caller.post("/v1/plans", {"code": "same", "name": "Again", "currency": "AUD", **grants,
                                      "fees": [{"name": "Hosting", "price": "1.00"}]}), 409, "code", "plan_code_taken")
    assert [p["name"] for p in caller.get("/v1/plans").json["data"]] == ["Same"]
    other = tenant.provider(name="Other")  # unique per owner: another may use the code
    plan(other, "same")


# --- parent plans and grants ---------------------------------------------------------------------

def test_a_provider_cannot_build_on_a_parent_plan_not_granted_to_it(tenant, provider):
    admin = tenant.admin["test"]
    other = tenant.provider(name="Other")
    plan(admin, "platform", price="20.00", granted_to=[other.id])
    assert provider.get("/v1/plans/platform").status_code == 404
    assert other.get("/v1/plans/platform").status_code == 200
    response = provider.post("/v1/plans", {"code": "mine", "name": "Mine", "currency": "AUD",
                                           "parent_plan": "platform",
                                           "fees": [{"name": "Hosting", "price": "30.00", "parent_fee": "Hosting"}]})
    refused(response, 404, "parent_plan", "plan_not_granted")
    assert provider.get("/v1/plans").json["data"] == []


def test_a_parent_plan_granted_to_all_serves_every_provider(tenant, provider):
    admin = tenant.admin["test"]
    plan(admin, "platform", price="20.00", granted_to=["*"])
    later = tenant.provider(name="Created after the grant")
    for caller in (provider, later):
        built = plan(caller, "mine", price="25.00", parent_plan="platform",
                     fees=[{"name": "Hosting", "price": "25.00", "timing": "in_arrears", "parent_fee": "Hosting"}])
        assert (built["fees"][0]["parent_price"], built["fees"][0]["profit"]) == ("20.00", "5.00")
    assert admin.get("/v1/plans/platform").json["granted_to"] == ["*"]
    # a parent fee that is not the parent's, a parent plan's own parent: refused
    response = provider.post("/v1/plans", {"code": "odd", "name": "Odd", "currency": "AUD", "parent_plan": "platform",
                                           "fees": [{"name": "Hosting", "price": "1.00", "parent_fee": "Nope"}]})
    refused(response, 404, "fees.0.parent_fee")
    response = provider.post("/v1/plans", {"code": "odd", "name": "Odd", "currency": "AUD", "parent_plan": "platform",
                                           "fees": [{"name": "Hosting", "price": "1.00"}]})
    refused(response, 422, "fees.0.parent_fee")  # a fee of a plan on a parent plan names the fee it resells
    response = provider.post("/v1/plans", {"code": "odd", "name": "Odd", "currency": "USD", "parent_plan": "platform",
                                           "fees": [{"name": "Hosting", "price": "1.00", "parent_fee": "Hosting"}]})
    refused(response, 409, "currency", "currency_mismatch")
    response = admin.post("/v1/plans", {"code": "odd", "name": "Odd", "currency": "AUD", "parent_plan": "platform",
                                        "fees": [{"name": "Hosting", "price": "1.00"}]})
    refused(response, 403, "parent_plan")


def test_only_a_parent_plan_is_granted(tenant, provider):
    response = provider.post("/v1/plans", {"code": "x", "name": "X", "currency": "AUD", "granted_to": ["*"],
                                           "fees": [{"name": "Hosting", "price": "1.00"}]})
    refused(response, 403, "granted_to", "parent_plans_only")
    refused(tenant.admin["test"].post("/v1/plans", {
        "code": "x", "name": "X", "currency": "AUD", "granted_to": ["prov_nobody"],
        "fees": [{"name": "Hosting", "price": "1.00"}]}), 409, "granted_to", "unknown_provider")


# --- environments --------------------------------------------------------------------------------

def test_environments_default_to_production_and_staging_and_the_admin_adds_more(tenant, provider):
    admin = tenant.admin["test"]
    assert admin.get("/v1/environments").json["data"] == ["production", "staging"]
    assert provider.get("/v1/environments").json["data"] == ["production", "staging"]
    assert provider.post("/v1/environments", {"name": "qa"}).status_code == 403
    added = admin.post("/v1/environments", {"name": "qa"})
    assert added.status_code == 201 and sorted(added.json["data"]) == ["production", "qa", "staging"], added.json
    refused(admin.post("/v1/environments", {"name": "qa"}), 409, "name", "environment_exists")
    assert tenant.admin["live"].get("/v1/environments").json["data"] == ["production", "staging"]
    plan(provider, "qa-only", environments=["qa"])
    sub = subscribe(provider, plan="qa-only")
    assert sub["environment"] == "qa"
    assert admin.delete("/v1/environments/qa").status_code == 409  # in use
    assert sorted(admin.delete("/v1/environments/staging").json["data"]) == ["production", "qa"]


def test_a_plan_limited_to_staging_refuses_a_production_subscription(provider):
    plan(provider, "stage", environments=["staging"])
    refused(provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "stage", "environment": "production"}),
            422, "environment", "environment_not_allowed")
    assert provider.get("/v1/subscriptions").json["data"] == []
    assert subscribe(provider, plan="stage")["environment"] == "staging"
    refused(provider.post("/v1/plans", {"code": "bad", "name": "Bad", "currency": "AUD", "environments": ["moon"],
                                        "fees": [{"name": "Hosting", "price": "1.00"}]}), 409, "environments",
            "unknown_environment")


def test_an_unbilled_plan_bills_nothing(tenant, provider):
    plan(provider, "free-stage", environments=["staging"], unbilled=True,
         fees=[{"name": "Hosting", "price": "50.00", "timing": "in_advance"},
               {"name": "Support", "price": "5.00", "timing": "in_arrears"}])
    sub = subscribe(provider, plan="free-stage")
    advance(tenant)
    advance(tenant, NEXT_END)
    assert provider.get(f"/v1/subscriptions/{sub['id']}/statements").json["data"] == []
    assert tenant.admin["test"].get("/v1/invoices").json["data"] == []
    assert provider.get("/v1/bills").json["data"] == []


# --- quotas and entitlements ---------------------------------------------------------------------

def test_quotas_refuse_a_subscription_beyond_them_and_entitlements_say_why(tenant, provider):
    admin = tenant.admin["test"]
    plan(provider, "one-each", max_subscriptions_per_customer=1)
    plan(provider, "with-card", requires_payment_method=True)
    plan(provider, "open")
    subscribe(provider, plan="one-each")
    refused(provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "one-each"}), 409, "plan",
            "quota_exceeded")
    refused(provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "with-card"}), 409, "customer",
            "payment_method_required")
    assert len(provider.get("/v1/subscriptions").json["data"]) == 1

    said = provider.get("/v1/customers/cust-1/entitlements")
    assert said.status_code == 200, said.json
    assert said.json["customer"] == "cust-1"
    found = {e["plan"]: (e["allowed"], [r["code"] for r in e["reasons"]]) for e in said.json["data"]}
    assert found == {"one-each": (False, ["quota_exceeded"]), "with-card": (False, ["payment_method_required"]),
                     "open": (True, [])}
    assert all(r["message"] for e in said.json["data"] for r in e["reasons"])
    assert provider.get("/v1/customers/nobody/entitlements").status_code == 404
    assert admin.get("/v1/customers/cust-1/entitlements").status_code == 403

    # a card on file, and the quota freed by a cancellation: both plans may start
    assert admin.patch("/v1/customers/cust-1", {"stripe_customer_id": "cus_1",
                                                "stripe_payment_method": "pm_1"}).status_code == 200
    (first,) = provider.get("/v1/subscriptions").json["data"]
    assert provider.delete(f"/v1/subscriptions/{first['id']}").status_code == 200
    found = {e["plan"]: e["allowed"] for e in provider.get("/v1/customers/cust-1/entitlements").json["data"]}
    assert found == {"one-each": True, "with-card": True, "open": True}
    subscribe(provider, plan="with-card")
    subscribe(provider, plan="one-each")


def test_a_quota_counts_the_customer_s_subscriptions_of_that_plan_only(tenant, provider):
    tenant.customer("cust-2")
    plan(provider, "one-each", max_subscriptions_per_customer=1)
    subscribe(provider, plan="one-each")
    subscribe(provider, plan="one-each", customer="cust-2")
    other = tenant.provider(name="Other")
    plan(other, "one-each", max_subscriptions_per_customer=1)
    subscribe(other, plan="one-each")


# --- events --------------------------------------------------------------------------------------

def test_plans_and_subscriptions_announce_their_changes_as_events(tenant, provider):
    admin = tenant.admin["test"]
    plan(admin, "platform", price="20.00", granted_to=[provider.id])
    plan(provider, "mine")
    plan(provider, "bigger", price="62.00")
    assert provider.patch("/v1/plans/mine", {"name": "Mine, renamed"}).status_code == 200
    assert provider.post("/v1/plans/mine/versions", {"effective_from": "2026-11-25",
                                                     "prices": {"Hosting": "40.00"}}).status_code == 201
    sub = subscribe(provider, plan="mine")
    assert provider.patch(f"/v1/subscriptions/{sub['id']}", {"plan": "bigger"}).status_code == 200
    assert provider.delete(f"/v1/subscriptions/{sub['id']}").status_code == 200

    def seen(caller, **query):
        events = caller.get("/v1/events", query_string={"limit": 100, **query}).json["data"]
        return [(e["type"], e["data"]["object"].get("code") or e["data"]["object"].get("id")) for e in events]

    mine = seen(provider)
    assert sorted(t for t, _ in mine) == sorted(["plan.created", "plan.created", "plan.updated", "plan.updated",
                                                 "subscription.created", "subscription.updated",
                                                 "subscription.canceled"])
    assert ("subscription.canceled", sub["id"]) in mine
    assert ("plan.created", "platform") not in mine  # the platform's plan is the platform's event
    assert ("plan.created", "platform") in seen(admin)
    assert sorted(t for t, _ in seen(admin, type="subscription.*")) == [
        "subscription.canceled", "subscription.created", "subscription.updated"]
    canceled = provider.get("/v1/events", query_string={"type": "subscription.canceled"}).json["data"][0]
    assert canceled["data"]["object"]["status"] == "canceled" and canceled["provider"] == provider.id


def test_webhook_endpoints_receive_the_plan_and_subscription_events_they_name(app, tenant, provider):
    import json

    from tests.support.webhooks import run_workers
    from tests.webhook_receiver import Receiver

    types = ["plan.created", "subscription.created", "subscription.canceled"]
    receiver = Receiver()
    try:
        response = provider.post("/v1/webhook_endpoints", {"url": receiver.url(), "enabled_events": types})
        assert response.status_code == 201, response.json
        assert sorted(response.json["enabled_events"]) == sorted(types)
        plan(provider, "mine")
        sub = subscribe(provider, plan="mine")
        assert provider.patch(f"/v1/subscriptions/{sub['id']}", {"quantity": 2}).status_code == 200  # not named
        assert provider.delete(f"/v1/subscriptions/{sub['id']}").status_code == 200
        run_workers(app, tenant)
        received = sorted((body["type"], body["data"]["object"].get("code") or body["data"]["object"]["id"])
                          for body in (json.loads(r.body) for r in receiver.received))
        assert received == [("plan.created", "mine"), ("subscription.canceled", sub["id"]),
                            ("subscription.created", sub["id"])]
    finally:
        receiver.close()
