"""GET /v1/ledger/export and `aggregator ledger export`: the books of the caller's tenant and mode,
streamed as Beancount or CSV; admin keys only; a bad range is a 4xx naming the field."""
from __future__ import annotations

import subprocess  # nosec B404  # runs bean-check, installed with the tests
import sys
from pathlib import Path

import pytest

from tests.support.ledger import post_every_kind

BEAN_CHECK = Path(sys.executable).with_name("bean-check")


def test_the_api_streams_beancount_that_bean_check_accepts_and_the_same_as_csv(tenant, app, tmp_path):
    ids = post_every_kind(app, tenant.id)
    admin = tenant.admin["test"]
    response = admin.get("/v1/ledger/export?from=2026-11-01&to=2026-11-30")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/plain" and response.mimetype_params["charset"] == "utf-8"
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="ledger-{tenant.id}-test-2026-11-01-2026-11-30.beancount"')
    path = tmp_path / "books.beancount"
    path.write_bytes(response.data)
    checked = subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, timeout=60)  # nosec B603
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert ids["payment_received"] in response.text and ids["reversal"] not in response.text
    assert response.text.endswith(f"; end of the export: {len(ids['all'].split()) - 1} journals\n")
    table = admin.get("/v1/ledger/export?format=csv")
    assert table.status_code == 200 and table.mimetype == "text/csv"
    assert table.text.startswith("journal_id,date,posted_at,kind,") and ids["reversal"] in table.text
    assert tenant.admin["live"].get("/v1/ledger/export?format=csv").text.count("\n") == 1


@pytest.mark.parametrize("query, field", [("format=xlsx", "format"), ("from=2026-13-01", "from"),
                                          ("to=20261101", "to"), ("from=2026-11-02&to=2026-11-01", "to"),
                                          ("to=9999-12-31", "to"), ("from=0001-01-01", "from")])
def test_bad_input_is_a_4xx_naming_the_field(tenant, query, field):
    response = tenant.admin["test"].get(f"/v1/ledger/export?{query}")
    assert response.status_code in (400, 422), response.json
    assert field in str(response.json), response.json


def test_the_export_needs_an_admin_key(tenant):
    assert tenant.provider().get("/v1/ledger/export").status_code == 403


def test_the_document_describes_the_export(client):
    operation = client.get("/v1/openapi.json").json["paths"]["/v1/ledger/export"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"format", "from", "to"}
    assert set(operation["responses"]["200"]["content"]) >= {"text/plain", "text/csv"}


def test_the_cli_writes_the_export_to_a_file_or_standard_output(app, tenant, tmp_path):
    ids = post_every_kind(app, tenant.id)
    runner = app.test_cli_runner()
    scope = ["ledger", "export", "--tenant", tenant.id, "--mode", "test"]
    target = tmp_path / "november.beancount"
    result = runner.invoke(args=[*scope, "--from", "2026-11-01", "--to", "2026-11-30", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {target}" in result.output
    checked = subprocess.run([str(BEAN_CHECK), str(target)], capture_output=True, text=True, timeout=60)  # nosec B603
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = runner.invoke(args=[*scope, "--format", "csv"])
    assert result.exit_code == 0 and ids["reversal"] in result.output
    refused = runner.invoke(args=[*scope, "--from", "2026-11-02", "--to", "2026-11-01"])
    assert refused.exit_code == 1 and "before it starts" in refused.output
    assert runner.invoke(args=[*scope, "--from", "2026-11"]).exit_code == 2
