"""Payment terms (PLATFORMA: "due 14 days after the invoice"): a tenant's `payment_terms_days`
in each mode moves its invoices' due date, and with it the instant they are charged; null keeps
the charge day. Sydney, anchor 25: the period 2026-10-25 closes at 2026-11-24T13:00Z, its
invoices are issued on 25 November."""
from __future__ import annotations

import pytest

from tests.support.charges import _invoice
from tests.support.cli import as_json
from tests.support.invoicing import advance, send


def _terms(tenant, days, mode="test"):
    response = tenant.admin[mode].patch("/v1/tenant", {"payment_terms_days": days})
    assert response.status_code == 200, response.json
    return response.json


def test_without_terms_an_invoice_is_due_on_the_charge_day_after_the_close(tenant):
    assert tenant.admin["test"].get("/v1/tenant").json["payment_terms_days"] is None
    tenant.customer("cust-1")
    send(tenant.provider(), "b1")
    advance(tenant)
    assert _invoice(tenant)["due_date"] == "2026-12-02"


@pytest.mark.parametrize("days, due", [(14, "2026-12-09"), (0, "2026-11-25"), (365, "2027-11-25")])
def test_terms_make_an_invoice_due_that_many_days_after_it_is_issued(tenant, days, due):
    assert _terms(tenant, days)["payment_terms_days"] == days
    tenant.customer("cust-1")
    send(tenant.provider(), "b1")
    advance(tenant)
    invoice = _invoice(tenant)
    assert invoice["due_date"] == due
    event = tenant.admin["test"].get("/v1/events", query_string={"type": "invoice.finalized"}).json["data"][0]
    assert event["data"]["object"]["due_date"] == due


def test_the_charge_follows_the_terms_to_the_charge_hour_of_the_due_date(stripe_tenant, localstripe):
    from tests.localstripe_server import CARD_OK
    from tests.support.charges import _customer_paying_with

    _terms(stripe_tenant, 14)
    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    send(stripe_tenant.provider(), "b1")
    advance(stripe_tenant)
    invoice = _invoice(stripe_tenant)
    assert invoice["next_charge_at"] == "2026-12-08T22:00:00+00:00"  # 9 December, 09:00 in Sydney
    advance(stripe_tenant, "2026-12-08T21:59:59+00:00")
    assert _invoice(stripe_tenant)["status"] == "open"  # not on the charge day (2 December) any more
    advance(stripe_tenant, "2026-12-08T22:00:00+00:00")
    paid = _invoice(stripe_tenant)
    assert (paid["status"], paid["paid_at"]) == ("paid", "2026-12-08T22:00:00+00:00")


def test_a_draft_finalized_later_is_due_the_terms_after_its_finalization(tenant):
    _terms(tenant, 14)
    assert tenant.admin["test"].patch("/v1/tenant", {"invoice_review": "manual"}).status_code == 200
    tenant.customer("cust-1")
    send(tenant.provider(), "b1")
    advance(tenant, "2026-11-30T00:00:00+00:00")  # 30 November in Sydney
    draft = _invoice(tenant)
    assert draft["status"] == "draft"
    finalized = tenant.admin["test"].post(f"/v1/invoices/{draft['id']}/finalize")
    assert finalized.status_code == 200, finalized.json
    assert finalized.json["due_date"] == "2026-12-14"  # issued 30 November + 14 days


def test_a_draft_finalized_without_terms_keeps_the_due_date_of_its_close(tenant):
    assert tenant.admin["test"].patch("/v1/tenant", {"invoice_review": "manual"}).status_code == 200
    tenant.customer("cust-1")
    send(tenant.provider(), "b1")
    advance(tenant, "2026-11-30T00:00:00+00:00")
    draft = _invoice(tenant)
    finalized = tenant.admin["test"].post(f"/v1/invoices/{draft['id']}/finalize").json
    assert finalized["due_date"] == draft["due_date"] == "2026-12-02"


def test_terms_change_only_invoices_issued_afterwards(tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1")
    advance(tenant)
    _terms(tenant, 30)
    assert _invoice(tenant)["due_date"] == "2026-12-02"


@pytest.mark.parametrize("value", [-1, 366, "14", 14.5, True])
def test_bad_payment_terms_are_refused_naming_the_field_and_nothing_changes(tenant, value):
    admin = tenant.admin["test"]
    _terms(tenant, 7)
    response = admin.patch("/v1/tenant", {"payment_terms_days": value})
    assert response.status_code == 422, response.json
    assert "payment_terms_days" in response.json["error"]["fields"]
    assert admin.get("/v1/tenant").json["payment_terms_days"] == 7


def test_terms_are_set_per_mode_and_null_goes_back_to_the_charge_day(tenant):
    _terms(tenant, 14, mode="test")
    assert tenant.admin["live"].get("/v1/tenant").json["payment_terms_days"] is None
    _terms(tenant, 30, mode="live")
    assert tenant.admin["test"].get("/v1/tenant").json["payment_terms_days"] == 14
    assert _terms(tenant, None, mode="test")["payment_terms_days"] is None
    assert tenant.admin["live"].get("/v1/tenant").json["payment_terms_days"] == 30


def test_the_command_line_sets_terms_and_refuses_bad_ones(cli, cli_tenant):
    tenant_id = cli_tenant["id"]
    shown = as_json(cli("tenants", "update", tenant_id, "--mode", "test", "--payment-terms-days", "14", "--json"))
    assert shown["payment_terms_days"] == 14
    refused = cli("tenants", "update", tenant_id, "--mode", "test", "--payment-terms-days", "400", exit_code=2)
    assert "--payment-terms-days" in refused.output
    refused = cli("tenants", "update", tenant_id, "--mode", "test", "--payment-terms-days", "soon", exit_code=2)
    assert "--payment-terms-days" in refused.output
    shown = as_json(cli("tenants", "update", tenant_id, "--mode", "test", "--payment-terms-days", "none", "--json"))
    assert shown["payment_terms_days"] is None
    assert as_json(cli("tenants", "show", tenant_id, "--json"))["live"]["payment_terms_days"] is None
