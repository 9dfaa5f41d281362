"""A whole invoicing cycle in test mode, driven by the tenant's test clock."""
from __future__ import annotations

import pytest

from tests.support.invoicing import AFTER_END, advance, pdf_text, send


@pytest.fixture
def shop(tenant):
    tenant.admin["test"].patch("/v1/tenant", {"default_tax_rate": "0.10", "legal_name": "Acme Marketplace Pty Ltd",
                                              "address": {"line1": "1 George St", "city": "Sydney", "country": "AU"}})
    tenant.customer("cust-1", name="Customer One")
    tenant.apps = [tenant.provider(name="Accounting App"), tenant.provider(name="SMS Gateway")]
    return tenant


def test_a_customer_gets_one_invoice_for_the_bills_of_every_app(shop):
    accounting, sms = shop.apps
    first = send(accounting, "a1", amount="100.00", description="Pro plan")
    send(sms, "s1", amount="5.50", revenue_share=False, description="SMS pack")
    assert first["period"] == "2026-10-25"
    ran = advance(shop)["ran"]
    assert ran["closes"][0] == {"period": "2026-10-25", "status": "closed", "invoices_created": 1,
                                "customers_waiting": 0, "errors": [], "missing_fx_rates": [], "pdfs": None}
    assert ran["pdfs"] == {"rendered": 1, "failed": 0}
    invoices = shop.admin["test"].get("/v1/invoices?period=2026-10-25").json["data"]
    assert len(invoices) == 1
    invoice = invoices[0]
    assert invoice["status"] == "open" and invoice["number"].startswith("INV-2026-")
    assert (invoice["subtotal"], invoice["tax"], invoice["total"], invoice["amount_due"]) == (
        "105.50", "10.55", "116.05", "116.05")
    assert invoice["due_date"] == "2026-12-02"
    assert invoice["period"] == {"start": "2026-10-25", "end": "2026-11-24"}
    assert [(line["provider"], line["amount"]) for line in invoice["lines"]] == sorted(
        [(accounting.id, "100.00"), (sms.id, "5.50")])
    assert shop.apps[0].get(f"/v1/bills/{first['id']}").json["status"] == "invoiced"
    text = pdf_text(shop, invoice)
    for expected in (invoice["number"], "Accounting App", "SMS Gateway", "Pro plan", "SMS pack",
                     "$116.05", "Acme Marketplace Pty Ltd", "Customer One", "Page 1 of 1"):
        assert expected in text, expected
    assert "revenue" not in text.lower()  # the customer never sees the split


def test_closing_before_the_period_ends_is_a_conflict(shop):
    send(shop.apps[0], "a1")
    response = shop.admin["test"].post("/v1/periods/2026-10-25/close")
    assert response.status_code == 409 and response.json["error"]["code"] == "period_not_ended"
    assert shop.admin["test"].post("/v1/periods/2026-10-26/close").status_code == 404


def test_closing_twice_changes_nothing(shop):
    send(shop.apps[0], "a1")
    advance(shop)
    again = shop.admin["test"].post("/v1/periods/2026-10-25/close").json
    assert again["invoices_created"] == 0 and again["status"] == "closed"
    assert len(shop.admin["test"].get("/v1/invoices").json["data"]) == 1


def test_a_bill_received_after_the_period_ended_goes_to_the_next_period(shop):
    send(shop.apps[0], "a1")
    advance(shop)
    late = send(shop.apps[0], "a2")
    assert late["period"] == "2026-11-25" and late["status"] == "pending"


def test_invoice_numbers_are_gapless_per_tenant_and_mode(shop):
    for i in range(3):
        shop.customer(f"c{i}")
        send(shop.apps[0], f"k{i}", customer=f"c{i}")
    advance(shop)
    numbers = sorted(i["number"] for i in shop.admin["test"].get("/v1/invoices").json["data"])
    assert numbers == ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"]


