"""The usage export (docs/metering.md, Usage export): events sent through the API come back one
row per (subscription, meter, dimension values, UTC hour) in CSV (streamed) and Parquet, with
each dimension its own column; a provider sees only its own subscriptions, no tenant or mode
another's; the close leaves the period's export in the storage directory, once; and the CLI
writes the same rows."""
from __future__ import annotations

import csv
import io
from fractions import Fraction

import pyarrow.parquet as pq
import pytest

from tests.support.invoicing import advance

PERIOD = "2026-10-25"  # Sydney: 2026-10-24T13:00Z .. 2026-11-24T13:00Z; the test clock starts at 2026-11-10T12:00Z


def meter(admin, code, aggregation, **fields):
    response = admin.post("/v1/meters", {"code": code, "name": code.title(), "aggregation": aggregation, **fields})
    assert response.status_code == 201, response.json
    return response.json


def subscribe(tenant, provider, customer, plan, external_billing_id):
    tenant.customer(customer)
    response = provider.post("/v1/plans", {"code": plan, "name": plan.title(), "currency": "AUD",
                                           "fees": [{"name": "Hosting", "price": "10.00", "timing": "in_arrears"}]})
    assert response.status_code == 201, response.json
    response = provider.post("/v1/subscriptions", {"customer": customer, "plan": plan,
                                                   "external_billing_id": external_billing_id})
    assert response.status_code == 201, response.json
    return response.json


def send(provider, *events):
    response = provider.post("/v1/usage_events/batch", {"events": [
        {"id": f"e{i}-{e[0]}-{e[1]}-{e[3]}", "subscription": e[0], "meter": e[1], "value": e[2], "timestamp": e[3],
         "properties": e[4] if len(e) > 4 else {}} for i, e in enumerate(events)]})
    assert response.status_code == 200, response.json
    assert [r["status"] for r in response.json["data"]] == [201] * len(events), response.json


@pytest.fixture
def metered(tenant):
    """Two providers with a subscription each; CPU cores at hourly maxima per cloud and region,
    storage in GB-hours per region, API calls counted."""
    admin = tenant.admin["test"]
    meter(admin, "cpu", "hourly_max", unit="cores", dimensions=["cloud", "region"])
    meter(admin, "storage", "time_weighted", unit="GB", decimals=1, dimensions=["region"])
    meter(admin, "calls", "count", unit="calls")
    cloudy, other = tenant.provider(name="Cloudy"), tenant.provider(name="Other")
    sub = subscribe(tenant, cloudy, "cust-1", "cloud", "inst-1")
    theirs = subscribe(tenant, other, "cust-2", "other", "inst-9")
    advance(tenant, "2026-11-10T16:00:00Z")  # the events below are then in the past
    aws = {"cloud": "aws", "region": "us-east-1"}
    send(cloudy,
         ("inst-1", "cpu", 2, "2026-11-10T13:10:00Z", aws),
         ("inst-1", "cpu", 4, "2026-11-10T13:40:00Z", aws),
         ("inst-1", "cpu", 3, "2026-11-10T14:05:00Z", aws),
         ("inst-1", "cpu", 8, "2026-11-10T14:20:00Z", {"cloud": "gcp", "region": "eu-west-1"}),
         ("inst-1", "storage", "10", "2026-11-10T13:30:00Z", {"region": "us-east-1"}),
         ("inst-1", "storage", "20.5", "2026-11-10T15:00:00Z", {"region": "us-east-1"}),
         ("inst-1", "calls", 1, "2026-11-10T13:01:00Z"),
         ("inst-1", "calls", 1, "2026-11-10T13:02:00Z"))
    send(other, ("inst-9", "calls", 1, "2026-11-10T15:30:00Z"))
    return {"cloudy": cloudy, "other": other, "sub": sub, "theirs": theirs}


