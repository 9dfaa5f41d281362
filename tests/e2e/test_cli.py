"""The command line (`aggregator …`, the same groups as `flask --app wsgi …`): every group
documented, the happy paths, and errors as one line with an exit status (1: a domain error such
as an unknown tenant; 2: a usage error)."""
from __future__ import annotations

import json
import re

import pytest

from tests.support.callers import Caller
from tests.support.cli import as_json, commands_of
from tests.support.invoicing import bill_body

GROUPS = ["tenants", "tenants keys", "providers", "customers", "plans", "subscriptions", "environments", "meters",
          "usage", "periods", "invoices", "events", "payments", "refunds", "payouts", "ledger", "worker"]


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_and_command_has_help(app, cli, group):
    result = cli(*group.split(), "--help")
    commands = commands_of(app, group)
    assert commands and all(name in result.output for name in commands)
    for name, command in commands.items():
        assert command.help, f"{group} {name} has no help text"
        assert "Usage:" in cli(*group.split(), name, "--help").output


def test_the_aggregator_command_is_flask_with_every_group(app):
    from click.testing import CliRunner

    from aggregator.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = set(re.findall(r"^  (\S+)", result.output.split("Commands:")[1], re.MULTILINE))
    assert listed == set(app.cli.list_commands(None)) | {"db", "run", "shell", "routes"}


def test_tenants_create_with_every_setting_and_show_both_modes(cli, cli_tenant):
    created = as_json(cli("tenants", "create", "--name", "Shop", "--locale", "en_AU", "--tax-rate", "0.10",
                          "--address", "line1=1 George St", "--address", "city=Sydney", "--address", "country=AU",
                          "--email-from", "billing@shop.example", "--finance-email", "finance@shop.example",
                          "--json"))
    shown = as_json(cli("tenants", "show", created["id"], "--json"))
    for mode in ("live", "test"):
        settings = shown[mode]
        assert settings["livemode"] is (mode == "live")
        assert (settings["locale"], settings["default_tax_rate"], settings["email_from"], settings["finance_email"]) \
            == ("en_AU", "0.1", "billing@shop.example", "finance@shop.example")
        assert settings["address"] == {"line1": "1 George St", "city": "Sydney", "country": "AU"}
    human = cli("tenants", "show", created["id"]).stdout
    assert "live mode" in human and "test mode" in human and "en_AU" in human


def test_tenants_create_shows_the_keys_once_for_people(cli):
    output = cli("tenants", "create", "--name", "Shop").stdout
    assert "agg_admin_live_" in output and "agg_admin_test_" in output and "shown once" in output


def test_tenants_list_shows_new_tenants_first(cli, cli_tenant):
    listed = as_json(cli("tenants", "list", "--limit", "5", "--json"))
    assert listed["data"][0]["id"] == cli_tenant["id"]
    assert cli_tenant["id"] in cli("tenants", "list").stdout


def test_tenants_update_changes_one_mode_only(cli, cli_tenant):
    updated = as_json(cli("tenants", "update", cli_tenant["id"], "--mode", "test", "--tax-rate", "0.2",
                          "--invoice-prefix", "TST", "--json"))
    assert (updated["default_tax_rate"], updated["invoice_prefix"], updated["livemode"]) == ("0.2", "TST", False)
    live = as_json(cli("tenants", "show", cli_tenant["id"], "--json"))["live"]
    assert (live["default_tax_rate"], live["invoice_prefix"]) == ("0", "INV")
    refused = cli("tenants", "update", cli_tenant["id"], "--mode", "test", "--charge-day", "0", exit_code=2)
    assert "Invalid value for '--charge-day'" in refused.output
    cli("tenants", "update", cli_tenant["id"], "--mode", "test", exit_code=2)  # nothing to change


