"""Usage priced as PLATFORMA's four examples and Omnistrate's per-dimension hourly maxima, rated at
the close into invoice lines (text and amount), in an EUR tenant on Paris time; and usage resold
on a parent plan: the platform's share of a usage bill is the parent's price of the same quantity,
the provider's profit the difference, paid out accordingly."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.support.invoicing import advance
from tests.support.payouts import AFTER_PAYOUT_DAY

# Paris, anchor 25: the period 2026-11-25 runs 2026-11-24T23:00Z .. 2026-12-24T23:00Z. The
# subscriptions start with it, so the plan fees are whole periods.
NEXT, NEXT_START = "2026-11-25", "2026-11-24T23:00:00+00:00"
AFTER_NEXT = "2026-12-25T00:00:00+00:00"


def meter(admin, code, aggregation, **fields):
    response = admin.post("/v1/meters", {"code": code, "name": code.title(), "aggregation": aggregation, **fields})
    assert response.status_code == 201, response.json


def created(response):
    assert response.status_code in (200, 201), response.json
    return response.json


def lines_of(tenant, customer: str, period: str = NEXT) -> list[tuple[str, str]]:
    admin = tenant.admin["test"]
    (invoice,) = [i for i in admin.get("/v1/invoices?limit=100").json["data"]
                  if i["customer_external_id"] == customer and i["period"]["start"] == period]
    return sorted((line["description"], line["amount"]) for line in admin.get(f"/v1/invoices/{invoice['id']}")
                  .json["lines"])


@pytest.fixture
def paris(make_tenant):
    tenant = make_tenant(default_currency="EUR", timezone="Europe/Paris")
    admin = tenant.admin["test"]
    meter(admin, "storage", "sum", unit="GB", decimals=2)
    meter(admin, "vms", "max", unit="VM")
    meter(admin, "bandwidth", "sum", unit="GB", decimals=2)
    meter(admin, "instance", "hourly_max", unit="unit-hours", dimensions=["resource"])
    for customer in ("platforma", "omnistrate"):
        tenant.customer(customer, currency="EUR")
    return tenant


def test_platformas_four_examples_are_invoice_lines(paris):
    provider = paris.provider(name="PLATFORMA")
    created(provider.post("/v1/plans", {"code": "pro", "name": "Pro", "currency": "EUR", "fees": [
        {"name": "Platform", "price": "79.99", "timing": "in_arrears"},  # flat EUR 79.99
        {"name": "Object storage", "usage": [  # EUR 0.05 per GB
            {"meter": "storage", "name": "Storage", "model": "per_unit", "unit_amount": "0.05"}]},
        {"name": "Compute", "usage": [  # 1-10 VMs at 79.99, 11+ at 69.99, every VM at the tier of them all
            {"meter": "vms", "name": "Virtual machines", "model": "volume", "tiers": [
                {"up_to": "10", "unit_amount": "79.99"}, {"up_to": None, "unit_amount": "69.99"}]}]},
        {"name": "Network", "price": "49.99", "timing": "in_arrears", "usage": [  # 49.99 + 0.05/GB over 100 GB
            {"meter": "bandwidth", "name": "Bandwidth", "model": "per_unit", "unit_amount": "0.05",
             "included_units": "100", "thresholds": [80, 90, 100]}]}]}))
    advance(paris, NEXT_START)
    sub = created(provider.post("/v1/subscriptions", {"customer": "platforma", "plan": "pro"}))
    advance(paris, "2026-11-30T00:00:00+00:00")
    events = [("storage", "200.50", 1), ("storage", "49.50", 2), ("vms", 8, 1), ("vms", 12, 2), ("vms", 11, 3),
              ("bandwidth", "1000", 1), ("bandwidth", "340", 2)]
    response = provider.post("/v1/usage_events/batch", {"events": [
        {"id": f"e{n}", "subscription": sub["id"], "meter": code, "value": value,
         "timestamp": f"2026-11-2{5 + day}T10:00:00+00:00"} for n, (code, value, day) in enumerate(events)]})
    assert [r["status"] for r in response.json["data"]] == [201] * len(events), response.json
    advance(paris, AFTER_NEXT)
    assert lines_of(paris, "platforma") == sorted([
        ("Platform — Pro", "79.99"),
        ("Storage — 250 GB × €0.05 = €12.50", "12.50"),
        ("Virtual machines — 12 VM × €69.99 = €839.88", "839.88"),
        ("Network — Pro", "49.99"),
        ("Bandwidth — 1,340 GB: 100 GB included, 1,240 × €0.05 = €62.00", "62.00")])


def test_ten_vms_are_priced_at_the_first_tier(paris):
    provider = paris.provider(name="PLATFORMA")
    created(provider.post("/v1/plans", {"code": "vm", "name": "VM", "currency": "EUR", "fees": [
        {"name": "Compute", "usage": [{"meter": "vms", "name": "Virtual machines", "model": "volume", "tiers": [
            {"up_to": "10", "unit_amount": "79.99"}, {"up_to": None, "unit_amount": "69.99"}]}]}]}))
    advance(paris, NEXT_START)
    sub = created(provider.post("/v1/subscriptions", {"customer": "platforma", "plan": "vm"}))
    advance(paris, "2026-11-30T00:00:00+00:00")
    created(provider.post("/v1/usage_events", {"id": "v", "subscription": sub["id"], "meter": "vms", "value": 10,
                                               "timestamp": "2026-11-26T00:00:00+00:00"}))
    advance(paris, AFTER_NEXT)
    assert lines_of(paris, "platforma") == [("Virtual machines — 10 VM × €79.99 = €799.90", "799.90")]


def test_omnistrates_per_dimension_hourly_maxima_are_invoice_lines(paris):
    provider = paris.provider(name="Omnistrate")
    plan = created(provider.post("/v1/plans", {"code": "vm", "name": "Instance", "currency": "EUR", "fees": [
        {"name": "Instance", "usage": [
            {"meter": "instance", "name": "CPU", "dimension": {"resource": "cpu"}, "unit": "core-hours",
             "model": "per_unit", "unit_amount": "0.04"},
            {"meter": "instance", "name": "Memory", "dimension": {"resource": "memory"}, "unit": "GB-hours",
             "model": "per_unit", "unit_amount": "0.005"},
            {"meter": "instance", "name": "Storage", "dimension": {"resource": "storage"}, "model": "per_unit",
             "unit_amount": "0.0001"}]}]}))
    assert [c["unit"] for c in plan["fees"][0]["usage"]] == ["core-hours", "GB-hours", "unit-hours"]
    advance(paris, NEXT_START)
    sub = created(provider.post("/v1/subscriptions", {"customer": "omnistrate", "plan": "vm",
                                                      "external_billing_id": "inst-1"}))
    advance(paris, "2026-11-30T00:00:00+00:00")
    # samples every 15 minutes for 4 hours from 2026-11-26T08:00Z: per hour the maximum of its four
    cores = [2, 4, 4, 2, 8, 8, 6, 2, 1, 1, 1, 1, 4, 2, 2, 2]
    memory = [16, 16, 16, 16, 16, 32, 16, 16, 16, 16, 16, 16, 8, 8, 8, 8]
    start = datetime(2026, 11, 26, 8, tzinfo=timezone.utc)
    events = []
    for n in range(16):
        at = (start + timedelta(minutes=15 * n)).isoformat()
        for resource, value in (("cpu", cores[n]), ("memory", memory[n]), ("storage", 500)):
            events.append({"id": f"{resource}-{n}", "subscription": "inst-1", "meter": "instance", "value": value,
                           "timestamp": at, "properties": {"resource": resource}})
    response = provider.post("/v1/usage_events/batch", {"events": events})
    assert {r["status"] for r in response.json["data"]} == {201}, response.json
    usage = {c["name"]: (c["quantity"], c["unit"])
             for c in provider.get(f"/v1/subscriptions/{sub['id']}/usage").json["data"]}
    assert usage == {"CPU": ("17", "core-hours"), "Memory": ("72", "GB-hours"),  # 4+8+1+4, 16+32+16+8
                     "Storage": ("2000", "unit-hours")}  # 4 × 500, in the meter's unit
    advance(paris, AFTER_NEXT)
    assert lines_of(paris, "omnistrate") == sorted([
        ("CPU — 17 core-hours × €0.04 = €0.68", "0.68"),
        ("Memory — 72 GB-hours × €0.005 = €0.36", "0.36"),
        ("Storage — 2,000 unit-hours × €0.0001 = €0.20", "0.20")])


# --- parent plans price usage ------------------------------------------------------------------------

def test_a_parent_plans_usage_price_is_the_platforms_share_of_a_usage_bill(tenant):
    admin = tenant.admin["test"]
    meter(admin, "storage", "sum", unit="GB", decimals=2)
    meter(admin, "bandwidth", "sum", unit="GB")
    tenant.customer("cust-1")
    provider = tenant.provider(name="Reseller", rate="0.30")
    created(admin.post("/v1/plans", {"code": "platform", "name": "Platform", "currency": "AUD", "granted_to": [
        provider.id], "fees": [{"name": "Storage", "timing": "in_arrears", "usage": [
            {"meter": "storage", "model": "per_unit", "unit_amount": "0.03", "included_units": "10"}]}]}))
    no_price = provider.post("/v1/plans", {"code": "bad", "name": "Bad", "currency": "AUD", "parent_plan": "platform",
                                           "fees": [{"name": "Storage", "parent_fee": "Storage", "usage": [
                                               {"meter": "bandwidth", "model": "per_unit", "unit_amount": "0.05"}]}]})
    assert no_price.status_code == 409, no_price.json
    assert no_price.json["error"]["code"] == "no_parent_price"
    assert "fees.0.usage.0.meter" in no_price.json["error"]["fields"], no_price.json
    assert provider.get("/v1/plans/bad").status_code == 404
    created(provider.post("/v1/plans", {"code": "resold", "name": "Resold", "currency": "AUD",
                                        "parent_plan": "platform", "fees": [
        {"name": "Storage", "parent_fee": "Storage", "timing": "in_arrears", "usage": [
            {"meter": "storage", "model": "graduated", "tiers": [{"up_to": "100", "unit_amount": "0.10"},
                                                                 {"up_to": None, "unit_amount": "0.05"}]}]}]}))
    sub = created(provider.post("/v1/subscriptions", {"customer": "cust-1", "plan": "resold"}))
    created(provider.post("/v1/usage_events", {"id": "s1", "subscription": sub["id"], "meter": "storage",
                                               "value": "250", "timestamp": "2026-11-10T12:00:00+00:00"}))
    advance(tenant)
    # the customer: 100 × 0.10 + 150 × 0.05 = 17.50; the platform: (250 - 10) × 0.03 = 7.20
    (bill,) = [b for b in provider.get("/v1/bills").json["data"] if b["description"].startswith("Storage")]
    assert (bill["description"], bill["amount"], bill["platform_fee"]) == (
        "Storage — 250 GB: 100 × A$0.10, 150 × A$0.05 = A$17.50", "17.50", "7.20")
    (invoice,) = admin.get("/v1/invoices").json["data"]
    assert invoice["total"] == "17.50"
    paid = admin.post(f"/v1/invoices/{invoice['id']}/payments", {
        "amount": invoice["total"], "method": "bank_transfer", "reference": "bank-1", "received_on": "2026-11-26"})
    assert paid.status_code == 201, paid.json
    advance(tenant, AFTER_PAYOUT_DAY)
    (payout,) = admin.get("/v1/payouts").json["data"]
    assert (payout["gross"], payout["fee"], payout["net"]) == ("17.50", "7.20", "10.30")
