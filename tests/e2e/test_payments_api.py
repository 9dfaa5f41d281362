"""Payments through the API: reading attempts and recorded payments (scoped to a tenant and a
mode), charging an invoice now against localstripe, recording money received outside Stripe
(partial, complete, overpaid into a credit that the next invoice applies), and the conflicts."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.localstripe_server import CARD_DECLINED, CARD_OK
from tests.support.charges import _customer_paying_with, _intents_of
from tests.support.invoicing import advance, send

RECEIVED = {"method": "bank_transfer", "reference": "TRF-0001", "received_on": "2026-11-26"}


def _open_invoice(tenant, external_id: str = "cust-1") -> dict:
    [invoice] = tenant.admin["test"].get("/v1/invoices", query_string={"customer": external_id}).json["data"]
    assert invoice["status"] == "open", invoice
    return invoice


@pytest.fixture
def billed(tenant):
    """A tenant without Stripe whose customer cust-1 has an open invoice of 120.00 AUD."""
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", customer="cust-1", amount="120.00")
    advance(tenant)  # the period closes; the charge instant (2026-12-01T22:00Z) is not reached
    tenant.invoice = _open_invoice(tenant)
    return tenant


def _pay(tenant, invoice_id: str, amount: str, **fields):
    return tenant.admin["test"].post(f"/v1/invoices/{invoice_id}/payments", {**RECEIVED, "amount": amount, **fields})


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.json
    assert response.json["error"]["code"] == code, response.json
    return response.json["error"]


# --- reading ------------------------------------------------------------------------------------

def test_payments_are_listed_filtered_and_seen_only_by_their_tenant_and_mode(stripe_tenant, localstripe, make_tenant):
    admin = stripe_tenant.admin["test"]
    carded = _customer_paying_with(stripe_tenant, localstripe, CARD_OK, "cust-1")
    stripe_tenant.customer("cust-2")
    provider = stripe_tenant.provider()
    send(provider, "b1", customer="cust-1", amount="120.00")
    send(provider, "b2", customer="cust-2", amount="80.00")
    advance(stripe_tenant)
    by_card, by_transfer = _open_invoice(stripe_tenant, "cust-1"), _open_invoice(stripe_tenant, "cust-2")
    charged = admin.post(f"/v1/invoices/{by_card['id']}/pay").json["payment"]
    recorded = _pay(stripe_tenant, by_transfer["id"], "30.00").json["payment"]

    def ids(**query):
        response = admin.get("/v1/payments", query_string=query)
        assert response.status_code == 200, response.json
        return [p["id"] for p in response.json["data"]]

    assert ids() == [recorded["id"], charged["id"]]  # newest first
    assert ids(limit=1) == [recorded["id"]] and ids(starting_after=recorded["id"]) == [charged["id"]]
    assert ids(gateway="manual") == [recorded["id"]] and ids(gateway="stripe") == [charged["id"]]
    assert ids(customer="cust-2") == [recorded["id"]] and ids(customer=carded["id"]) == [charged["id"]]
    assert ids(invoice=by_card["id"]) == [charged["id"]]
    assert ids(status="succeeded") == [recorded["id"], charged["id"]] and ids(status="failed") == []
    listed = admin.get(f"/v1/invoices/{by_transfer['id']}/payments").json
    assert [p["id"] for p in listed["data"]] == [recorded["id"]] and listed["has_more"] is False
    shown = admin.get(f"/v1/payments/{recorded['id']}").json
    assert shown == recorded
    assert (shown["object"], shown["gateway"], shown["method"], shown["trigger"], shown["amount"],
            shown["reference"], shown["received_on"]) == (
        "payment", "manual", "bank_transfer", "recorded", "30.00", "TRF-0001", "2026-11-26")
    for query in ("status=paid", "gateway=paypal", "limit=0", "limit=101"):
        assert admin.get(f"/v1/payments?{query}").status_code == 422, query

    live, other = stripe_tenant.admin["live"], make_tenant().admin["test"]
    for caller in (live, other):  # another mode, another tenant: nothing to see
        assert caller.get("/v1/payments").json["data"] == []
        _error(caller.get(f"/v1/payments/{charged['id']}"), 404, "resource_missing")
        _error(caller.get(f"/v1/invoices/{by_card['id']}/payments"), 404, "resource_missing")
        _error(caller.post(f"/v1/invoices/{by_transfer['id']}/payments", {**RECEIVED, "amount": "1.00"}),
               404, "resource_missing")
        _error(caller.post(f"/v1/invoices/{by_transfer['id']}/pay"), 404, "resource_missing")
    assert other.get("/v1/payments", query_string={"invoice": by_card["id"]}).json["data"] == []
    assert admin.get(f"/v1/invoices/{by_transfer['id']}").json["amount_paid"] == "30.00"  # untouched by them
    for call in (lambda: provider.get("/v1/payments"), lambda: provider.get(f"/v1/payments/{charged['id']}"),
                 lambda: provider.get(f"/v1/invoices/{by_card['id']}/payments"),
                 lambda: provider.post(f"/v1/invoices/{by_transfer['id']}/payments", {**RECEIVED, "amount": "1.00"}),
                 lambda: provider.post(f"/v1/invoices/{by_transfer['id']}/pay")):
        _error(call(), 403, "wrong_role")  # providers see no invoices, nor their payments


# --- charging now -------------------------------------------------------------------------------

def test_pay_now_charges_the_invoice_once_against_localstripe(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    send(stripe_tenant.provider(), "b1", amount="120.00")
    advance(stripe_tenant)
    invoice = _open_invoice(stripe_tenant)
    response = stripe_tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["invoice"]["id"] == invoice["id"] and body["invoice"]["status"] == "paid"
    assert body["invoice"]["amount_paid"] == "120.00" and body["invoice"]["amount_remaining"] == "0.00"
    assert body["invoice"]["paid_at"] == "2026-11-25T00:00:00+00:00" and body["invoice"]["lines"]
    payment = body["payment"]
    assert (payment["status"], payment["gateway"], payment["trigger"], payment["amount"]) == (
        "succeeded", "stripe", "operator", "120.00")
    intents = _intents_of(localstripe, invoice["id"])
    assert [i.id for i in intents] == [payment["stripe_payment_intent"]] and intents[0].amount == 12000
    _error(stripe_tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay"), 409, "invoice_not_payable")
    assert len(_intents_of(localstripe, invoice["id"])) == 1


def test_pay_now_with_a_declined_card_answers_the_failed_attempt(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_DECLINED)
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant)
    invoice = _open_invoice(stripe_tenant)
    body = stripe_tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay").json
    assert body["payment"]["status"] == "failed" and body["payment"]["failure_code"]
    assert body["invoice"]["status"] == "open" and body["invoice"]["collection"] == "retrying"


def test_pay_now_needs_a_gateway_and_a_payment_method(billed, localstripe):
    no_stripe = billed.admin["test"].post(f"/v1/invoices/{billed.invoice['id']}/pay")
    assert "No Stripe settings" in _error(no_stripe, 409, "no_payment_gateway")["message"]
    assert billed.admin["test"].patch("/v1/tenant", {
        "stripe_secret_key": "sk_test_aggregator4242", "stripe_api_base": localstripe.url}).status_code == 200
    no_card = billed.admin["test"].post(f"/v1/invoices/{billed.invoice['id']}/pay")  # Stripe set now, no card
    assert "cust-1" in _error(no_card, 409, "no_payment_gateway")["message"]
    assert _open_invoice(billed)["collection"] == "scheduled"  # its schedule is left as it was


def test_pay_now_with_nothing_left_to_pay_marks_the_invoice_paid(tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="-10.00", revenue_share=False)
    advance(tenant)
    invoice = _open_invoice(tenant)
    assert invoice["amount_due"] == "0.00"
    body = tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay").json
    assert body["invoice"]["status"] == "paid" and body["payment"] is None
    _error(_pay(tenant, invoice["id"], "1.00"), 409, "invoice_not_payable")


def _pending_attempt(app, invoice: dict, locked_for: timedelta) -> str:
    """A Stripe attempt of the invoice that another run saved and is sending (its lease runs)."""
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db, new_id
    from aggregator.payments.transitions import start_attempts

    with app.app_context():
        real_now = datetime.now(timezone.utc)
        row = {"id": new_id("pay"), "tenant_id": db.session.get(Invoice, invoice["id"]).tenant_id,
               "livemode": False, "invoice_id": invoice["id"], "customer_id": invoice["customer"],
               "gateway": "stripe", "method": "card", "trigger": "scheduled", "attempt": 1, "amount": 12000,
               "currency": "AUD", "stripe_customer_id": "cus_fake1", "stripe_payment_method": "pm_fake1",
               "created_at": real_now, "locked_until": real_now + locked_for, "requests": 0,
               "hard_decline": False, "amount_refunded": 0}
        start_attempts([row])
        db.session.commit()
        return row["id"]


def test_a_charge_being_sent_refuses_another_charge_and_a_recorded_payment(app, stripe_tenant):
    stripe_tenant.customer("cust-1", stripe_customer_id="cus_fake1", stripe_payment_method="pm_fake1")
    send(stripe_tenant.provider(), "b1", amount="120.00")
    advance(stripe_tenant)
    invoice = _open_invoice(stripe_tenant)
    _pending_attempt(app, invoice, timedelta(minutes=5))
    _error(stripe_tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay"), 409, "payment_in_progress")
    _error(_pay(stripe_tenant, invoice["id"], "120.00"), 409, "payment_in_progress")
    assert _open_invoice(stripe_tenant)["amount_paid"] == "0.00"


class _RefusingStripe(BaseHTTPRequestHandler):
    """A Stripe that refuses every key (401), as with a revoked secret key."""

    def _refuse(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"type": "invalid_request_error",
                                     "message": "Invalid API Key provided: sk_test_****4242"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _refuse

    def log_message(self, *args):
        pass


def test_a_misconfigured_gateway_is_a_conflict_with_a_classified_reason(tenant):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefusingStripe)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert tenant.admin["test"].patch("/v1/tenant", {
            "stripe_secret_key": "sk_test_revoked4242",
            "stripe_api_base": f"http://127.0.0.1:{server.server_address[1]}"}).status_code == 200
        tenant.customer("cust-1", stripe_customer_id="cus_fake1", stripe_payment_method="pm_fake1")
        send(tenant.provider(), "b1", amount="120.00")
        advance(tenant)
        invoice = _open_invoice(tenant)
        error = _error(tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay"), 409,
                       "payment_gateway_misconfigured")
        assert "stripe_authentication_failed: Stripe refused the API key." in error["message"]
        assert "Invalid API Key" not in error["message"]  # the answer's own words go to the log only
        assert _open_invoice(tenant)["status"] == "open"
    finally:
        server.shutdown()
        server.server_close()


# --- money received outside Stripe --------------------------------------------------------------

def test_a_partial_payment_leaves_the_rest_due_and_the_schedule_in_place(billed):
    admin, invoice = billed.admin["test"], billed.invoice
    response = _pay(billed, invoice["id"], "50.00")
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"], body["invoice"]["amount_remaining"]) == (
        "open", "50.00", "70.00")
    assert body["invoice"]["next_charge_at"] == invoice["next_charge_at"] == "2026-12-01T22:00:00+00:00"
    assert body["payment"]["status"] == "succeeded" and body["payment"]["amount"] == "50.00"
    assert body["credit"] is None
    paid = _pay(billed, invoice["id"], "70.00", method="cash", reference=None).json
    assert (paid["invoice"]["status"], paid["invoice"]["amount_paid"], paid["invoice"]["paid_at"]) == (
        "paid", "120.00", "2026-11-25T00:00:00+00:00")
    assert paid["invoice"]["next_charge_at"] is None and paid["credit"] is None
    assert len(admin.get(f"/v1/invoices/{invoice['id']}/payments").json["data"]) == 2
    events = admin.get("/v1/events", query_string={"limit": 100}).json["data"]
    paid_events = [e for e in events if e["type"] == "invoice.paid"]
    assert len(paid_events) == 1 and paid_events[0]["data"]["payment"] == paid["payment"]["id"]
    assert [e["type"] for e in events].count("payment.succeeded") == 2
    _error(_pay(billed, invoice["id"], "1.00"), 409, "invoice_not_payable")


def test_an_overpayment_becomes_a_credit_line_on_the_next_invoice(billed):
    admin, invoice = billed.admin["test"], billed.invoice
    body = _pay(billed, invoice["id"], "150.00").json
    assert (body["invoice"]["status"], body["invoice"]["amount_paid"]) == ("paid", "120.00")
    assert body["payment"]["amount"] == "150.00"
    credit = body["credit"]
    assert (credit["kind"], credit["amount"], credit["currency"], credit["source_invoice"], credit["source_payment"],
            credit["applied_invoice"]) == ("overpayment", "30.00", "AUD", invoice["id"], body["payment"]["id"], None)
    assert admin.get("/v1/customers/cust-1").json["credit_balance"] == "30.00"
    send(billed.provider(name="Next App"), "n1", amount="100.00")  # in the period 2026-11-25
    advance(billed, "2026-12-26T00:00:00+00:00")
    [following] = admin.get("/v1/invoices", query_string={"period": "2026-11-25"}).json["data"]
    credit_lines = [line for line in following["lines"] if line["kind"] == "credit"]
    assert [(line["amount"], line["description"]) for line in credit_lines] == [
        ("-30.00", f"Overpayment of invoice {invoice['number']}")]
    assert following["amount_due"] == "70.00"
    assert admin.get("/v1/customers/cust-1").json["credit_balance"] == "0.00"


@pytest.mark.parametrize("amount, message", [
    ("12.345", "at most 2 decimal places"), ("0.00", "positive"), ("-5.00", "positive"), ("abc", "decimal"),
    (12.5, "string"), ("1e3", "decimal"), ("1000000000001", "magnitude")])
def test_a_bad_amount_is_a_422_on_the_amount_field(billed, amount, message):
    response = _pay(billed, billed.invoice["id"], amount)
    assert response.status_code == 422, response.json
    fields = response.json["error"]["fields"]
    assert list(fields) == ["amount"] and message in fields["amount"][0].lower(), fields
    assert _open_invoice(billed)["amount_paid"] == "0.00"


@pytest.mark.parametrize("fields, field", [
    ({"method": "paypal"}, "method"), ({"method": "card"}, "method"), ({"received_on": None}, "received_on"),
    ({"received_on": "yesterday"}, "received_on"), ({"reference": "x" * 256}, "reference")])
def test_bad_payment_fields_are_a_422_naming_the_field(billed, fields, field):
    response = _pay(billed, billed.invoice["id"], "10.00", **fields)
    assert response.status_code == 422 and field in response.json["error"]["fields"], response.json


def test_a_recorded_payment_needs_an_open_invoice(billed):
    admin = billed.admin["test"]
    assert admin.post(f"/v1/invoices/{billed.invoice['id']}/void", {"reason": "issued by mistake"}).status_code == 200
    _error(_pay(billed, billed.invoice["id"], "10.00"), 409, "invoice_not_payable")
    _error(admin.post(f"/v1/invoices/{billed.invoice['id']}/pay"), 409, "invoice_not_payable")
    _error(_pay(billed, "inv_nope", "10.00"), 404, "resource_missing")


def test_an_invoice_with_payments_cannot_be_voided(billed):
    admin = billed.admin["test"]
    _pay(billed, billed.invoice["id"], "20.00")
    refused = admin.post(f"/v1/invoices/{billed.invoice['id']}/void", {"reason": "issued by mistake"})
    assert "refund" in _error(refused, 409, "invoice_has_payments")["message"]
    assert _open_invoice(billed)["status"] == "open"


def test_concurrent_recordings_never_count_more_than_was_due(app, billed, postgres_only):
    from tests.support.callers import Caller

    invoice, key = billed.invoice, billed.admin["test"].key
    answers = []

    def record():
        answers.append(_pay_with(Caller(app.test_client(), key), invoice["id"], "100.00"))

    threads = [threading.Thread(target=record) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409], [a.json for a in answers]
    after = billed.admin["test"].get(f"/v1/invoices/{invoice['id']}").json
    assert (after["status"], after["amount_paid"]) == ("paid", "120.00")
    assert billed.admin["test"].get("/v1/customers/cust-1").json["credit_balance"] == "80.00"


def _pay_with(caller, invoice_id: str, amount: str):
    return caller.post(f"/v1/invoices/{invoice_id}/payments", {**RECEIVED, "amount": amount})


# --- the command line ---------------------------------------------------------------------------

def test_the_command_line_lists_payments_and_charges_invoices(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="-10.00", revenue_share=False)
    tenant.customer("cust-2")
    send(tenant.provider(name="Other"), "b2", customer="cust-2", amount="40.00")
    advance(tenant)
    nothing_due, due = _open_invoice(tenant, "cust-1"), _open_invoice(tenant, "cust-2")
    recorded = _pay(tenant, due["id"], "15.00").json["payment"]
    runner = app.test_cli_runner()
    scope = ["--tenant", tenant.id, "--mode", "test"]

    listed = runner.invoke(args=["payments", "list", *scope, "--gateway", "manual", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [p["id"] for p in json.loads(listed.stdout)["data"]] == [recorded["id"]]
    assert recorded["id"] in runner.invoke(args=["payments", "list", *scope, "--customer", "cust-2"]).stdout
    shown = runner.invoke(args=["payments", "show", *scope, recorded["id"], "--json"])
    assert json.loads(shown.stdout)["amount"] == "15.00"

    charged = runner.invoke(args=["invoices", "charge", *scope, nothing_due["id"], due["id"], "--json"])
    assert charged.exit_code == 0, charged.output
    report = json.loads(charged.stdout)
    assert (report["paid_without_charge"], report["manual"]) == (1, 1)  # no Stripe: the other waits
    assert tenant.admin["test"].get(f"/v1/invoices/{nothing_due['id']}").json["status"] == "paid"
    missing = runner.invoke(args=["invoices", "charge", *scope, "inv_nope"])
    assert missing.exit_code == 1 and "No such invoice" in missing.output


def test_a_card_payment_awaiting_authentication_refuses_a_recorded_payment(stripe_tenant, localstripe):
    """The customer could still authenticate it: recording a transfer too would pay twice."""
    from tests.localstripe_server import CARD_3DS

    _customer_paying_with(stripe_tenant, localstripe, CARD_3DS)
    send(stripe_tenant.provider(), "b1", amount="120.00")
    advance(stripe_tenant, "2026-12-20T00:00:00+00:00")
    invoice = _open_invoice(stripe_tenant)
    assert invoice["collection"] == "action_required"
    error = _error(_pay(stripe_tenant, invoice["id"], "120.00"), 409, "payment_in_progress")
    assert "authentication" in error["message"]
    assert _open_invoice(stripe_tenant)["amount_paid"] == "0.00"
