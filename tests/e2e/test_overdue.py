"""Overdue invoices: an invoice still open at the end of its due date (the tenant's time zone)
becomes overdue once: `overdue_at`, one `invoice.overdue` event (webhooks may subscribe to it),
one email to the customer (unless the tenant's notification settings say not), and it is listed
by `GET /v1/invoices?overdue=true`. Sydney, anchor 25: the period 2026-10-25's invoices are due
on 2 December (charge day 2), whose end is 2026-12-02T13:00Z. The tenant has no Stripe key:
its invoices wait for a recorded payment."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.charges import _invoice
from tests.support.cli import as_json
from tests.support.invoicing import advance, send
from tests.support.mail import deliver, deliveries
from tests.support.webhooks import run_workers
from tests.webhook_receiver import Receiver

ANN = "ann@example.com"
END_OF_DUE_DATE = "2026-12-02T13:00:00+00:00"


@pytest.fixture
def shop(tenant):
    tenant.customer("cust-1", name="Ann", email=ANN)
    send(tenant.provider(), "b1", amount="50.00")
    return tenant


def _overdue_events(tenant, mode="test") -> list[dict]:
    return tenant.admin[mode].get("/v1/events", query_string={"type": "invoice.overdue", "limit": 100}).json["data"]


def _listed(tenant, overdue: str, mode="test") -> list[str]:
    response = tenant.admin[mode].get("/v1/invoices", query_string={"overdue": overdue, "limit": 100})
    assert response.status_code == 200, response.json
    return [i["id"] for i in response.json["data"]]


def _pay(tenant, invoice, amount="50.00", on="2026-11-30"):
    response = tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/payments", {
        "amount": amount, "method": "bank_transfer", "received_on": on})
    assert response.status_code == 201, response.json
    return response.json["invoice"]


def test_an_invoice_unpaid_at_the_end_of_its_due_date_becomes_overdue_once(shop):
    advance(shop, "2026-12-02T12:59:59+00:00")  # the last second of 2 December in Sydney
    invoice = _invoice(shop)
    assert (invoice["due_date"], invoice["overdue"], invoice["overdue_at"]) == ("2026-12-02", False, None)
    assert _listed(shop, "true") == [] and _overdue_events(shop) == []

    advance(shop, END_OF_DUE_DATE)
    invoice = _invoice(shop)
    assert (invoice["status"], invoice["overdue"], invoice["overdue_at"]) == ("open", True, END_OF_DUE_DATE)
    [event] = _overdue_events(shop)
    assert event["created"] == END_OF_DUE_DATE and event["data"]["object"]["overdue"] is True
    assert event["data"]["object"]["overdue_at"] == END_OF_DUE_DATE
    assert _listed(shop, "true") == [invoice["id"]] and _listed(shop, "false") == []

    advance(shop, "2027-01-10T00:00:00+00:00")  # and again, much later: nothing more
    assert len(_overdue_events(shop)) == 1 and _invoice(shop)["overdue_at"] == END_OF_DUE_DATE

    paid = _pay(shop, invoice, on="2027-01-09")
    assert (paid["status"], paid["overdue"], paid["overdue_at"]) == ("paid", False, END_OF_DUE_DATE)
    assert _listed(shop, "true") == [] and _listed(shop, "false") == [invoice["id"]]


def test_an_invoice_paid_by_its_due_date_never_becomes_overdue(shop):
    advance(shop)
    _pay(shop, _invoice(shop))
    advance(shop, "2027-01-10T00:00:00+00:00")
    assert _invoice(shop)["overdue_at"] is None and _overdue_events(shop) == []


def test_a_partly_paid_invoice_becomes_overdue(shop):
    advance(shop)
    _pay(shop, _invoice(shop), amount="20.00")
    advance(shop, END_OF_DUE_DATE)
    invoice = _invoice(shop)
    assert (invoice["overdue"], invoice["amount_remaining"]) == (True, "30.00")


def test_overdue_follows_the_payment_terms(shop):
    assert shop.admin["test"].patch("/v1/tenant", {"payment_terms_days": 14}).status_code == 200
    advance(shop, "2026-12-09T12:59:59+00:00")
    assert _invoice(shop)["overdue_at"] is None
    advance(shop, "2026-12-09T13:00:00+00:00")
    assert _invoice(shop)["overdue_at"] == "2026-12-09T13:00:00+00:00"


def test_the_customer_is_emailed_once_about_an_overdue_invoice(app, shop, smtp, mailer):
    advance(shop, END_OF_DUE_DATE)
    deliver(app, shop, mailer)
    deliver(app, shop, mailer)
    invoice = _invoice(shop)
    invoice_email, overdue = (r.message for r in smtp.handler.to(ANN))
    assert overdue["Subject"] == (f"[test] Invoice {invoice['number']} from Marketplace is overdue: A$50.00 was due "
                                  "on Dec 2, 2026")
    text = overdue.get_body(preferencelist=("plain",)).get_content()
    assert "Hello Ann," in text and "A$50.00 remains to pay" in text and "Due date:       Dec 2, 2026" in text
    html = overdue.get_body(preferencelist=("html",)).get_content()
    assert "A$50.00</strong> remains to pay" in html
    assert [d["kind"] for d in deliveries(shop, recipient=ANN)].count("invoice_overdue") == 1


def test_an_overdue_notice_is_not_sent_once_the_invoice_is_paid(app, shop, smtp, mailer):
    advance(shop, END_OF_DUE_DATE)
    _pay(shop, _invoice(shop), on="2026-12-03")  # before a worker dispatched the event
    deliver(app, shop, mailer)
    assert [r.message["Subject"].split(" ")[1] for r in smtp.handler.to(ANN)] == ["Invoice", "Receipt"]
    assert "invoice_overdue" not in [d["kind"] for d in deliveries(shop, recipient=ANN)]


def test_webhook_endpoints_may_subscribe_to_invoice_overdue(app, shop, clock):
    receiver = Receiver()
    try:
        response = shop.admin["test"].post("/v1/webhook_endpoints", {
            "url": receiver.url(), "enabled_events": ["invoice.overdue"]})
        assert response.status_code == 201, response.json
        advance(shop, END_OF_DUE_DATE)
        run_workers(app, shop)
        [received] = receiver.received
        body = json.loads(received.body)
        assert body["type"] == "invoice.overdue" and body["data"]["object"]["id"] == _invoice(shop)["id"]
    finally:
        receiver.close()


def _timeline(tenant) -> tuple[list, list]:
    """Each invoice's number, due date, when it became overdue, and each overdue event's."""
    return (sorted((i["number"], i["due_date"], i["overdue_at"]) for i in
                   tenant.admin["test"].get("/v1/invoices?limit=100").json["data"]),
            sorted((e["data"]["object"]["number"], e["created"]) for e in _overdue_events(tenant)))


def test_a_clock_jump_gives_the_same_overdue_invoices_as_daily_steps(make_tenant):
    shops = []
    for terms in (None, 3):
        for _ in ("jump", "steps"):
            tenant = make_tenant()
            assert tenant.admin["test"].patch("/v1/tenant", {"payment_terms_days": terms}).status_code == 200
            tenant.customer("cust-1")
            tenant.customer("cust-2")
            provider = tenant.provider()
            send(provider, "b1", customer="cust-1")
            send(provider, "b2", customer="cust-2")
            shops.append(tenant)
    end = datetime(2027, 1, 20, tzinfo=timezone.utc)
    for jumping, stepping in (shops[:2], shops[2:]):
        advance(jumping, end.isoformat())
        at = datetime(2026, 11, 10, 12, tzinfo=timezone.utc)
        while at < end:
            at = min(at + timedelta(hours=19), end)  # steps that fall at every hour of the day in turn
            advance(stepping, at.isoformat())
        invoices, events = _timeline(jumping)
        assert (invoices, events) == _timeline(stepping)
        assert len(invoices) == len(events) == 2 and all(overdue_at for _, _, overdue_at in invoices)


def test_overdue_is_per_mode(shop):
    advance(shop, END_OF_DUE_DATE)
    assert len(_listed(shop, "true")) == 1
    assert _listed(shop, "true", mode="live") == [] and _overdue_events(shop, mode="live") == []


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", ""])
def test_a_bad_overdue_filter_is_refused_naming_it(shop, value):
    response = shop.admin["test"].get("/v1/invoices", query_string={"overdue": value})
    assert response.status_code == 422, response.json
    assert "overdue" in response.json["error"]["fields"]


def test_the_command_line_lists_overdue_invoices(cli, shop):
    advance(shop, END_OF_DUE_DATE)
    scope = ["--tenant", shop.id, "--mode", "test"]
    listed = as_json(cli("invoices", "list", *scope, "--overdue", "--json"))
    assert [i["id"] for i in listed["data"]] == [_invoice(shop)["id"]] and listed["data"][0]["overdue"] is True
    assert as_json(cli("invoices", "list", *scope, "--not-overdue", "--json"))["data"] == []
    assert "True" in cli("invoices", "list", *scope, "--overdue").output


def test_a_draft_finalized_after_its_due_date_is_overdue_from_its_finalization(shop):
    response = shop.admin["test"].patch("/v1/tenant", {"invoice_review": "manual", "auto_finalize_after_days": 9})
    assert response.status_code == 200, response.json
    advance(shop, "2027-01-10T00:00:00+00:00")  # finalized at the close + 9 days: 3 December in Sydney
    invoice = _invoice(shop)
    assert (invoice["due_date"], invoice["finalized_at"]) == ("2026-12-02", "2026-12-03T13:00:00+00:00")
    assert invoice["overdue_at"] == invoice["finalized_at"]  # not before it was issued
    [event] = _overdue_events(shop)
    assert event["created"] == invoice["finalized_at"]


def test_an_overdue_notice_is_still_sent_when_the_invoice_was_written_off_first(app, shop, smtp, mailer):
    """The notice was due at the end of the due date; a write-off processed before a worker sent
    it (a worker down, a clock jump) does not unsay it: the invoice is still owed, and running on
    time would have sent it."""
    from aggregator.accounts.models import TenantSettings
    from aggregator.consolidate import transitions
    from aggregator.db import db

    advance(shop, END_OF_DUE_DATE)
    with app.app_context():
        settings = db.session.get(TenantSettings, (shop.id, False))
        assert transitions.mark_uncollectible(settings, _invoice(shop)["id"],
                                              datetime(2026, 12, 3, tzinfo=timezone.utc))
        db.session.commit()
    deliver(app, shop, mailer)
    assert [d["kind"] for d in deliveries(shop, recipient=ANN)].count("invoice_overdue") == 1
    assert [d["status"] for d in deliveries(shop, recipient=ANN) if d["kind"] == "invoice_overdue"] == ["sent"]
    assert sum(" is overdue: " in r.message["Subject"] for r in smtp.handler.to(ANN)) == 1
