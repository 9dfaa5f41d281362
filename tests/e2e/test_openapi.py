def test_the_openapi_description_is_generated_from_the_schemas(client):
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/v1/bills", "/v1/bills/batch", "/v1/bills/{bill_id}", "/v1/providers", "/v1/customers",
            "/v1/tenant", "/v1/customers/{external_id}/trial"} <= set(spec["paths"])
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