def test_keys_reissue_gives_a_working_key_and_can_revoke_the_others(cli, client, cli_tenant):
    old = cli_tenant["admin"]
    issued = as_json(cli("tenants", "keys", "reissue", cli_tenant["id"], "--mode", "test", "--json"))
    assert issued["secret"].startswith("agg_admin_test_") and issued["revoked"] == []
    assert old.get("/v1/tenant").status_code == 200
    again = as_json(cli("tenants", "keys", "reissue", cli_tenant["id"], "--mode", "test", "--revoke-others",
                        "--json"))
    assert set(again["revoked"]) == {cli_tenant["admin_key_ids"]["test"], issued["id"]}
    assert old.get("/v1/tenant").status_code == 401
    assert Caller(client, again["secret"]).get("/v1/tenant").status_code == 200
    assert Caller(client, cli_tenant["admin_keys"]["live"]).get("/v1/tenant").status_code == 200  # other mode
    keys = as_json(cli("tenants", "keys", "list", cli_tenant["id"], "--mode", "test", "--json"))["data"]
    assert [k["revoked_at"] is None for k in keys] == [True, False, False]
    assert "secret" not in json.dumps(keys)


def test_providers_and_customers(cli, cli_tenant):
    scope = cli_tenant["scope"]
    provider = as_json(cli("providers", "create", *scope, "--name", "Accounting App", "--revenue-share", "0.30",
                           "--json"))
    assert provider["api_key"].startswith("agg_prov_test_") and provider["revenue_share_rate"] == "0.3"
    assert as_json(cli("providers", "show", *scope, provider["id"], "--json"))["name"] == "Accounting App"
    assert [p["id"] for p in as_json(cli("providers", "list", *scope, "--json"))["data"]] == [provider["id"]]
    assert "shown once" in cli("providers", "create", *scope, "--name", "Other").stdout

    customer = as_json(cli("customers", "create", *scope, "--external-id", "acme-co", "--name", "Acme Co",
                           "--json"))
    assert customer["currency"] == "AUD"  # the tenant's default
    for ref in (customer["id"], "acme-co"):
        assert as_json(cli("customers", "show", *scope, ref, "--json"))["id"] == customer["id"]
    listed = as_json(cli("customers", "list", *scope, "--external-id", "acme-co", "--json"))["data"]
    assert [c["id"] for c in listed] == [customer["id"]]
    refused = cli("customers", "create", *scope, "--external-id", "x", "--currency", "ZZZ", exit_code=2)
    assert "Invalid value for '--currency'" in refused.output
    taken = cli("customers", "create", *scope, "--external-id", "acme-co", exit_code=1)
    assert taken.stderr.strip().count("\n") == 0 and "already exists" in taken.stderr


def test_a_whole_cycle_on_the_test_clock(cli, client, cli_tenant, tmp_path):
    """The README's sequence: a provider, a customer, a bill, the clock past the period's end,
    then the invoice, its PDF and the events."""
    scope = cli_tenant["scope"]
    provider = as_json(cli("providers", "create", *scope, "--name", "App", "--json"))
    cli("customers", "create", *scope, "--external-id", "acme-co")
    response = Caller(client, provider["api_key"]).post("/v1/bills", bill_body(customer="acme-co"),
                                                        headers={"Idempotency-Key": "k1"})
    assert response.status_code == 201, response.json
    [period] = as_json(cli("periods", "list", *scope, "--json"))["data"]
    assert period["status"] == "open"
    assert as_json(cli("periods", "clock", *scope, "--json"))["status"] == "ready"

    advanced = as_json(cli("periods", "advance-clock", *scope, "--to", period["end_at"], "--json"))
    assert advanced["now"] == period["end_at"] and advanced["status"] == "ready"
    assert [(c["period"], c["invoices_created"]) for c in advanced["ran"]["closes"]] == [(period["start"], 1)]
    assert advanced["ran"]["pdfs"] == {"rendered": 1, "failed": 0}
    assert as_json(cli("periods", "show", *scope, period["start"], "--json"))["status"] == "closed"

    [invoice] = as_json(cli("invoices", "list", *scope, "--period", period["start"], "--json"))["data"]
    assert invoice["status"] == "open" and invoice["total"] == "19.99"
    shown = cli("invoices", "show", *scope, invoice["id"]).stdout
    assert invoice["number"] in shown and "Pro plan, October" in shown
    assert provider["id"] not in shown and re.search(r"│ bill +│ App +│", shown)  # its provider by name, not id
    assert f'"provider": "{provider["id"]}"' in cli("invoices", "show", *scope, invoice["id"], "--json").stdout
    target = tmp_path / "invoice.pdf"
    assert "Wrote" in cli("invoices", "pdf", *scope, invoice["id"], "-o", str(target)).stdout
    assert target.read_bytes().startswith(b"%PDF")

    events = as_json(cli("events", "list", *scope, "--type", "invoice.*", "--json"))["data"]
    assert {e["type"] for e in events} == {"invoice.created", "invoice.finalized", "invoice.pdf_ready"}
    assert as_json(cli("events", "show", *scope, events[0]["id"], "--json"))["id"] == events[0]["id"]
    assert "invoice.finalized" in cli("events", "list", *scope).stdout
    human = cli("periods", "advance-clock", *scope, "--to", "2026-12-30T00:00:00Z").stdout
    assert "Test clock" in human and "ready" in human and "pending" in human


