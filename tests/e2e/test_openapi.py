def test_the_openapi_description_is_generated_from_the_schemas(client):
    spec = client.get("/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {"/v1/bills", "/v1/bills/batch", "/v1/bills/{bill_id}", "/v1/providers", "/v1/customers",
            "/v1/tenant", "/v1/customers/{external_id}/trial"} <= set(spec["paths"])
    bill_input = spec["components"]["schemas"]["BillInput"]
    assert {"customer", "amount", "currency", "revenue_share"} <= set(bill_input["required"])
    assert spec["components"]["schemas"]["TenantUpdate"]["properties"]["period_anchor_day"]["maximum"] == 28