def test_foreign_currency_bills_wait_for_a_rate_then_convert(shop):
    send(shop.apps[0], "usd", amount="10.00", currency="USD", description="Seats")
    send(shop.apps[0], "aud", amount="1.00")
    report = advance(shop)["ran"]["closes"][0]
    assert report["status"] == "closing" and report["missing_fx_rates"] == [{"base": "USD", "quote": "AUD"}]
    assert shop.admin["test"].get("/v1/invoices").json["data"] == []
    admin = shop.admin["test"]
    assert admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.52345",
                                      "effective_date": "2026-11-01"}).status_code == 200
    admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "9", "effective_date": "2026-11-25"})
    report = admin.post("/v1/periods/2026-10-25/close").json
    assert report["status"] == "closed" and report["invoices_created"] == 1
    invoice = admin.get("/v1/invoices").json["data"][0]
    converted = next(line for line in invoice["lines"] if line["original_currency"] == "USD")
    assert (converted["amount"], converted["original_amount"], converted["fx_rate"]) == ("15.23", "10.00", "1.52345")
    assert "$10.00 at 1.52345" in pdf_text(shop, invoice)


def test_converted_bills_are_rounded_line_by_line_and_the_lines_add_up(shop):
    """0.05 USD at 1.5 is 0.075 -> 0.08 AUD per bill: three such bills are 0.24, not 0.23 (the
    close sums equal foreign amounts and converts each once); the derived lines show the same."""
    admin = shop.admin["test"]
    admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.5", "effective_date": "2026-10-01"})
    admin.put("/v1/fx_rates", {"base": "EUR", "quote": "AUD", "rate": "1.65", "effective_date": "2026-10-01"})
    for i in range(3):
        send(shop.apps[i % 2], f"usd{i}", amount="0.05", currency="USD")
    send(shop.apps[0], "usd-big", amount="10.01", currency="USD")  # 15.015 -> 15.02
    send(shop.apps[1], "eur", amount="-1.00", currency="EUR")  # -1.65
    send(shop.apps[0], "aud", amount="2.00")
    assert advance(shop)["ran"]["closes"][0]["status"] == "closed"
    invoice = admin.get("/v1/invoices").json["data"][0]
    assert invoice["subtotal"] == "15.61"  # 0.24 + 15.02 - 1.65 + 2.00
    assert sorted(line["amount"] for line in invoice["lines"]) == sorted(
        ["0.08", "0.08", "0.08", "15.02", "-1.65", "2.00"])
    assert {line["fx_rate"] for line in invoice["lines"] if line["original_currency"]} == {"1.5", "1.65"}
    assert admin.get(f"/v1/invoices/{invoice['id']}").json == invoice


def test_fx_rates_are_validated(shop):
    admin = shop.admin["test"]
    for body, field in [({"base": "USD", "quote": "AUD", "rate": "0", "effective_date": "2026-11-01"}, "rate"),
                        ({"base": "USD", "quote": "AUD", "rate": 1.5, "effective_date": "2026-11-01"}, "rate"),
                        ({"base": "USD", "quote": "ZZZ", "rate": "1.5", "effective_date": "2026-11-01"}, "quote"),
                        ({"base": "AUD", "quote": "AUD", "rate": "1", "effective_date": "2026-11-01"}, "quote")]:
        response = admin.put("/v1/fx_rates", body)
        assert response.status_code == 422 and field in response.json["error"]["fields"], body


def test_a_negative_total_is_invoiced_at_zero_and_carried_as_credit(shop):
    send(shop.apps[0], "refund", amount="-30.00", description="Refund")
    send(shop.apps[1], "sms", amount="10.00", revenue_share=False)
    advance(shop)
    first = shop.admin["test"].get("/v1/invoices").json["data"][0]
    assert (first["subtotal"], first["tax"], first["total"], first["carried_credit"]) == (
        "-20.00", "0.00", "0.00", "20.00")
    send(shop.apps[0], "next", amount="50.00")
    advance(shop, "2026-12-26T00:00:00+00:00")
    second = shop.admin["test"].get("/v1/invoices?period=2026-11-25").json["data"][0]
    credit = [line for line in second["lines"] if line["kind"] == "credit"]
    assert [c["amount"] for c in credit] == ["-20.00"] and first["number"] in credit[0]["description"]
    assert (second["subtotal"], second["tax"], second["total"]) == ("30.00", "3.00", "33.00")


def test_tax_follows_the_customer_override_and_exemption(shop):
    shop.customer("exempt", tax_exempt=True)
    shop.customer("reduced", tax_rate="0.05")
    send(shop.apps[0], "e", customer="exempt", amount="100.00")
    send(shop.apps[0], "r", customer="reduced", amount="100.00")
    advance(shop)
    by_customer = {i["customer_external_id"]: i for i in shop.admin["test"].get("/v1/invoices").json["data"]}
    assert by_customer["exempt"]["tax"] == "0.00" and by_customer["reduced"]["tax"] == "5.00"


