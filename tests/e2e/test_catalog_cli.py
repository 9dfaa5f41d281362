"""`aggregator plans|subscriptions|environments …`: a parent plan granted to a provider, the
provider's plan on it with its profit, subscriptions changed, ended and rated at the close, as the
API does them (every command's help: test_cli.py); refusals as one line with exit status 1,
malformed options as usage errors (2)."""
from __future__ import annotations

import pytest

from tests.support.cli import as_json

# Sydney, anchor 25: the test clock starts 2026-11-10T12:00Z (23:00 local), in the period
# 2026-10-25 .. 2026-11-24 (31 days) that ends 2026-11-24T13:00Z.
END = "2026-11-24T13:00:00+00:00"


@pytest.fixture
def reseller(cli, cli_tenant):
    """A provider, a customer, a parent plan granted to the provider and its plan on it."""
    scope = cli_tenant["scope"]
    provider = as_json(cli("providers", "create", *scope, "--name", "Hosting Co", "--json"))
    cli("customers", "create", *scope, "--external-id", "cust-1")
    cli("plans", "create", *scope, "--code", "platform-hosting", "--name", "Platform hosting", "--currency", "AUD",
        "--fee", "Hosting=100.00", "--fee", "Support=20.00:in_arrears", "--grant", provider["id"])
    as_provider = [*scope, "--provider", provider["id"]]
    cli("plans", "create", *as_provider, "--code", "prod-110", "--name", "Production 110", "--currency", "AUD",
        "--parent", "platform-hosting", "--fee", "Hosting=150.00", "--fee", "Support=30.00")
    return {"id": provider["id"], "scope": scope, "as": as_provider}


def test_a_providers_plan_on_a_parent_shows_price_parent_price_and_profit_per_fee(cli, reseller):
    plan = as_json(cli("plans", "show", *reseller["as"], "prod-110", "--json"))
    assert (plan["object"], plan["owner"], plan["parent_plan"]) == ("plan", reseller["id"], "platform-hosting")
    assert [(f["name"], f["timing"], f["price"], f["parent_price"], f["profit"]) for f in plan["fees"]] == [
        ("Hosting", "in_advance", "150.00", "100.00", "50.00"),
        ("Support", "in_arrears", "30.00", "20.00", "10.00")]  # the parent fee's timing, unless given
    table = cli("plans", "list", *reseller["scope"]).stdout
    assert "profit" in table and "parent_price" in table
    assert "prod-110" in table and "platform-hosting" in table and "50.00" in table and "10.00" in table
    seen = as_json(cli("plans", "list", *reseller["as"], "--json"))
    assert sorted(p["code"] for p in seen["data"]) == ["platform-hosting", "prod-110"] and not seen["has_more"]
    parents = as_json(cli("plans", "list", *reseller["scope"], "--owner", "platform", "--json"))["data"]
    assert [(p["code"], p["granted_to"]) for p in parents] == [("platform-hosting", [reseller["id"]])]
    shown = cli("plans", "show", *reseller["scope"], "platform-hosting").stdout
    assert "Plan platform-hosting" in shown and "Prices" in shown and "(from the start)" in shown


def test_a_new_price_applies_from_a_period_on_never_to_one_that_ended(cli, reseller):
    plan = as_json(cli("plans", "version", *reseller["as"], "prod-110", "--price", "Hosting=160.00",
                       "--from", "2026-11-25", "--json"))
    hosting = plan["fees"][0]
    assert hosting["price"] == "150.00"  # the open period keeps its price
    assert [(p["effective_from"], p["amount"], p["recorded_at"]) for p in hosting["prices"]] == [
        (None, "150.00", "2026-11-10T12:00:00+00:00"), ("2026-11-25", "160.00", "2026-11-10T12:00:00+00:00")]
    refused = cli("plans", "version", *reseller["as"], "prod-110", "--price", "Hosting=1.00", "--from",
                  "2026-09-25", exit_code=1)
    assert refused.stderr.startswith("Error: The period 2026-09-25 has ended") and refused.stderr.count("\n") == 1
    unknown = cli("plans", "version", *reseller["as"], "prod-110", "--price", "Hosting=1.00", "--price",
                  "Nope=2.00", exit_code=1)
    assert "unknown: ['Nope']" in unknown.stderr
    cli("plans", "version", *reseller["as"], "prod-110", "--price", "Hosting", exit_code=2)  # not FEE=PRICE


