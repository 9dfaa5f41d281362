"""Inputs at the edges: never a 500."""
from __future__ import annotations

import pytest

from tests.support.invoicing import bill_body


@pytest.fixture
def provider(tenant):
    tenant.customer("cust-1")
    return tenant.provider()


def test_nul_characters_are_refused_wherever_they_appear(provider, tenant):
    response = provider.post("/v1/bills", bill_body(description="a\x00b"), headers={"Idempotency-Key": "k"})
    assert response.status_code == 422 and "description" in response.json["error"]["fields"]
    batch = provider.post("/v1/bills/batch", {"bills": [{**bill_body(customer="c\x00"), "idempotency_key": "k"},
                                                        {**bill_body(), "idempotency_key": "k2"},
                                                        {**bill_body(metadata={"a\x00": "b"}),
                                                          "idempotency_key": "k3"}]})
    assert batch.status_code == 200, batch.json  # each item accepted or refused on its own
    assert [item["status"] for item in batch.json["data"]] == [422, 201, 422]
    assert "customer" in batch.json["data"][0]["error"]["fields"]
    assert "metadata" in batch.json["data"][2]["error"]["fields"]
    whole = provider.post("/v1/bills/batch", {"bills": [{**bill_body(), "idempotency_key": "k4"}], "x\x00": 1})
    assert whole.status_code == 422 and "body" in whole.json["error"]["fields"]
    assert provider.get("/v1/bills/a%00b").status_code == 404
    assert provider.get("/v1/bills?starting_after=%00").status_code == 422
    assert tenant.admin["test"].get("/v1/invoices?customer=%00").status_code == 422
    assert tenant.admin["test"].get("/v1/payments?customer=%00").status_code == 422
    assert tenant.admin["test"].get("/v1/payments/a%00b").status_code == 404
    assert tenant.admin["test"].post("/v1/invoices/inv_x/payments", {"amount": "1.00", "method": "cash",
                                                                     "received_on": "2026-11-25",
                                                                     "reference": "a\x00b"}).status_code == 422
    assert provider.put("/v1/customers/a%00b/trial", {"ends_at": "2027-01-01T00:00:00Z"}).status_code == 404


@pytest.mark.parametrize("ends_at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_trial_dates_at_the_edges_of_the_calendar_are_refused(provider, ends_at):
    response = provider.put("/v1/customers/cust-1/trial", {"ends_at": ends_at})
    assert response.status_code == 422 and "ends_at" in response.json["error"]["fields"]


@pytest.mark.parametrize("to", ["9999-12-26T00:00:00Z", "9999-12-31T23:59:59-05:00"])
def test_the_test_clock_cannot_be_sent_past_the_calendar(tenant, to):
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": to})
    assert response.status_code == 422 and "to" in response.json["error"]["fields"]


@pytest.mark.parametrize("rate", ["99999999999999999999", "1000001"])
def test_absurd_exchange_rates_are_refused(tenant, rate):
    response = tenant.admin["test"].put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": rate,
                                                         "effective_date": "2026-11-01"})
    assert response.status_code == 422 and "rate" in response.json["error"]["fields"]


@pytest.mark.parametrize("query", ["period=yesterday", "period=2026-13-01", "limit=99999999999999999999",
                                   "starting_after=" + "x" * 500, "status=bogus"])
def test_bad_invoice_list_queries_are_422(tenant, query):
    assert tenant.admin["test"].get(f"/v1/invoices?{query}").status_code == 422


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32"])
def test_nul_characters_are_refused_in_any_json_encoding(provider, encoding):
    import json

    data = json.dumps(bill_body(description="a\x00b"), ensure_ascii=encoding == "utf-8").encode(encoding)
    response = provider.post("/v1/bills", data=data, headers={"Idempotency-Key": "k",
                                                              "Content-Type": "application/json"})
    assert response.status_code == 422 and "description" in response.json["error"]["fields"]