def test_manual_review_keeps_drafts_until_finalized(shop):
    admin = shop.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual"})
    send(shop.apps[0], "a1")
    advance(shop)
    draft = admin.get("/v1/invoices").json["data"][0]
    assert draft["status"] == "draft" and draft["number"] is None and draft["pdf_url"] is None
    assert admin.get(f"/v1/invoices/{draft['id']}/pdf").status_code == 404
    final = admin.post(f"/v1/invoices/{draft['id']}/finalize").json
    assert final["status"] == "open" and final["number"] == "INV-2026-000001" and final["pdf_url"]
    assert admin.post(f"/v1/invoices/{draft['id']}/finalize").json["number"] == final["number"]


def test_drafts_are_finalized_after_the_review_window(shop):
    admin = shop.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual", "auto_finalize_after_days": 3})
    send(shop.apps[0], "a1")
    advance(shop)
    assert advance(shop, "2026-11-28T01:00:00+00:00")["ran"]["finalized"] == 1
    assert admin.get("/v1/invoices").json["data"][0]["status"] == "open"


def test_voiding_releases_the_bills(shop):
    admin = shop.admin["test"]
    bill = send(shop.apps[0], "a1")
    advance(shop)
    invoice = admin.get("/v1/invoices").json["data"][0]
    refused = admin.post(f"/v1/invoices/{invoice['id']}/void", {})
    assert refused.status_code == 422 and "reason" in refused.json["error"]["fields"]
    voided = admin.post(f"/v1/invoices/{invoice['id']}/void", {"reason": "Billed in error"}).json
    assert voided["status"] == "void" and voided["void_reason"] == "Billed in error"
    assert voided["lines"] == invoice["lines"] and [line["bill"] for line in voided["lines"]] == [bill["id"]]
    released = shop.apps[0].get(f"/v1/bills/{bill['id']}").json
    assert released["status"] == "pending" and released["period"] == "2026-11-25"
    assert shop.apps[0].delete(f"/v1/bills/{bill['id']}").json["status"] == "cancelled"
    assert admin.get(f"/v1/invoices/{invoice['id']}").json["lines"] == invoice["lines"]  # frozen
    assert admin.post(f"/v1/invoices/{invoice['id']}/finalize").status_code == 409


def test_a_voided_invoices_bills_are_invoiced_again_in_the_next_period(shop):
    admin = shop.admin["test"]
    send(shop.apps[0], "refund", amount="-30.00", description="Refund")
    advance(shop)
    first = admin.get("/v1/invoices").json["data"][0]
    assert first["carried_credit"] == "30.00"
    admin.post(f"/v1/invoices/{first['id']}/void", {"reason": "Wrong customer"})
    send(shop.apps[1], "sms", amount="50.00", revenue_share=False)
    advance(shop, "2026-12-26T00:00:00+00:00")
    second = admin.get("/v1/invoices?period=2026-11-25").json["data"][0]
    assert sorted(line["amount"] for line in second["lines"]) == ["-30.00", "50.00"]
    assert (second["subtotal"], second["total"]) == ("20.00", "22.00")
    assert [line["kind"] for line in second["lines"]] == ["bill", "bill"]  # the withdrawn credit is not applied


def test_bill_content_is_escaped_and_fetches_nothing(shop):
    hostile = ('<b>bold</b><img src="http://127.0.0.1:9/x.png"><img src="file:///etc/passwd">'
               '<link rel="stylesheet" href="file:///etc/passwd">')
    send(shop.apps[0], "evil", description=hostile)
    assert advance(shop)["ran"]["pdfs"] == {"rendered": 1, "failed": 0}
    invoice = shop.admin["test"].get("/v1/invoices").json["data"][0]
    text = pdf_text(shop, invoice)
    assert "<b>bold</b>" in text.replace("\n", "") or "<b>bold</b><img" in text.replace("\n", "")
    assert "root:" not in text


