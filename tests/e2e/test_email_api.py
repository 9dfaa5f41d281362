"""Email settings and the deliveries API."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance, send


@pytest.mark.parametrize("field", ["email_from", "email_reply_to", "finance_email"])
@pytest.mark.parametrize("value", ["not-an-address", "a@b@c.example", "Name <a@b.example>", "é@b.example",
                                   "x@y.example\r\nBcc: z@w.example", "a@"])
def test_an_email_setting_that_is_not_one_address_is_refused_with_its_field(tenant, field, value):
    response = tenant.admin["test"].patch("/v1/tenant", {field: value})
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"]


def test_a_sender_name_with_a_line_break_is_refused(tenant):
    response = tenant.admin["test"].patch("/v1/tenant", {"email_from_name": "Market\r\nBcc: x@y.example"})
    assert response.status_code == 422 and "email_from_name" in response.json["error"]["fields"]


def test_email_settings_are_kept_per_mode_and_can_be_cleared(tenant):
    admin = tenant.admin["test"]
    response = admin.patch("/v1/tenant", {"email_from_name": "Market Ltd", "email_from": "billing@market.example",
                                          "email_reply_to": "help@market.example",
                                          "finance_email": "finance@market.example"})
    assert response.status_code == 200 and response.json["finance_email"] == "finance@market.example"
    assert tenant.admin["live"].get("/v1/tenant").json["finance_email"] is None
    assert admin.patch("/v1/tenant", {"finance_email": None}).json["finance_email"] is None


def test_a_customer_email_must_be_one_address(tenant):
    response = tenant.admin["test"].post("/v1/customers", {"external_id": "c", "email": "a@b.example, c@d.example"})
    assert response.status_code == 422 and "email" in response.json["error"]["fields"]


def test_deliveries_are_listed_filtered_and_shown_to_admin_keys_of_their_mode_only(app, tenant):
    from aggregator import due
    from aggregator.events.dispatch import DISPATCH_QUEUE

    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"finance_email": "finance@market.example"})
    tenant.customer("cust-1", email="ann@example.com")
    provider = tenant.provider()
    send(provider, "k1")
    advance(tenant)
    with app.app_context():
        due.drain(DISPATCH_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(tenant.id, False))
    listed = admin.get("/v1/email_deliveries").json
    assert listed["has_more"] is False and len(listed["data"]) == 2
    invoice_email = next(d for d in listed["data"] if d["kind"] == "invoice")
    assert invoice_email["object"] == "email_delivery" and invoice_email["status"] == "pending"
    assert invoice_email["recipient"] == "ann@example.com" and invoice_email["event"].startswith("evt_")
    assert admin.get(f"/v1/email_deliveries/{invoice_email['id']}").json == invoice_email
    assert [d["id"] for d in admin.get(f"/v1/email_deliveries?invoice={invoice_email['invoice']}").json["data"]] \
        == [invoice_email["id"]]
    assert [d["kind"] for d in admin.get("/v1/email_deliveries?recipient=finance@market.example").json["data"]] \
        == ["period_summary"]
    assert admin.get(f"/v1/email_deliveries?event={invoice_email['event']}").json["data"] == [invoice_email]
    assert admin.get("/v1/email_deliveries?status=sent").json["data"] == []
    page = admin.get("/v1/email_deliveries?limit=1").json
    rest = admin.get(f"/v1/email_deliveries?limit=1&starting_after={page['data'][0]['id']}").json
    assert page["has_more"] and {page["data"][0]["id"], rest["data"][0]["id"]} == {d["id"] for d in listed["data"]}

    assert admin.get("/v1/email_deliveries?status=lost").status_code == 422
    assert tenant.admin["live"].get(f"/v1/email_deliveries/{invoice_email['id']}").status_code == 404
    assert tenant.admin["live"].get("/v1/email_deliveries").json["data"] == []
    assert provider.get("/v1/email_deliveries").status_code == 403
