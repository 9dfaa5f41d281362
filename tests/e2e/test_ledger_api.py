"""GET /v1/ledger/accounts and /v1/ledger/journals: the books of the caller's tenant and mode
only; admin keys only."""
from __future__ import annotations

import pytest

from tests.support.ledger import post_invoice_and_payment


@pytest.fixture
def books_of(app, tenant, make_tenant):
    """The tenant's test-mode books, with other books beside them: its live mode and another tenant."""
    ids = post_invoice_and_payment(app, tenant.id)
    post_invoice_and_payment(app, tenant.id, livemode=True, suffix="live")
    post_invoice_and_payment(app, make_tenant(name="Other").id, suffix="other")
    return ids


def test_accounts_show_the_balances_of_this_tenant_and_mode(tenant, books_of):
    response = tenant.admin["test"].get("/v1/ledger/accounts")
    assert response.status_code == 200, response.json
    balances = {(a["account"], a["currency"]): a["balance"] for a in response.json["data"]}
    assert balances == {("cash", "AUD"): "120.00", ("customer_credit:cus_c1", "AUD"): "-10.00",
                        ("platform_revenue", "AUD"): "-30.00", ("provider_payable:prov_a", "AUD"): "-70.00",
                        ("receivable", "AUD"): "0.00", ("tax_payable", "AUD"): "-10.00"}
    [receivable] = tenant.admin["test"].get("/v1/ledger/accounts?account=receivable").json["data"]
    assert receivable == {"object": "ledger_account", "account": "receivable", "type": "asset",
                          "normal_side": "debit", "currency": "AUD", "debits": "110.00", "credits": "110.00",
                          "balance": "0.00"}
    assert [a["account"] for a in tenant.admin["test"].get("/v1/ledger/accounts?account=provider_payable")
            .json["data"]] == ["provider_payable:prov_a"]
    assert tenant.admin["test"].get("/v1/ledger/accounts?currency=usd").json["data"] == []


def test_journals_are_listed_newest_first_with_their_entries_and_filters(tenant, books_of):
    finalized_id, payment_id = books_of
    admin = tenant.admin["test"]
    page = admin.get("/v1/ledger/journals").json
    assert [j["id"] for j in page["data"]] == [payment_id, finalized_id] and page["has_more"] is False
    payment = page["data"][0]
    assert (payment["kind"], payment["object_type"], payment["object_id"], payment["livemode"]) == (
        "payment_received", "payment", "pay_1", False)
    assert payment["posted_at"] == "2026-11-25T09:00:00+00:00"
    assert payment["entries"] == [{"account": "cash", "currency": "AUD", "amount": "120.00"},
                                  {"account": "receivable", "currency": "AUD", "amount": "-110.00"},
                                  {"account": "customer_credit:cus_c1", "currency": "AUD", "amount": "-10.00"}]
    for query, expected in [("kind=invoice_finalized", [finalized_id]), ("object=pay_1", [payment_id]),
                            ("account=provider_payable", [finalized_id]), ("account=cash", [payment_id]),
                            ("posted_gte=2026-11-25T09:00:01Z", []), ("posted_lt=2026-11-25T09:00:01Z",
                                                                       [payment_id, finalized_id]),
                            (f"limit=1&starting_after={payment_id}", [finalized_id])]:
        assert [j["id"] for j in admin.get(f"/v1/ledger/journals?{query}").json["data"]] == expected, query
    assert admin.get(f"/v1/ledger/journals/{finalized_id}").json["object_id"] == "inv_1"


def test_other_tenants_and_modes_books_are_not_seen(tenant, books_of):
    finalized_id, _ = books_of
    live = tenant.admin["live"].get("/v1/ledger/journals").json["data"]
    assert {j["object_id"] for j in live} == {"inv_live", "pay_live"}
    assert tenant.admin["live"].get(f"/v1/ledger/journals/{finalized_id}").status_code == 404
    assert tenant.admin["test"].get("/v1/ledger/journals?object=inv_other").json["data"] == []


def test_the_ledger_needs_an_admin_key(tenant, books_of):
    provider = tenant.provider()
    assert provider.get("/v1/ledger/accounts").status_code == 403
    assert provider.get("/v1/ledger/journals").status_code == 403
    assert tenant.admin["test"].get("/v1/ledger/journals?kind=nonsense").status_code == 422


def test_the_responses_are_what_the_document_describes(client, tenant, books_of):
    from tests.support.openapi import conforms

    spec = client.get("/v1/openapi.json").json
    finalized_id, _ = books_of
    admin = tenant.admin["test"]
    for url, path in [("/v1/ledger/accounts", "/v1/ledger/accounts"), ("/v1/ledger/journals", "/v1/ledger/journals"),
                      (f"/v1/ledger/journals/{finalized_id}", "/v1/ledger/journals/{journal_id}"),
                      ("/v1/ledger/journals/jrn_nothing", "/v1/ledger/journals/{journal_id}")]:
        conforms(spec, "GET", path, admin.get(url))
