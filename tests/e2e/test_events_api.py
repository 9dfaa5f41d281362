"""Events: written with the change they announce, listed and read like Stripe's Events API; a
provider key sees only those about it."""
from __future__ import annotations

from tests.support.invoicing import advance, send


def _all(caller, query: str = "") -> list[dict]:
    events, after = [], None
    while True:
        page = caller.get(f"/v1/events?limit=3{query}" + (f"&starting_after={after}" if after else "")).json
        events += page["data"]
        if not page["has_more"]:
            return events
        after = events[-1]["id"]


def test_a_close_announces_each_invoice_the_period_and_each_providers_bills(tenant):
    admin = tenant.admin["test"]
    tenant.customer("c1")
    tenant.customer("c2")
    accounting, sms = tenant.provider(name="Accounting"), tenant.provider(name="SMS", rate="0")
    send(accounting, "a1", customer="c1", amount="100.00")
    send(accounting, "a2", customer="c2", amount="20.00")
    send(sms, "s1", customer="c1", amount="5.50", revenue_share=False)
    advance(tenant)
    events = _all(admin)
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)  # newest first
    types = [e["type"] for e in reversed(events)]
    assert types[:4] == ["invoice.created", "invoice.finalized"] * 2  # each invoice, as it was made
    assert sorted(types[4:]) == sorted(["period.closed", "bills.invoiced", "bills.invoiced",
                                        "invoice.pdf_ready", "invoice.pdf_ready"])
    closed = next(e for e in events if e["type"] == "period.closed")
    assert closed["data"]["object"]["totals"] == [{"currency": "AUD", "invoices": 2, "total": "125.50",
                                                  "amount_due": "125.50"}]
    assert closed["created"] == "2026-11-24T13:00:00+00:00" and closed["livemode"] is False
    by_provider = {e["provider"]: e["data"]["object"] for e in events if e["type"] == "bills.invoiced"}
    assert by_provider[accounting.id]["currencies"] == [{
        "currency": "AUD", "bill_count": 2, "amount": "120.00", "revenue_share_amount": "120.00",
        "pass_through_amount": "0.00"}]
    assert by_provider[sms.id]["currencies"][0]["pass_through_amount"] == "5.50"
    assert admin.get(f"/v1/events/{closed['id']}").json == closed


def test_an_events_snapshot_is_the_object_as_the_api_shows_it_without_its_lines(tenant):
    admin = tenant.admin["test"]
    tenant.customer("c1")
    send(tenant.provider(), "a1", customer="c1")
    advance(tenant)
    [ready] = _all(admin, "&type=invoice.pdf_ready")
    invoice = admin.get(f"/v1/invoices/{ready['data']['object']['id']}").json
    assert ready["data"]["object"] == {k: v for k, v in invoice.items() if k != "lines"}
    [created] = _all(admin, "&type=invoice.created")
    assert created["data"]["object"]["pdf_url"] is None  # as it was when created
    voided = admin.post(f"/v1/invoices/{invoice['id']}/void", {"reason": "Wrong customer"}).json
    [void] = _all(admin, "&type=invoice.voided")
    assert void["data"]["object"] == {k: v for k, v in voided.items() if k != "lines"}
    assert {e["type"] for e in _all(admin, "&type=invoice.*")} == {
        "invoice.created", "invoice.finalized", "invoice.pdf_ready", "invoice.voided"}


def test_a_provider_sees_only_the_events_about_itself_and_nobody_sees_another_tenants(tenant, make_tenant):
    tenant.customer("c1")
    mine, theirs = tenant.provider(name="Mine"), tenant.provider(name="Theirs")
    send(mine, "m1", customer="c1")
    send(theirs, "t1", customer="c1")
    advance(tenant)
    seen = _all(mine)
    assert [(e["type"], e["provider"]) for e in seen] == [("bills.invoiced", mine.id)]
    others = [e for e in _all(tenant.admin["test"]) if e["provider"] != mine.id]
    for event in others:
        assert mine.get(f"/v1/events/{event['id']}").status_code == 404
    for stranger in (make_tenant().admin["test"], tenant.admin["live"]):
        assert stranger.get("/v1/events").json["data"] == []
        assert stranger.get(f"/v1/events/{seen[0]['id']}").status_code == 404
    assert tenant.admin["test"].get("/v1/events?limit=0").status_code == 422