def rows_of(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def keyed(rows) -> dict:
    return {(r["external_billing_id"], r["meter"], r.get("dim_cloud", ""), r.get("dim_region", ""), r["hour"]): r
            for r in rows}


def test_the_csv_has_a_row_per_subscription_meter_dimensions_and_hour(tenant, metered):
    response = tenant.admin["test"].get(f"/v1/usage_export?period={PERIOD}&format=csv")
    rows = rows_of(response)
    assert response.headers["Period-Status"] == "open"
    assert response.headers["Usage-As-Of"].startswith("2026-11-10T16:00")
    assert 'filename="usage-2026-10-25.csv"' in response.headers["Content-Disposition"]
    header = response.get_data(as_text=True).splitlines()[0].split(",")
    assert header == ["subscription", "external_billing_id", "customer", "provider", "provider_name", "plan", "meter",
                      "unit", "aggregation", "hour", "quantity", "unit_milliseconds", "events", "dim_cloud",
                      "dim_region"]
    by = keyed(rows)
    assert len(rows) == 7
    cpu9 = by[("inst-1", "cpu", "aws", "us-east-1", "2026-11-10T13:00:00Z")]
    assert (cpu9["subscription"], cpu9["customer"], cpu9["provider"], cpu9["provider_name"], cpu9["plan"],
            cpu9["unit"], cpu9["aggregation"], cpu9["quantity"], cpu9["events"]) == (
        metered["sub"]["id"], "cust-1", metered["cloudy"].id, "Cloudy", "cloud", "cores", "hourly_max", "4", "2")
    assert by[("inst-1", "cpu", "aws", "us-east-1", "2026-11-10T14:00:00Z")]["quantity"] == "3"
    assert by[("inst-1", "cpu", "gcp", "eu-west-1", "2026-11-10T14:00:00Z")]["quantity"] == "8"
    calls = by[("inst-1", "calls", "", "", "2026-11-10T13:00:00Z")]
    assert (calls["quantity"], calls["events"], calls["dim_cloud"], calls["dim_region"]) == ("2", "2", "", "")
    assert by[("inst-9", "calls", "", "", "2026-11-10T15:00:00Z")]["provider_name"] == "Other"


def test_time_weighted_rows_tile_the_period_and_add_up_to_the_current_usage(tenant, metered):
    rows = rows_of(tenant.admin["test"].get(f"/v1/usage_export?period={PERIOD}"))  # csv by default
    storage = sorted((r for r in rows if r["meter"] == "storage"), key=lambda r: r["hour"])
    # 10 GB from 13:30 to 15:00, then 20.5 GB from 15:00 to now (16:00): 15 + 20.5 GB-hours
    assert [(r["hour"], r["quantity"], r["unit_milliseconds"], r["dim_region"]) for r in storage] == [
        ("2026-11-10T13:00:00Z", "15", "54000000", "us-east-1"),
        ("2026-11-10T15:00:00Z", "20.5", "73800000", "us-east-1")]
    total = sum(Fraction(r["unit_milliseconds"]) for r in storage) / 3_600_000
    assert total == Fraction("35.5")


def test_parquet_holds_the_same_rows_with_dimensions_as_columns(tenant, metered):
    admin = tenant.admin["test"]
    response = admin.get(f"/v1/usage_export?period={PERIOD}&format=parquet")
    assert response.status_code == 200 and response.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.data))
    assert table.schema.field("quantity").type == "string" and str(table.schema.field("events").type) == "int64"
    assert str(table.schema.field("hour").type) == "timestamp[us, tz=UTC]"
    parquet = table.to_pylist()
    csv_rows = rows_of(admin.get(f"/v1/usage_export?period={PERIOD}&format=csv"))
    assert len(parquet) == len(csv_rows) == 7
    for a, b in zip(parquet, csv_rows, strict=True):
        assert a["hour"].strftime("%Y-%m-%dT%H:%M:%SZ") == b["hour"]
        assert {k: str(v) for k, v in a.items() if k != "hour"} == {k: v for k, v in b.items() if k != "hour"}


def test_a_provider_exports_only_its_own_subscriptions(tenant, metered):
    mine = rows_of(metered["cloudy"].get(f"/v1/usage_export?period={PERIOD}"))
    theirs = rows_of(metered["other"].get(f"/v1/usage_export?period={PERIOD}&format=csv"))
    assert {r["external_billing_id"] for r in mine} == {"inst-1"} and len(mine) == 6
    assert [(r["external_billing_id"], r["meter"]) for r in theirs] == [("inst-9", "calls")]
    parquet = pq.read_table(io.BytesIO(metered["other"].get(f"/v1/usage_export?period={PERIOD}&format=parquet")
                                       .data)).to_pylist()
    assert [r["external_billing_id"] for r in parquet] == ["inst-9"]


