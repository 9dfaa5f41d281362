"""`aggregator meters|usage …` and plans with usage prices from the command line: a meter made and
changed while unused, a plan priced on usage (--fees-json), usage events sent one at a time and
from CSV and JSON files through the batch use case (each accepted or refused on its own), the
current usage table, and the usage line at the close — as the API does them (test_metering_api.py)."""
from __future__ import annotations

import json

import pytest

from tests.support.cli import as_json

# Sydney, anchor 25: the test clock starts 2026-11-10T12:00Z in the period 2026-10-25 .. 2026-11-24.
AT = "2026-11-10T12:00:00+00:00"
#: PLATFORMA's example: 100 GB included, 0.05 up to 1,000 GB, 0.03 beyond; alerts at 80/90/100 %
FEES = [{"name": "Hosting", "price": "49.99", "timing": "in_arrears", "usage": [
    {"meter": "bandwidth", "name": "Bandwidth", "model": "graduated", "included_units": "100",
     "tiers": [{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}],
     "thresholds": [80, 90, 100]}]}]


@pytest.fixture
def metered(cli, cli_tenant, tmp_path):
    """A bandwidth meter, a provider's plan pricing it (--fees-json @file), a subscription vm-1."""
    scope = cli_tenant["scope"]
    cli("meters", "create", *scope, "--code", "bandwidth", "--name", "Bandwidth", "--unit", "GB",
        "--aggregation", "sum", "--decimals", "2")
    provider = as_json(cli("providers", "create", *scope, "--name", "Cloudy", "--json"))["id"]
    cli("customers", "create", *scope, "--external-id", "cust-1")
    as_provider = [*scope, "--provider", provider]
    fees = tmp_path / "fees.json"
    fees.write_text(json.dumps(FEES))
    plan = cli("plans", "create", *as_provider, "--code", "cloud", "--name", "Cloud", "--currency", "AUD",
               "--fees-json", f"@{fees}").stdout
    assert "Usage prices" in plan and "≤ 1000: 0.05; above: 0.03" in plan
    cli("subscriptions", "create", *as_provider, "--customer", "cust-1", "--plan", "cloud",
        "--external-billing-id", "vm-1")
    return {"scope": scope, "as": as_provider, "tmp": tmp_path}


def test_a_meter_is_created_listed_shown_and_changed_only_while_unused(cli, cli_tenant):
    scope = cli_tenant["scope"]
    made = as_json(cli("meters", "create", *scope, "--code", "instance-resources", "--name", "Instance resources",
                       "--aggregation", "hourly_max", "--dimension", "resource", "--json"))
    assert (made["object"], made["aggregation"], made["dimensions"], made["reset"], made["in_use"]) == \
        ("meter", "hourly_max", ["resource"], "period", False)
    table = cli("meters", "list", *scope).stdout
    assert "instance-resources" in table and "hourly_max" in table
    assert as_json(cli("meters", "show", *scope, made["id"], "--json"))["code"] == "instance-resources"
    changed = as_json(cli("meters", "update", *scope, "instance-resources", "--unit", "unit-hour",
                          "--aggregation", "max", "--json"))
    assert (changed["unit"], changed["aggregation"]) == ("unit-hour", "max")
    refused = cli("meters", "create", *scope, "--code", "instance-resources", "--name", "Again",
                  "--aggregation", "sum", exit_code=1)
    assert "already exists" in refused.stderr and refused.stderr.count("\n") == 1
    wrong = cli("meters", "create", *scope, "--code", "users", "--name", "Users", "--aggregation", "unique_count",
                exit_code=1)
    assert "distinct values" in wrong.stderr
    assert "'--decimals'" in cli("meters", "create", *scope, "--code", "x", "--name", "X", "--aggregation", "sum",
                                 "--decimals", "12", exit_code=2).stderr
    cli("meters", "update", *scope, "instance-resources", exit_code=2)  # nothing to change
    assert "No meter" in cli("meters", "show", *scope, "nope", exit_code=1).stderr


def test_a_meter_with_events_keeps_its_aggregation(cli, metered):
    cli("usage", "send", *metered["as"], "--id", "e1", "--subscription", "vm-1", "--meter", "bandwidth",
        "--value", "1", "--timestamp", AT)
    assert as_json(cli("meters", "show", *metered["scope"], "bandwidth", "--json"))["in_use"] is True
    refused = cli("meters", "update", *metered["scope"], "bandwidth", "--aggregation", "max", exit_code=1)
    assert "has usage events" in refused.stderr
    renamed = as_json(cli("meters", "update", *metered["scope"], "bandwidth", "--name", "Egress", "--json"))
    assert renamed["name"] == "Egress"


