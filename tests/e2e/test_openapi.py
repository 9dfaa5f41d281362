def test_the_openapi_description_is_generated_from_the_schemas(client):
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
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

def _response_schema(spec: dict, method: str, path: str, status: int) -> dict:
    responses = spec["paths"][path][method.lower()]["responses"]
    described = responses.get(str(status)) or responses["default"]
    if "$ref" in described:  # a shared response, e.g. the error one
        described = spec["components"]["responses"][described["$ref"].rsplit("/", 1)[1]]
    return described["content"]["application/json"]["schema"]


def conforms(spec: dict, method: str, path: str, response) -> None:
    """The response's body is valid against what the document says `path` answers with its status."""
    from openapi_schema_validator import OAS30ReadValidator

    schema = {**_response_schema(spec, method, path, response.status_code), "components": spec["components"]}
    errors = sorted(OAS30ReadValidator(schema).iter_errors(response.json), key=str)
    assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])


def test_real_responses_are_what_the_document_describes(client, tenant):
    from tests.e2e.test_invoices_api import advance, send

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
    assert key["provider"]["nullable"] is True and key["revoked_at"]["nullable"] is True