def test_no_other_tenant_or_mode_sees_the_usage(tenant, make_tenant, metered):
    other = make_tenant()
    assert rows_of(other.admin["test"].get(f"/v1/usage_export?period={PERIOD}")) == []
    live = tenant.admin["live"].get(f"/v1/usage_export?period={PERIOD}")
    assert live.status_code == 200 and rows_of(live) == []


def test_bad_period_or_format_is_refused_naming_it(tenant, metered):
    admin = tenant.admin["test"]
    for query, status, field in [("period=2026-10-26", 404, "period"), ("period=not-a-date", 422, "period"),
                                 ("", 422, "period"), ("period=2027-01-25", 404, "period"),
                                 (f"period={PERIOD}&format=xlsx", 422, "format")]:
        response = admin.get(f"/v1/usage_export?{query}")
        assert response.status_code == status, (query, response.json)
        assert field in response.json["error"].get("fields", {}), (query, response.json)


def test_the_close_writes_the_periods_export_to_storage_once(app, tenant, metered):
    from aggregator import due
    from aggregator.adapters import current
    from aggregator.db import db
    from aggregator.metering.export_service import EXPORT_QUEUE
    from aggregator.metering.models import UsageExport

    advance(tenant)
    with app.app_context():
        adapters = current()
        lane = due.Lane(tenant.id, False)
        assert due.drain(EXPORT_QUEUE, adapters, lane=lane).done == 1
        assert due.drain(EXPORT_QUEUE, adapters, lane=lane).taken == 0  # written once
        (item,) = UsageExport.query.filter_by(tenant_id=tenant.id).all()
        assert (item.csv_path, item.parquet_path, item.rows) == (
            f"exports/usage/{tenant.id}/test/{PERIOD}.csv", f"exports/usage/{tenant.id}/test/{PERIOD}.parquet", 7)
        stored = adapters.storage.get(item.csv_path).decode()
        parquet = pq.read_table(io.BytesIO(adapters.storage.get(item.parquet_path))).to_pylist()
        # a worker that crashed after the files, before marking them written: the same files again
        UsageExport.query.filter_by(id=item.id).update({"written_at": None})
        db.session.commit()
        assert due.drain(EXPORT_QUEUE, adapters, lane=lane).done == 1
        assert adapters.storage.get(item.csv_path).decode() == stored
    closed = tenant.admin["test"].get(f"/v1/usage_export?period={PERIOD}")
    assert closed.headers["Period-Status"] == "closed" and closed.headers["Usage-As-Of"].startswith("2026-11-24T13:00")
    assert stored == closed.get_data(as_text=True)  # the closed period's rows, as of its end
    assert len(parquet) == 7
    storage = [r for r in rows_of(closed) if r["meter"] == "storage"]
    # 20.5 GB held from 15:00 on 2026-11-10 to the period's end (2026-11-24T13:00Z): 334 h
    assert storage[-1]["quantity"] == "6847"


def test_a_period_without_usage_queues_no_export(app, tenant):
    from aggregator.metering.models import UsageExport

    advance(tenant)
    with app.app_context():
        assert UsageExport.query.filter_by(tenant_id=tenant.id).count() == 0


def test_the_cli_writes_the_same_rows(cli, tenant, metered, tmp_path):
    scope = ["--tenant", tenant.id, "--mode", "test"]
    out = tmp_path / "usage.csv"
    result = cli("usage", "export", *scope, "--period", PERIOD, "--format", "csv", "--output", str(out))
    assert "7 rows" in result.output
    api = tenant.admin["test"].get(f"/v1/usage_export?period={PERIOD}").get_data(as_text=True)
    assert out.read_bytes().decode() == api
    parquet = tmp_path / "usage.parquet"
    cli("usage", "export", *scope, "--period", PERIOD, "--format", "parquet", "-o", str(parquet),
        "--provider", metered["other"].id)
    assert [r["external_billing_id"] for r in pq.read_table(parquet).to_pylist()] == ["inst-9"]
    stdout = cli("usage", "export", *scope, "--period", PERIOD).output
    assert stdout.splitlines()[0].startswith("subscription,external_billing_id")
    refused = cli("usage", "export", *scope, "--period", "2026-10-26", exit_code=1)
    assert "period" in refused.output.lower()
    cli("usage", "export", *scope, "--period", PERIOD, "--format", "xlsx", exit_code=2)