def test_usage_sent_one_by_one_and_from_files_is_shown_then_invoiced(cli, cli_tenant, metered):
    sent = as_json(cli("usage", "send", *metered["as"], "--id", "e1", "--subscription", "vm-1", "--meter",
                       "bandwidth", "--value", "1000", "--timestamp", AT, "--json"))
    [result] = sent["data"]
    assert (result["status"], result["replayed"], result["event"]["value"], result["event"]["period"]) == \
        (201, False, "1000", "2026-10-25")
    events = metered["tmp"] / "events.csv"
    events.write_text(f"id,subscription,meter,value,timestamp,region\n"
                      f"e2,vm-1,bandwidth,300,{AT},eu\n"
                      f"e1,vm-1,bandwidth,1000,{AT},\n")  # a replay of e1: accepted, not counted twice
    table = cli("usage", "send", *metered["as"], "--file", str(events)).stdout
    assert "replayed" in table and "2 events accepted." in table
    batch = metered["tmp"] / "events.json"
    batch.write_text(json.dumps({"events": [
        {"id": "e3", "subscription": "vm-1", "meter": "bandwidth", "value": "40.00", "timestamp": AT},
        {"id": "e4", "subscription": "vm-1", "meter": "bandwidth", "value": "1.001", "timestamp": AT},
        {"id": "e5", "subscription": "nope", "meter": "bandwidth", "value": "1", "timestamp": AT},
        {"id": "e6", "subscription": "vm-1", "meter": "bandwidth", "value": 1.5, "timestamp": AT}]}))
    refused = cli("usage", "send", *metered["as"], "--file", str(batch), "--json", exit_code=1)
    outcomes = [json.loads(line) for line in refused.stdout.splitlines()][0]["data"]
    assert [(r["status"], r.get("error", {}).get("code")) for r in outcomes] == [
        (201, None), (422, "invalid"), (404, "unknown_subscription"), (422, "invalid")]
    assert "value" in outcomes[1]["error"]["fields"] and "value" in outcomes[3]["error"]["fields"]
    assert refused.stderr == "Error: 3 of 4 events refused.\n"

    now = as_json(cli("usage", "show", *metered["as"], "vm-1", "--json"))
    [line] = now["data"]
    assert (now["period"], line["quantity"], line["included_units"], line["percent_used"], line["amount"]) == \
        ("2026-10-25", "1340", "100", "1340", "55.20")
    shown = cli("usage", "show", *metered["scope"], now["subscription"]).stdout  # the admin, by its id
    assert "Bandwidth" in shown and "1340 GB" in shown and "55.20" in shown and "80 %, 90 %, 100 %" in shown

    cli("periods", "advance-clock", *metered["scope"], "--to", "2026-11-24T14:00:00+00:00")  # the close
    [invoice] = as_json(cli("invoices", "list", *metered["scope"], "--json"))["data"]
    lines = as_json(cli("invoices", "show", *metered["scope"], invoice["id"], "--json"))["lines"]
    assert "Bandwidth — 1,340 GB: 100 GB included, 900 × A$0.05, 340 × A$0.03 = A$55.20" in \
        [x["description"] for x in lines]


def test_bad_usage_options_are_usage_errors(cli, metered):
    cli("usage", "send", *metered["as"], "--id", "e1", exit_code=2)  # no subscription, no meter
    both = metered["tmp"] / "e.json"
    both.write_text("[]")
    cli("usage", "send", *metered["as"], "--file", str(both), "--id", "e1", exit_code=2)
    assert "holds no events" in cli("usage", "send", *metered["as"], "--file", str(both), exit_code=2).stderr
    both.write_text("{not json")
    cli("usage", "send", *metered["as"], "--file", str(both), exit_code=2)
    assert "No such provider" in cli("usage", "send", *metered["scope"], "--id", "e1", "--subscription", "vm-1",
                                     "--meter", "bandwidth", exit_code=1).stderr  # no --provider
    closed = cli("usage", "send", *metered["as"], "--id", "e9", "--subscription", "vm-1", "--meter", "bandwidth",
                 "--value", "1", "--timestamp", "2026-11-10T13:00:00+00:00", exit_code=1)
    assert "timestamp_in_future" in closed.stdout and "1 of 1 event refused" in closed.stderr
    assert "No subscription" in cli("usage", "show", *metered["as"], "nope", exit_code=1).stderr


def test_plans_take_fees_with_usage_as_json_and_refuse_both_or_neither(cli, metered):
    as_provider = metered["as"]
    base = ["plans", "create", *as_provider, "--code", "p2", "--name", "P2", "--currency", "AUD"]
    cli(*base, exit_code=2)  # no fees
    cli(*base, "--fee", "Hosting=1.00", "--fees-json", json.dumps(FEES), exit_code=2)
    cli(*base, "--fees-json", "{not json", exit_code=2)
    bad = [{**FEES[0], "usage": [{**FEES[0]["usage"][0], "thresholds": [120]}]}]
    assert "'--fees-json'" in cli(*base, "--fees-json", json.dumps(bad), exit_code=2).stderr
    unknown = [{**FEES[0], "usage": [{**FEES[0]["usage"][0], "meter": "nope"}]}]
    assert "nope" in cli(*base, "--fees-json", json.dumps(unknown), exit_code=1).stderr
    plan = as_json(cli(*base, "--fees-json", json.dumps(FEES), "--json"))
    [component] = plan["fees"][0]["usage"]
    assert (component["meter"], component["model"], component["included_units"], component["thresholds"]) == \
        ("bandwidth", "graduated", "100", [80, 90, 100])