@pytest.mark.parametrize("escaped", [True, False])
def test_unpaired_surrogates_are_refused_not_a_500(provider, escaped):
    surrogate = "\\ud800" if escaped else "\ud800"  # a JSON escape, or raw (CESU-8 bytes)
    single = ('{"customer": "cust-1", "amount": "1.00", "currency": "AUD", "revenue_share": true, '
              f'"description": "a{surrogate}b"}}').encode("utf-8", "surrogatepass")
    response = provider.post("/v1/bills", data=single, headers={"Idempotency-Key": "k",
                                                                "Content-Type": "application/json"})
    assert response.status_code == 422 and "description" in response.json["error"]["fields"]
    batch = ('{"bills": [{"idempotency_key": "k", "customer": "cust-1", "amount": "1.00", "currency": "AUD", '
             f'"revenue_share": true, "metadata": {{"{surrogate}": "x"}}}}]}}').encode("utf-8", "surrogatepass")
    response = provider.post("/v1/bills/batch", data=batch, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.json  # the item is refused on its own
    assert "metadata" in response.json["data"][0]["error"]["fields"]


@pytest.mark.parametrize("path", ["/v1/bills", "/v1/bills/batch"])
@pytest.mark.parametrize("body", ["[" * 50_000 + "]" * 50_000, '{"a": ' * 1000 + '"\\u00e9"' + "}" * 1000])
def test_json_nested_too_deeply_is_a_400_not_a_500(provider, path, body):
    response = provider.post(path, data=body, headers={"Content-Type": "application/json",
                                                       "Idempotency-Key": "deep"})
    assert response.status_code == 400, response.json
    assert response.json["error"]["type"]


def test_a_period_that_ended_before_the_tenant_existed_cannot_be_closed(tenant):
    response = tenant.admin["test"].post("/v1/periods/0001-01-25/close")
    assert response.status_code == 404
    assert "before the tenant was created" in response.json["error"]["message"]


def _chunked(provider, body: bytes, key: str):
    import io

    return provider.client.post("/v1/bills", input_stream=io.BytesIO(body), headers={
        "Authorization": f"Bearer {provider.key}", "Idempotency-Key": key,
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True})  # as gunicorn serves a chunked body


def test_a_chunked_body_beyond_the_limit_is_refused_not_read_cut_short(app, provider):
    import json

    bill = json.dumps(bill_body()).encode()
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = _chunked(provider, bill + b" " * limit + b"GARBAGE", "k1")
    assert response.status_code == 413, response.json
    assert response.json["error"]["type"] == "request_too_large"
    assert provider.get("/v1/bills").json["data"] == []
    assert _chunked(provider, bill + b" " * 1000, "k2").status_code == 201  # within the limit


def test_a_nul_in_the_idempotency_key_is_refused(provider):
    response = provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "a\x00b"})
    assert response.status_code == 422 and "Idempotency-Key" in response.json["error"]["fields"]


@pytest.mark.parametrize("field,value", [("locale", "xx"), ("locale", "zz_ZZ"), ("locale", "EN"),
                                         ("timezone", "localtime"), ("timezone", "Factory")])
def test_tenant_settings_that_would_break_invoices_are_refused(tenant, field, value):
    response = tenant.admin["test"].patch("/v1/tenant", {field: value})
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json


def test_a_known_locale_is_accepted(tenant):
    assert tenant.admin["test"].patch("/v1/tenant", {"locale": "de_CH"}).json["locale"] == "de_CH"


def test_a_body_that_is_not_text_is_a_400_on_both_intake_paths(provider):
    for path in ("/v1/bills", "/v1/bills/batch"):
        response = provider.post(path, data=b'{"bills": "\xff\xfe\xfa"}', headers={
            "Content-Type": "application/json", "Idempotency-Key": "k"})
        assert response.status_code == 400, (path, response.json)


def test_a_non_ascii_idempotency_key_is_the_same_key_in_a_header_and_in_a_batch(provider):
    on_the_wire = "clé-1".encode().decode("latin-1")  # how a WSGI server hands the header over
    single = provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": on_the_wire})
    assert single.status_code == 201, single.json
    batch = provider.post("/v1/bills/batch", {"bills": [{**bill_body(), "idempotency_key": "clé-1"}]}).json
    assert batch["data"][0]["replayed"] and batch["data"][0]["bill"]["id"] == single.json["id"]
    bad = provider.post("/v1/bills", bill_body(), headers={"Idempotency-Key": "\xe9t\xe9"})  # not UTF-8
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json["error"]["fields"]


@pytest.mark.parametrize("field,value", [("period_anchor_day", 5.5), ("charge_day", "3"),
                                         ("auto_finalize_after_days", 1.5)])
def test_day_settings_must_be_whole_numbers(tenant, field, value):
    response = tenant.admin["test"].patch("/v1/tenant", {field: value})
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_sent_as_json_is_a_415(provider, content_type):
    import json

    headers = {"Idempotency-Key": "k", **({"Content-Type": content_type} if content_type else {})}
    for path in ("/v1/bills", "/v1/bills/batch"):
        response = provider.post(path, data=json.dumps(bill_body()), headers=headers)
        assert response.status_code == 415, (path, response.json)
        assert "application/json" in response.json["error"]["message"]


def test_moving_the_test_clock_back_is_a_conflict_with_its_state_not_bad_input(tenant):
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": "2000-01-01T00:00:00Z"})
    assert response.status_code == 409, response.json  # a valid instant: the clock being past it is the state
    assert response.json["error"]["code"] == "clock_backwards" and "to" in response.json["error"]["fields"]


@pytest.mark.parametrize("value,accepted", [(9.0, True), (9, True), (True, False), ("9", False), (9.5, False)])
def test_a_day_setting_is_a_json_integer_as_json_schema_means_it(tenant, value, accepted):
    response = tenant.admin["test"].patch("/v1/tenant", {"charge_day": value})
    assert (response.status_code == 200) is accepted, response.json
    if accepted:
        assert response.json["charge_day"] == 9 and type(response.json["charge_day"]) is int