def test_close_finalize_void_and_render_under_manual_review(cli, client, cli_tenant, clock):
    from datetime import datetime, timezone

    scope = ["--tenant", cli_tenant["id"], "--mode", "live"]
    cli("tenants", "update", cli_tenant["id"], "--mode", "live", "--invoice-review", "manual")
    provider = as_json(cli("providers", "create", *scope, "--name", "App", "--json"))
    for external_id in ("a", "b"):
        cli("customers", "create", *scope, "--external-id", external_id)
        Caller(client, provider["api_key"]).post("/v1/bills", bill_body(customer=external_id),
                                                 headers={"Idempotency-Key": external_id})
    refused = cli("periods", "close", *scope, "--period", "2026-10-25", exit_code=1)
    assert "cannot be closed before then" in refused.stderr
    clock.set(datetime(2026, 11, 26, tzinfo=timezone.utc))
    closed = as_json(cli("periods", "close", *scope, "--period", "2026-10-25", "--chunk", "1", "--json"))
    assert (closed["status"], closed["invoices_created"], closed["pdfs"]) == ("closed", 2, {"rendered": 0, "failed": 0})
    drafts = as_json(cli("invoices", "list", *scope, "--status", "draft", "--json"))["data"]
    assert len(drafts) == 2
    finalized = as_json(cli("invoices", "finalize", *scope, drafts[0]["id"], "--json"))
    assert finalized["status"] == "open" and finalized["pdf_url"]  # rendered at once
    voided = as_json(cli("invoices", "void", *scope, drafts[1]["id"], "--json"))
    assert voided["status"] == "void"
    refused = cli("invoices", "void", *scope, drafts[0]["id"], exit_code=1)
    assert "needs a reason" in refused.stderr
    assert as_json(cli("invoices", "render", *scope, "--json")) == {"rendered": 0, "failed": 0}
    assert "rendered" in cli("invoices", "render", *scope).stdout
    human = cli("periods", "close", *scope, "--period", "2026-10-25").stdout  # again: nothing to do
    assert "Close of 2026-10-25" in human and "closed" in human


UNKNOWN_TENANT = [
    ["periods", "close", "--tenant", "ten_nope", "--period", "2026-10-25"],
    ["periods", "list", "--tenant", "ten_nope"],
    ["periods", "advance-clock", "--tenant", "ten_nope", "--mode", "test", "--to", "2027-01-01T00:00:00Z"],
    ["providers", "list", "--tenant", "ten_nope"],
    ["customers", "show", "--tenant", "ten_nope", "c"],
    ["invoices", "list", "--tenant", "ten_nope"],
    ["invoices", "render", "--tenant", "ten_nope"],
    ["events", "list", "--tenant", "ten_nope"],
    ["tenants", "show", "ten_nope"],
    ["tenants", "keys", "reissue", "ten_nope", "--mode", "live"],
]