def test_the_pdf_does_not_change_once_finalized(shop, app):
    send(shop.apps[0], "a1")
    advance(shop)
    admin = shop.admin["test"]
    invoice = admin.get("/v1/invoices").json["data"][0]
    before = admin.get(f"/v1/invoices/{invoice['id']}/pdf").data
    import hashlib
    assert hashlib.sha256(before).hexdigest() == invoice["pdf_sha256"]
    admin.patch("/v1/tenant", {"legal_name": "Renamed Pty Ltd"})
    advance(shop, "2026-11-26T00:00:00+00:00")
    assert admin.get(f"/v1/invoices/{invoice['id']}/pdf").data == before


def test_the_test_clock_moves_only_forward_and_only_in_test_mode(shop):
    admin = shop.admin["test"]
    now = admin.get("/v1/test_clock").json["now"]
    assert advance(shop)["now"] == AFTER_END and now != AFTER_END
    response = admin.post("/v1/test_clock/advance", {"to": "2026-01-01T00:00:00+00:00"})
    assert response.status_code == 409 and response.json["error"]["code"] == "clock_backwards" \
        and "to" in response.json["error"]["fields"]
    assert shop.admin["live"].get("/v1/test_clock").status_code == 404
    assert shop.admin["live"].post("/v1/test_clock/advance", {"to": AFTER_END}).status_code == 404


def test_invoices_are_isolated_between_tenants_and_modes(shop, make_tenant):
    send(shop.apps[0], "a1")
    advance(shop)
    invoice = shop.admin["test"].get("/v1/invoices").json["data"][0]
    for other in (make_tenant().admin["test"], shop.admin["live"]):
        assert other.get(f"/v1/invoices/{invoice['id']}").status_code == 404
        assert other.get(f"/v1/invoices/{invoice['id']}/pdf").status_code == 404
        assert other.get("/v1/invoices").json["data"] == []
    assert shop.apps[0].get("/v1/invoices").status_code == 403


def test_operators_see_each_period_its_state_and_whether_its_close_is_due(shop):
    admin = shop.admin["test"]
    send(shop.apps[0], "p1")
    [period] = admin.get("/v1/periods").json["data"]
    assert period == {"object": "period", "start": "2026-10-25", "end": "2026-11-24",
                      "start_at": "2026-10-24T13:00:00+00:00", "end_at": "2026-11-24T13:00:00+00:00",
                      "status": "open", "ended": False, "livemode": False, "closing_at": None, "closed_at": None,
                      "waiting": None}
    advance(shop)  # past the end: the close runs
    send(shop.apps[0], "p2")  # received in the next period
    page = admin.get("/v1/periods?limit=1").json
    assert [p["start"] for p in page["data"]] == ["2026-11-25"] and page["has_more"]
    older = admin.get("/v1/periods?starting_after=2026-11-25").json
    assert [(p["start"], p["status"], p["ended"]) for p in older["data"]] == [("2026-10-25", "closed", True)]
    assert older["data"][0]["closed_at"] and not older["has_more"]
    assert [p["start"] for p in admin.get("/v1/periods?status=open").json["data"]] == ["2026-11-25"]

    nothing_yet = admin.get("/v1/periods/2026-12-25").json  # no record: open, as the calendar says
    assert (nothing_yet["status"], nothing_yet["ended"], nothing_yet["end"]) == ("open", False, "2027-01-24")
    assert admin.get("/v1/periods/2026-10-25").json["status"] == "closed"
    assert admin.get("/v1/periods/2026-12-26").status_code == 404
    assert admin.get("/v1/periods/not-a-date").status_code == 404
    assert admin.get("/v1/periods?status=paid").status_code == 422
    assert admin.get("/v1/periods?starting_after=soon").status_code == 422
    assert shop.admin["live"].get("/v1/periods").json["data"] == []  # test-mode periods stay in test mode
    assert shop.apps[0].get("/v1/periods").status_code == 403


def test_a_total_no_currency_can_hold_makes_its_customer_wait_and_is_reported(shop):
    # On PostgreSQL the close's sums come back as numeric; this one, converted, exceeds any AUD amount.
    send(shop.apps[0], "usd", amount="1000000000000.00", currency="USD", description="Huge")
    admin = shop.admin["test"]
    assert admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1000000",
                                      "effective_date": "2026-10-01"}).status_code == 200
    report = advance(shop)["ran"]["closes"][0]
    assert report["customers_waiting"] == 1 and "exceeds the largest" in report["errors"][0]