def test_grant_and_revoke_a_parent_plan(cli, reseller):
    scope = reseller["scope"]
    other = as_json(cli("providers", "create", *scope, "--name", "Other", "--json"))["id"]
    assert "every provider" in cli("plans", "grant", *scope, "platform-hosting", "*").stdout
    granted = as_json(cli("plans", "grant", *scope, "platform-hosting", other, "--json"))["granted_to"]
    assert granted == sorted(["*", reseller["id"], other])
    left = as_json(cli("plans", "revoke", *scope, "platform-hosting", "*", other, "--json"))["granted_to"]
    assert left == [reseller["id"]]
    refused = cli("plans", "grant", *scope, "platform-hosting", "prov_nope", exit_code=1)
    assert "prov_nope" in refused.stderr and refused.stderr.count("\n") == 1
    refused = cli("plans", "grant", *scope, "prod-110", other, exit_code=1)  # a provider's plan
    assert "only a parent plan is granted" in refused.stderr


def test_a_subscription_backdated_changed_and_canceled_is_billed_for_its_days(cli, reseller):
    scope, as_provider = reseller["scope"], reseller["as"]
    cli("plans", "create", *as_provider, "--code", "prod-220", "--name", "Production 220", "--currency", "AUD",
        "--parent", "platform-hosting", "--fee", "Hosting=250.00", "--fee", "Support=30.00")
    cli("periods", "advance-clock", *scope, "--to", "2026-11-15T01:00:00+00:00")
    created = as_json(cli("subscriptions", "create", *as_provider, "--customer", "cust-1", "--plan", "prod-110",
                          "--external-billing-id", "inst-1", "--starts-at", "2026-11-12T01:00:00+00:00",
                          "--metadata", "region=syd", "--json"))
    assert (created["object"], created["status"], created["environment"], created["metadata"]) == (
        "subscription", "active", "production", {"region": "syd"})
    changed = as_json(cli("subscriptions", "change", *as_provider, "inst-1", "--plan", "prod-220", "--at",
                          "2026-11-16T01:00:00+00:00", "--json"))
    assert [(p["plan"], p["ends_at"]) for p in changed["phases"]] == [
        ("prod-110", "2026-11-16T01:00:00+00:00"), ("prod-220", None)]
    ended = as_json(cli("subscriptions", "cancel", *as_provider, created["id"], "--at", "2026-11-20T01:00:00+00:00",
                        "--json"))
    assert ended["ends_at"] == "2026-11-20T01:00:00+00:00"
    refused = cli("subscriptions", "change", *as_provider, created["id"], "--quantity", "2", exit_code=1)
    assert "can no longer change" in refused.stderr and refused.stderr.count("\n") == 1

    assert [s["id"] for s in as_json(cli("subscriptions", "list", *scope, "--customer", "cust-1", "--json"))["data"]] \
        == [created["id"]]
    listed = cli("subscriptions", "list", *as_provider, "--plan", "prod-220").stdout
    assert created["id"] in listed and "inst-1" in listed
    shown = cli("subscriptions", "show", *scope, created["id"]).stdout
    assert "Phases" in shown and "prod-110" in shown and "prod-220" in shown

    cli("periods", "advance-clock", *scope, "--to", END)
    [statement] = as_json(cli("subscriptions", "statements", *as_provider, "inst-1", "--json"))["data"]
    assert statement["period"] == "2026-10-25"
    # Sydney days: prod-110 on 11-12 .. 11-15 (4 days), prod-220 on 11-16 .. 11-20 (5 days, the end's day billed)
    assert sorted((c["description"], c["amount"], c["platform_fee"], c["profit"]) for c in statement["charges"]) == [
        ("Hosting — Production 110, 4 of 31 days", "19.35", "12.90", "6.45"),
        ("Hosting — Production 220, 5 of 31 days", "40.32", "16.13", "24.19"),
        ("Support — Production 110, 4 of 31 days", "3.87", "2.58", "1.29"),
        ("Support — Production 220, 5 of 31 days", "4.84", "3.23", "1.61")]
    human = cli("subscriptions", "statements", *scope, created["id"]).stdout
    assert "Production 220, 5 of 31 days" in human and "5 of 31" in human and "2026-10-25: 68.38 AUD" in human


