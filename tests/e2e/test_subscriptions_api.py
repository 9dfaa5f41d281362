"""Plans and subscriptions through the API, as a platform and a reseller use them: a parent
plan granted to a provider, the provider's plan on it with its profit, subscriptions rated into
bills at the close and invoiced on the customer's one consolidated invoice."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance, send

# Sydney, anchor 25: the test clock starts 2026-11-10T12:00Z, in the period 2026-10-25 .. 2026-11-24
# (31 days, ending 2026-11-24T13:00Z); the next runs 2026-11-25 .. 2026-12-24 (30 days).
NEXT_END = "2026-12-25T00:00:00+00:00"


@pytest.fixture
def reseller(tenant):
    tenant.customer("cust-1")
    provider = tenant.provider(name="Hosting Co")
    parent = tenant.admin["test"].post("/v1/plans", {
        "code": "platform-hosting", "name": "Platform hosting", "currency": "AUD", "granted_to": [provider.id],
        "fees": [{"name": "Hosting", "price": "100.00", "timing": "in_advance"},
                 {"name": "Support", "price": "20.00", "timing": "in_arrears"}]})
    assert parent.status_code == 201, parent.json
    plan = provider.post("/v1/plans", {
        "code": "prod-110", "name": "Production 110", "currency": "AUD", "parent_plan": "platform-hosting",
        "fees": [{"name": "Hosting", "price": "150.00", "timing": "in_advance", "parent_fee": "Hosting"},
                 {"name": "Support", "price": "30.00", "timing": "in_arrears", "parent_fee": "Support"}]})
    assert plan.status_code == 201, plan.json
    return provider


def test_a_provider_plan_on_a_parent_shows_its_profit_per_fee(reseller):
    plan = reseller.get("/v1/plans/prod-110").json
    assert plan["parent_plan"] == "platform-hosting" and plan["owner"] == reseller.id
    assert [(f["name"], f["price"], f["parent_price"], f["profit"]) for f in plan["fees"]] == [
        ("Hosting", "150.00", "100.00", "50.00"), ("Support", "30.00", "20.00", "10.00")]
    # the parent plan is visible to the provider, read-only
    assert reseller.get("/v1/plans/platform-hosting").status_code == 200
    assert reseller.patch("/v1/plans/platform-hosting", {"name": "Mine"}).status_code == 404


def test_a_subscription_is_rated_at_the_close_and_invoiced(tenant, reseller, clock):
    created = reseller.post("/v1/subscriptions", {"customer": "cust-1", "plan": "prod-110",
                                                  "external_billing_id": "inst-1"})
    assert created.status_code == 201, created.json
    sub = created.json
    assert sub["status"] == "active" and sub["environment"] == "production"
    send(reseller, "b-1", amount="5.00")  # a bill sent by the provider, on the same invoice
    advance(tenant)
    invoices = tenant.admin["test"].get("/v1/invoices").json["data"]
    assert len(invoices) == 1
    lines = tenant.admin["test"].get(f"/v1/invoices/{invoices[0]['id']}").json["lines"]
    described = sorted(line["description"] for line in lines)
    # started 2026-11-10 (Sydney): 15 of the period's 31 days; Hosting in advance also bills the next period
    assert described == sorted([
        "Pro plan, October",
        "Hosting — Production 110, 15 of 31 days",  # settles the current period (nothing billed before)
        "Hosting — Production 110",  # the next period, in advance
        "Support — Production 110, 15 of 31 days",
    ])
    statements = reseller.get(f"/v1/subscriptions/{sub['id']}/statements").json["data"]
    assert statements[0]["period"] == "2026-10-25"
    amounts = {(c["description"], c["amount"], c["platform_fee"], c["profit"]) for c in statements[0]["charges"]}
    assert amounts == {("Hosting — Production 110, 15 of 31 days", "72.58", "48.39", "24.19"),
                       ("Hosting — Production 110", "150.00", "100.00", "50.00"),
                       ("Support — Production 110, 15 of 31 days", "14.52", "9.68", "4.84")}
    assert reseller.get("/v1/subscriptions/inst-1").json["id"] == sub["id"]
    bills = {b["description"]: b for b in reseller.get("/v1/bills").json["data"]}
    rated = bills["Hosting — Production 110"]
    assert (rated["source"], rated["platform_fee"], rated["service_period"]) == (
        "subscription", "100.00", {"start": "2026-11-25", "end": "2026-12-24"})
    assert (bills["Pro plan, October"]["source"], bills["Pro plan, October"]["platform_fee"]) == ("api", None)


def test_a_cancellation_credits_the_unused_days_billed_in_advance(tenant, reseller):
    sub = reseller.post("/v1/subscriptions", {"customer": "cust-1", "plan": "prod-110"}).json
    advance(tenant)  # the first close bills the next period in advance
    ended = reseller.delete(f"/v1/subscriptions/{sub['id']}", query_string={"at": "2026-12-04T13:00:00+00:00"})
    assert ended.status_code == 200, ended.json
    advance(tenant, NEXT_END)
    statement = reseller.get(f"/v1/subscriptions/{sub['id']}/statements").json["data"][0]
    assert statement["period"] == "2026-11-25"
    by_kind = {c["kind"]: c for c in statement["charges"] if c["description"].startswith("Hosting")}
    # used 2026-11-25 .. 2026-12-05 (Sydney): ended 2026-12-05 00:00 local, so 10 of 30 days
    assert by_kind["adjustment"]["amount"] == "-100.00"
    assert by_kind["adjustment"]["description"] == \
        "Hosting — Production 110, credit for unused days (10 of 30 days used)"


@pytest.mark.parametrize("body, field, status", [
    ({"customer": "nobody", "plan": "prod-110"}, "customer", 404),
    ({"customer": "cust-1", "plan": "nope"}, "plan", 404),
    ({"customer": "cust-1", "plan": "platform-hosting"}, "plan", 422),
    ({"customer": "cust-1", "plan": "prod-110", "environment": "qa"}, "environment", 422),
    ({"customer": "cust-1", "plan": "prod-110", "starts_at": "2026-10-01T00:00:00+00:00"}, "starts_at", 422),
])
def test_bad_subscriptions_are_refused_naming_the_field(reseller, body, field, status):
    response = reseller.post("/v1/subscriptions", body)
    assert response.status_code == status, response.json
    assert field in response.json["error"]["fields"]
    assert reseller.get("/v1/subscriptions").json["data"] == []


def test_the_upcoming_invoice_shows_pending_bills_and_fees_rated_to_now_without_storing(tenant, reseller):
    reseller.post("/v1/subscriptions", {"customer": "cust-1", "plan": "prod-110"})
    send(reseller, "b-1", amount="5.00")
    other = tenant.provider(name="Other")
    send(other, "o-1", amount="7.00")
    upcoming = tenant.admin["test"].get("/v1/customers/cust-1/upcoming_invoice")
    assert upcoming.status_code == 200, upcoming.json
    body = upcoming.json
    assert body["period"] == {"start": "2026-10-25", "end": "2026-11-24"}
    assert sorted((line["source"], line["amount"]) for line in body["lines"]) == [
        ("bill", "5.00"), ("bill", "7.00"), ("subscription", "14.52"), ("subscription", "150.00"),
        ("subscription", "72.58")]
    assert body["subtotal"] == "249.10"
    # a provider sees its own lines only; nothing was stored
    mine = reseller.get("/v1/customers/cust-1/upcoming_invoice").json
    assert "7.00" not in [line["amount"] for line in mine["lines"]] and len(mine["lines"]) == 4
    assert len(tenant.admin["test"].get("/v1/bills").json["data"]) == 2


def test_the_payout_carries_the_providers_profit_and_the_report_its_plan_revenue(tenant, reseller):
    from tests.support.payouts import AFTER_PAYOUT_DAY

    admin = tenant.admin["test"]
    reseller.post("/v1/subscriptions", {"customer": "cust-1", "plan": "prod-110"})
    send(reseller, "b-1", amount="10.00")  # a revenue-share bill: the provider's 30 % rate applies
    advance(tenant)
    invoice = admin.get("/v1/invoices").json["data"][0]
    assert invoice["total"] == "247.10"  # 72.58 + 150.00 + 14.52 + 10.00
    paid = admin.post(f"/v1/invoices/{invoice['id']}/payments", {
        "amount": "247.10", "method": "bank_transfer", "reference": "bank-1", "received_on": "2026-11-25"})
    assert paid.status_code == 201, paid.json
    advance(tenant, AFTER_PAYOUT_DAY)
    payout = admin.get("/v1/payouts").json["data"][0]
    # fees: the parent plan's 48.39 + 100.00 + 9.68, and 3.00 of the bill: 161.07; profit 86.03
    assert (payout["gross"], payout["fee"], payout["net"]) == ("247.10", "161.07", "86.03")
    row = admin.get("/v1/reports/payouts", query_string={"period": "2026-10-25"}).json["rows"][0]
    assert (row["plan_gross"], row["plan_fee"], row["plan_profit"]) == ("237.10", "158.07", "79.03")