@pytest.mark.parametrize("args", UNKNOWN_TENANT, ids=" ".join)
def test_an_unknown_tenant_is_one_line_and_exit_status_1(cli, args):
    result = cli(*args, exit_code=1)
    assert result.stderr == "Error: No such tenant: 'ten_nope'.\n"
    assert result.stdout == ""


def test_unknown_objects_are_one_line_and_exit_status_1(cli, cli_tenant):
    scope = cli_tenant["scope"]
    for args, words in [(["invoices", "show", *scope, "inv_nope"], "No such invoice"),
                        (["invoices", "pdf", *scope, "inv_nope"], "No such invoice"),
                        (["events", "show", *scope, "evt_nope"], "No such event"),
                        (["providers", "show", *scope, "prov_nope"], "No such provider"),
                        (["customers", "show", *scope, "nobody"], "No customer with id or external_id 'nobody'")]:
        result = cli(*args, exit_code=1)
        assert result.stderr.startswith(f"Error: {words}") and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("args", [
    ["periods", "close", "--tenant", "t", "--period", "25/10/2026"],
    ["periods", "close", "--tenant", "t"],
    ["invoices", "list", "--tenant", "t", "--status", "paid-ish"],
    ["periods", "advance-clock", "--tenant", "t", "--mode", "test", "--to", "2027-01-01"],
    ["tenants", "create", "--name", "X", "--address", "nowhere"],
    ["events", "list", "--tenant", "t", "--bogus"],
    ["tenants", "frobnicate"],
], ids=" ".join)
def test_a_bad_option_is_a_usage_error_exit_status_2(cli, args):
    result = cli(*args, exit_code=2)
    assert "Usage:" in result.stderr and "Error:" in result.stderr


def test_a_bad_date_names_the_format_in_words(cli):
    result = cli("periods", "close", "--tenant", "t", "--period", "25/10/2026", exit_code=2)
    assert "'25/10/2026' is not a date written YYYY-MM-DD" in result.stderr and "%Y" not in result.stderr


def test_the_clock_commands_refuse_live_mode(cli, cli_tenant):
    result = cli("periods", "advance-clock", "--tenant", cli_tenant["id"], "--to", "2027-01-01T00:00:00Z",
                 exit_code=2)
    assert "test mode only" in result.stderr


def test_ledger_trial_balance_and_journals(app, cli, cli_tenant):
    from tests.support.ledger import post_invoice_and_payment

    finalized_id, payment_id = post_invoice_and_payment(app, cli_tenant["id"])
    printed = cli("ledger", "trial-balance", *cli_tenant["scope"]).output
    assert "Trial balance (test mode)" in printed and "provider_payable:prov_a" in printed
    assert "Balanced." in printed
    report = as_json(cli("ledger", "trial-balance", *cli_tenant["scope"], "--json"))
    assert report["balanced"] is True and report["livemode"] is False
    assert report["totals"] == [{"currency": "AUD", "debits": "230.00", "credits": "230.00", "balance": "0.00"}]
    assert {(a["account"], a["balance"]) for a in report["accounts"]} >= {("cash", "120.00"), ("tax_payable", "-10.00")}
    live = as_json(cli("ledger", "trial-balance", "--tenant", cli_tenant["id"], "--mode", "live", "--json"))
    assert live["accounts"] == [] and live["totals"] == [] and live["balanced"] is True
    journals = as_json(cli("ledger", "journals", *cli_tenant["scope"], "--kind", "payment_received", "--json"))
    assert [j["id"] for j in journals["data"]] == [payment_id] and len(journals["data"][0]["entries"]) == 3
    assert finalized_id in cli("ledger", "journals", *cli_tenant["scope"]).output