def test_the_upcoming_invoice_shows_the_fees_rated_to_now(cli, reseller):
    other = as_json(cli("providers", "create", *reseller["scope"], "--name", "Other", "--json"))["id"]
    cli("plans", "create", *reseller["scope"], "--provider", other, "--code", "solo", "--name", "Solo",
        "--currency", "AUD", "--fee", "Seat=9.00:in_arrears")
    cli("subscriptions", "create", *reseller["as"], "--customer", "cust-1", "--plan", "prod-110")
    cli("subscriptions", "create", *reseller["scope"], "--provider", other, "--customer", "cust-1", "--plan", "solo")
    upcoming = as_json(cli("invoices", "upcoming", *reseller["scope"], "cust-1", "--json"))
    assert (upcoming["object"], upcoming["period"]["start"]) == ("upcoming_invoice", "2026-10-25")
    assert sorted((line["source"], line["description"]) for line in upcoming["lines"]) == [
        ("subscription", "Hosting — Production 110"), ("subscription", "Hosting — Production 110, 15 of 31 days"),
        ("subscription", "Seat — Solo, 15 of 31 days"), ("subscription", "Support — Production 110, 15 of 31 days")]
    mine = as_json(cli("invoices", "upcoming", *reseller["as"], "cust-1", "--json"))
    assert len(mine["lines"]) == 3  # a provider sees its own lines only
    human = cli("invoices", "upcoming", *reseller["scope"], "cust-1").stdout
    assert "Upcoming invoice of cust-1" in human and "Seat — Solo, 15 of 31 days" in human


def test_entitlements_say_which_plans_a_customer_may_start(cli, reseller):
    cli("plans", "update", *reseller["as"], "prod-110", "--max-per-customer", "1")
    cli("subscriptions", "create", *reseller["as"], "--customer", "cust-1", "--plan", "prod-110")
    [entitlement] = as_json(cli("subscriptions", "entitlements", *reseller["as"], "cust-1", "--json"))["data"]
    assert entitlement["plan"] == "prod-110" and entitlement["allowed"] is False
    assert "max_subscriptions_per_customer" in cli("subscriptions", "entitlements", *reseller["as"], "cust-1").stdout
    refused = cli("subscriptions", "create", *reseller["as"], "--customer", "cust-1", "--plan", "prod-110",
                  exit_code=1)
    assert "allows 1 subscription(s) per customer" in refused.stderr


def test_environments_are_listed_added_and_removed_unless_used(cli, reseller):
    scope = reseller["scope"]
    assert as_json(cli("environments", "list", *scope, "--json")) == {"object": "list",
                                                                       "data": ["production", "staging"]}
    added = as_json(cli("environments", "add", *scope, "qa", "--json"))["data"]
    assert sorted(added) == ["production", "qa", "staging"]
    cli("plans", "create", *reseller["as"], "--code", "qa-plan", "--name", "QA", "--currency", "AUD",
        "--fee", "Seat=5.00", "--environment", "qa")
    refused = cli("environments", "remove", *scope, "qa", exit_code=1)
    assert "is used by a plan" in refused.stderr
    cli("environments", "add", *scope, "sandbox")
    assert "sandbox" not in cli("environments", "remove", *scope, "sandbox").stdout
    cli("environments", "add", *scope, "Not Valid", exit_code=2)
    assert "already exists" in cli("environments", "add", *scope, "qa", exit_code=1).stderr


