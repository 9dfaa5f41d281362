import pytest

from tests.support.openapi import conforms


def test_the_openapi_description_is_generated_from_the_schemas(client):
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"] == "3.1.0"  # 3.0 has no propertyNames (metadata keys) nor type lists
    assert {"/v1/bills", "/v1/bills/batch", "/v1/bills/{bill_id}", "/v1/providers", "/v1/customers",
            "/v1/tenant", "/v1/customers/{external_id}/trial", "/v1/ledger/accounts", "/v1/ledger/journals",
            "/v1/ledger/journals/{journal_id}"} <= set(spec["paths"])
    bill_input = spec["components"]["schemas"]["BillInput"]
    assert {"customer", "amount", "currency", "revenue_share"} <= set(bill_input["required"])
    assert spec["components"]["schemas"]["TenantUpdate"]["properties"]["period_anchor_day"]["maximum"] == 28


def test_error_responses_are_described_in_the_shape_they_have(client, tenant):
    spec = client.get("/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert {"type", "message", "code", "fields"} <= set(schemas["ErrorObject"]["properties"])
    assert spec["security"] == [{"bearer": []}] and "bearer" in spec["components"]["securitySchemes"]
    refused = tenant.admin["test"].patch("/v1/tenant", {"charge_day": 0}).json
    assert set(refused) == {"error"} and set(refused["error"]) <= set(schemas["ErrorObject"]["properties"])


# --- real responses against the document --------------------------------------------------------

def test_real_responses_are_what_the_document_describes(client, tenant):
    from tests.support.invoicing import advance, send

    spec = client.get("/v1/openapi.json").json
    admin = tenant.admin["test"]
    provider = tenant.provider()
    customer = tenant.customer("cust-1", address={"line1": "1 George St", "country": "AU"})
    bill = send(provider, "k1", metadata={"order": "A-1"})
    advance(tenant)
    [invoice] = admin.get("/v1/invoices").json["data"]
    [event] = admin.get("/v1/events?limit=1").json["data"]
    keys = admin.get("/v1/keys").json["data"]
    assert any(k["provider"] is None for k in keys) and any(k["revoked_at"] is None for k in keys)
    issued = admin.post("/v1/tenant/keys").json
    calls = [
        (admin, "GET", "/v1/tenant", "/v1/tenant"),
        (admin, "GET", "/v1/keys", "/v1/keys"),
        (admin, "GET", f"/v1/keys/{issued['id']}", "/v1/keys/{key_id}"),
        (admin, "DELETE", f"/v1/keys/{issued['id']}", "/v1/keys/{key_id}"),  # revoked_at set
        (admin, "GET", "/v1/providers", "/v1/providers"),
        (admin, "GET", f"/v1/providers/{provider.id}", "/v1/providers/{provider_id}"),
        (admin, "GET", "/v1/customers", "/v1/customers"),
        (admin, "GET", f"/v1/customers/{customer['id']}", "/v1/customers/{customer_id}"),
        (admin, "GET", "/v1/customers/nobody", "/v1/customers/{customer_id}"),  # 404
        (provider, "GET", "/v1/bills", "/v1/bills"),
        (provider, "GET", f"/v1/bills/{bill['id']}", "/v1/bills/{bill_id}"),
        (admin, "GET", "/v1/periods", "/v1/periods"),
        (admin, "GET", "/v1/periods/2026-10-25", "/v1/periods/{start}"),
        (admin, "GET", "/v1/invoices", "/v1/invoices"),
        (admin, "GET", f"/v1/invoices/{invoice['id']}", "/v1/invoices/{invoice_id}"),
        (admin, "GET", "/v1/events", "/v1/events"),
        (admin, "GET", f"/v1/events/{event['id']}", "/v1/events/{event_id}"),
        (admin, "GET", "/v1/test_clock", "/v1/test_clock"),
        (admin, "PATCH", "/v1/tenant", "/v1/tenant"),  # an empty change: the tenant as it is
    ]
    for caller, method, url, path in calls:
        response = getattr(caller, method.lower())(url, **({"json": {}} if method == "PATCH" else {}))
        assert response.status_code < 500, (url, response.json)
        conforms(spec, method, path, response)
    paid = admin.post(f"/v1/invoices/{invoice['id']}/payments", {"amount": "1.00", "method": "cash",
                                                                 "received_on": "2026-11-25"})
    assert paid.status_code == 201, paid.json
    conforms(spec, "POST", "/v1/invoices/{invoice_id}/payments", paid)
    conforms(spec, "POST", "/v1/invoices/{invoice_id}/pay", admin.post(f"/v1/invoices/{invoice['id']}/pay"))  # 409
    payment = paid.json["payment"]["id"]
    for url, path in [("/v1/payments", "/v1/payments"), (f"/v1/payments/{payment}", "/v1/payments/{payment_id}"),
                      (f"/v1/invoices/{invoice['id']}/payments", "/v1/invoices/{invoice_id}/payments")]:
        conforms(spec, "GET", path, admin.get(url))


def test_bill_metadata_is_documented_as_an_object_of_at_most_50_keys(client):
    metadata = client.get("/v1/openapi.json").json["components"]["schemas"]["BillInput"]["properties"]["metadata"]
    assert metadata["type"] == "object" and metadata["maxProperties"] == 50 and "maxLength" not in metadata


def test_key_provider_and_revoked_at_are_documented_nullable(client):
    key = client.get("/v1/openapi.json").json["components"]["schemas"]["ApiKey"]["properties"]
    assert "null" in key["provider"]["type"] and "null" in key["revoked_at"]["type"]


def test_a_nullable_nested_object_is_the_object_or_null_not_any_object(client):
    service_period = _spec(client)["components"]["schemas"]["BillInput"]["properties"]["service_period"]
    assert {"type": "null"} in service_period["anyOf"] and len(service_period["anyOf"]) == 2


# --- the document and the server agree (issue 16, defect 9) -------------------------------------

def _spec(client) -> dict:
    return client.get("/v1/openapi.json").json


def test_enabled_events_is_an_array_of_known_event_types(client, tenant):
    spec = _spec(client)
    events = spec["components"]["schemas"]["WebhookEndpoint"]["properties"]["enabled_events"]
    assert events["type"] == "array" and "enum" not in events
    assert "*" in events["items"]["enum"] and "invoice.paid" in events["items"]["enum"]
    created = tenant.admin["test"].post("/v1/webhook_endpoints", {"url": "https://example.com/hook",
                                                                  "enabled_events": ["invoice.paid"]})
    assert created.status_code == 201, created.json
    conforms(spec, "POST", "/v1/webhook_endpoints", created)
    conforms(spec, "GET", "/v1/webhook_endpoints/{endpoint_id}",
             tenant.admin["test"].get(f"/v1/webhook_endpoints/{created.json['id']}"))


def test_the_payout_report_documents_its_csv_and_pdf_answers(client):
    content = _spec(client)["paths"]["/v1/reports/payouts"]["get"]["responses"]["200"]["content"]
    assert set(content) == {"application/json", "text/csv", "application/pdf"}


def test_a_method_not_allowed_says_which_are(tenant):
    response = tenant.admin["test"].client.put("/v1/tenant/keys")
    assert response.status_code == 405 and response.json["error"]["type"] == "method_not_allowed"
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST"}


@pytest.mark.parametrize("path", ["/v1/tenant", "/v1/customers/cust-1"])
def test_a_patch_without_a_body_is_refused_not_taken_as_no_change(tenant, path):
    tenant.customer("cust-1")
    response = tenant.admin["test"].client.patch(path, headers={"Authorization": f"Bearer {tenant.admin['test'].key}"})
    assert response.status_code == 422, response.json
    assert set(response.json) == {"error"} and "body" in response.json["error"]["fields"]
    assert tenant.admin["test"].patch(path, {}).status_code == 200  # an empty change is still one


def test_request_schemas_state_the_rules_the_server_applies(client):
    schemas = _spec(client)["components"]["schemas"]
    bill = schemas["BillInput"]["properties"]
    assert "AUD" in bill["currency"]["enum"] and "" not in bill["currency"]["enum"]
    assert bill["metadata"]["propertyNames"]["maxLength"] == 40
    assert "\x00" in bill["customer"]["pattern"]  # [^\x00]: no NUL
    assert schemas["Batch"]["properties"]["bills"]["minItems"] == 1
    assert schemas["ServicePeriod"]["properties"]["start"]["pattern"]
    assert schemas["Advance"]["properties"]["to"]["pattern"].startswith("^(19[7-9]")
    assert "zh_CN" in schemas["TenantUpdate"]["properties"]["locale"]["enum"]


@pytest.mark.parametrize("text,accepted", [("19.99", True), ("19.990", True), ("-0.5", True), ("1.999", True),
                                           ("01.00", False), ("1e3", False), ("1.", False), (".5", False),
                                           ("1000000000000", True), ("1000000000000.01", False)])
def test_the_documented_amount_pattern_is_the_parsers(text, accepted):
    import re

    from aggregator import money, openapi

    assert bool(re.fullmatch(openapi.amount_pattern(3), text)) is accepted
    try:
        money.parse_amount(text, "KWD")
    except money.MoneyError:
        assert not accepted
    else:
        assert accepted


@pytest.mark.parametrize("text", ["0.6521", "0", "0.000000000001", "0.0000000000001", "1000000", "1000000.5",
                                  "999999.999999999999", "1.5", "01", "0.0", "1e3", "-1"])
def test_the_documented_exchange_rate_pattern_is_the_parsers(text):
    import re

    from marshmallow import ValidationError

    from aggregator.consolidate.schemas import EXCHANGE_RATE_PATTERN, ExchangeRate

    try:
        ExchangeRate().deserialize(text)
        accepted = True
    except ValidationError:
        accepted = False
    assert bool(re.fullmatch(EXCHANGE_RATE_PATTERN, text)) is accepted


def test_an_amount_is_documented_with_its_currencys_decimals_and_a_rate_between_two_currencies(client):
    import re

    schemas = _spec(client)["components"]["schemas"]
    for name in ("BillInput", "BatchItem"):
        branches = {tuple(b["properties"]["currency"]["enum"]): b["properties"]["amount"]["pattern"]
                    for b in schemas[name]["anyOf"]}
        jpy = next(p for codes, p in branches.items() if "JPY" in codes)
        usd = next(p for codes, p in branches.items() if "USD" in codes)
        assert not re.fullmatch(jpy, "1.5") and re.fullmatch(usd, "1.50") and not re.fullmatch(usd, "1.505")
    same = schemas["FxRateInput"]["not"]["anyOf"]
    assert {"properties": {"base": {"const": "AUD"}, "quote": {"const": "AUD"}},
            "required": ["base", "quote"]} in same


def test_a_batch_is_documented_to_take_any_item_as_it_answers_each_on_its_own(client, tenant):
    bills = _spec(client)["components"]["schemas"]["Batch"]["properties"]["bills"]
    assert bills["items"]["anyOf"] == [{"$ref": "#/components/schemas/BatchItem"}, {}]
    assert tenant.provider().post("/v1/bills/batch", {"bills": [42]}).status_code == 200  # the item refused alone


def test_plans_subscriptions_and_their_refusals_are_what_the_document_describes(client, tenant):
    from tests.support.invoicing import advance

    spec = _spec(client)
    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    provider = tenant.provider()
    calls = [
        (admin, "POST", "/v1/plans", "/v1/plans", {"code": "parent", "name": "Parent", "currency": "AUD",
                                                   "granted_to": ["*"],
                                                   "fees": [{"name": "Hosting", "price": "10.00"}]}),
        (provider, "POST", "/v1/plans", "/v1/plans", {
            "code": "mine", "name": "Mine", "currency": "AUD", "parent_plan": "parent", "metadata": {"tier": "1"},
            "fees": [{"name": "Hosting", "price": "15.00", "parent_fee": "Hosting", "timing": "in_arrears"}]}),
        (provider, "POST", "/v1/plans", "/v1/plans", {"code": "mine", "name": "Again", "currency": "AUD",
                                                      "fees": [{"name": "Hosting", "price": "1.00"}]}),  # 409
        (provider, "POST", "/v1/plans", "/v1/plans", {"code": "fine", "name": "Fine", "currency": "AUD",
                                                      "fees": [{"name": "Hosting", "price": "1.001"}]}),  # 422
        (provider, "GET", "/v1/plans", "/v1/plans", None),
        (provider, "GET", "/v1/plans/mine", "/v1/plans/{code}", None),
        (provider, "GET", "/v1/plans/nope", "/v1/plans/{code}", None),  # 404
        (admin, "PATCH", "/v1/plans/parent", "/v1/plans/{code}", {"max_subscriptions_per_customer": 2}),
        (provider, "POST", "/v1/plans/mine/versions", "/v1/plans/{code}/versions", {"prices": {"Hosting": "16.00"}}),
        (provider, "POST", "/v1/plans/mine/versions", "/v1/plans/{code}/versions",
         {"effective_from": "2026-09-25", "prices": {"Hosting": "16.00"}}),  # 409 period_closed
        (admin, "GET", "/v1/environments", "/v1/environments", None),
        (admin, "POST", "/v1/environments", "/v1/environments", {"name": "qa"}),
        (admin, "DELETE", "/v1/environments/qa", "/v1/environments/{name}", None),
        (provider, "POST", "/v1/subscriptions", "/v1/subscriptions", {"customer": "cust-1", "plan": "mine",
                                                                      "external_billing_id": "inst-1"}),
        (provider, "POST", "/v1/subscriptions", "/v1/subscriptions", {"customer": "cust-1", "plan": "mine",
                                                                      "external_billing_id": "inst-1"}),  # 409
        (provider, "PATCH", "/v1/subscriptions/inst-1", "/v1/subscriptions/{ref}", {"quantity": 2}),
        (provider, "GET", "/v1/subscriptions", "/v1/subscriptions", None),
        (provider, "GET", "/v1/customers/cust-1/entitlements", "/v1/customers/{customer}/entitlements", None),
    ]
    for caller, method, url, path, body in calls:
        response = getattr(caller, method.lower())(url, **({"json": body} if body is not None else {}))
        assert response.status_code < 500, (url, response.json)
        conforms(spec, method, path, response)
    advance(tenant)
    for url, path in [("/v1/subscriptions/inst-1", "/v1/subscriptions/{ref}"),
                      ("/v1/subscriptions/inst-1/statements", "/v1/subscriptions/{ref}/statements")]:
        conforms(spec, "GET", path, provider.get(url))
    assert provider.get("/v1/subscriptions/inst-1/statements").json["data"], "the close should have rated it"
    conforms(spec, "DELETE", "/v1/subscriptions/{ref}", provider.delete("/v1/subscriptions/inst-1"))
    conforms(spec, "PATCH", "/v1/subscriptions/{ref}", provider.patch("/v1/subscriptions/inst-1", {"quantity": 3}))