@pytest.mark.parametrize("args, words", [
    (["plans", "show", "nope"], "No plan 'nope'"),
    (["plans", "create", "--provider", "prov_nope", "--code", "x", "--name", "X", "--currency", "AUD", "--fee",
      "A=1.00"], "No such provider"),
    (["plans", "create", "--code", "platform-hosting", "--name", "X", "--currency", "AUD", "--fee", "A=1.00"],
     "already exists"),
    (["plans", "create", "--provider", "{provider}", "--code", "x", "--name", "X", "--currency", "AUD", "--parent",
      "nope", "--fee", "Hosting=1.00"], "No parent plan 'nope' granted to you"),
    (["plans", "create", "--provider", "{provider}", "--code", "x", "--name", "X", "--currency", "AUD", "--parent",
      "platform-hosting", "--fee", "Storage=1.00"], "names the parent fee it resells"),
    (["subscriptions", "create", "--provider", "{provider}", "--customer", "nobody", "--plan", "prod-110"],
     "nobody"),
    (["subscriptions", "create", "--provider", "{provider}", "--customer", "cust-1", "--plan", "platform-hosting"],
     "is a parent plan"),
    (["subscriptions", "create", "--provider", "{provider}", "--customer", "cust-1", "--plan", "prod-110",
      "--environment", "qa"], "Unknown environment 'qa'"),
    (["subscriptions", "create", "--provider", "{provider}", "--customer", "cust-1", "--plan", "prod-110",
      "--starts-at", "2026-11-01T00:00:00Z"], "cannot start before it existed"),
    (["subscriptions", "show", "sub_nope"], "No subscription 'sub_nope'"),
    (["subscriptions", "cancel", "--provider", "{provider}", "sub_nope"], "No subscription 'sub_nope'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else v)
def test_refusals_are_one_line_and_exit_status_1(cli, reseller, args, words):
    args = [a.replace("{provider}", reseller["id"]) for a in args]
    result = cli(*args[:2], *reseller["scope"], *args[2:], exit_code=1)
    assert result.stderr.startswith("Error: ") and words in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_second_subscription_with_the_same_external_billing_id_is_refused(cli, reseller):
    args = ["subscriptions", "create", *reseller["as"], "--customer", "cust-1", "--plan", "prod-110",
            "--external-billing-id", "inst-1"]
    cli(*args)
    assert "already exists for this provider" in cli(*args, exit_code=1).stderr


@pytest.mark.parametrize("args, option", [
    (["plans", "create", "--code", "x", "--name", "X", "--currency", "AUD", "--fee", "Hosting=1.001"], "--fee"),
    (["plans", "create", "--code", "x", "--name", "X", "--currency", "AUD", "--fee", "Hosting"], "--fee"),
    (["plans", "create", "--code", "x", "--name", "X", "--currency", "AUD", "--fee", "Hosting=1:monthly"], "--fee"),
    (["plans", "create", "--code", "x y", "--name", "X", "--currency", "AUD", "--fee", "A=1"], "--code"),
    (["plans", "create", "--code", "x", "--name", "X", "--currency", "ZZZ", "--fee", "A=1"], "--currency"),
    (["plans", "version", "prod-110", "--price", "Hosting=1", "--from", "25/11/2026"], "--from"),
    (["subscriptions", "create", "--provider", "p", "--customer", "c", "--plan", "p", "--quantity", "0"],
     "--quantity"),
    (["subscriptions", "create", "--provider", "p", "--customer", "c", "--plan", "p", "--starts-at", "2026-11-01"],
     "--starts-at"),
    (["subscriptions", "change", "--provider", "p", "sub_x"], None),  # nothing to change
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_malformed_options_are_usage_errors_exit_status_2(cli, reseller, args, option):
    result = cli(*args[:2], *reseller["scope"], *args[2:], exit_code=2)
    assert "Error:" in result.stderr and (option is None or f"'{option}'" in result.stderr), result.stderr
