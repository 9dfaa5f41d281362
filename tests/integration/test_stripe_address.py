"""Where Stripe requests go (issue 16, server-side request forgery): the Stripe API address is
the operator's; a tenant's own test-mode address is refused unless the operator allows it, and
then checked as webhook addresses are, when it is set and at every connection (a name resolving
to a private address, whenever it does, is refused: no DNS rebinding); and whatever a Stripe API
address answers, its words never reach an API caller (payments, refunds, payouts, events)."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aggregator.payments.stripe import StripeGateways
from tests.support.invoicing import advance, send
from tests.support.payouts import _paid_and_built, _payout
from tests.support.payouts import _run_queue as _run_payouts

SECRET = "SECRET-internal-7d3f"


@pytest.fixture
def operator(app):
    """Run a test under other operator settings (the app's payment gateways replaced)."""
    adapters = app.extensions["aggregator.adapters"]

    def settings(**options) -> None:
        app.extensions["aggregator.adapters"] = adapters.replacing(payments=StripeGateways(adapters.vault, **options))

    yield settings
    app.extensions["aggregator.adapters"] = adapters


def _refused(response, code: str) -> dict:
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert error["code"] == code and list(error["fields"]) == ["stripe_api_base"], error
    return error


def _open_invoice(tenant) -> dict:
    tenant.customer("cust-1", stripe_customer_id="cus_A", stripe_payment_method="pm_A")
    send(tenant.provider(), "b1", amount="120.00")
    advance(tenant)  # closed: open, not yet due
    [invoice] = tenant.admin["test"].get("/v1/invoices").json["data"]
    assert invoice["status"] == "open", invoice
    return invoice


# --- the operator's settings ---------------------------------------------------------------------

def test_the_stripe_address_settings_come_from_the_environment_and_are_off_by_default(tmp_path):
    from aggregator.config import Settings

    default = Settings.from_env({"AGGREGATOR_VAR_DIR": str(tmp_path)})
    assert (default.stripe_api_base, default.stripe_tenant_api_base, default.webhooks_allow_private) == (
        None, False, False)
    chosen = Settings.from_env({"AGGREGATOR_VAR_DIR": str(tmp_path), "AGGREGATOR_STRIPE_API_BASE": "http://ls:8420",
                                "AGGREGATOR_STRIPE_TENANT_API_BASE": "1"})
    assert (chosen.stripe_api_base, chosen.stripe_tenant_api_base) == ("http://ls:8420", True)


def test_a_tenants_own_stripe_address_is_refused_unless_the_operator_allows_it(tenant, operator):
    operator(tenant_api_base=False, allow_private=True)
    error = _refused(tenant.admin["test"].patch("/v1/tenant", {"stripe_api_base": "https://stripe.example.com"}),
                     "tenant_api_base_disabled")
    assert "operator has not enabled" in error["message"]
    assert tenant.admin["test"].get("/v1/tenant").json["stripe"]["api_base"] is None
    assert tenant.admin["test"].patch("/v1/tenant", {"stripe_api_base": None}).status_code == 200  # clearing it is


@pytest.mark.parametrize("url", ["http://127.0.0.1:12111", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::1]:8080", "http://10.0.0.7/", "http://100.64.0.1/", "http://0.0.0.0:80/"])
def test_a_private_literal_address_is_refused_when_set(tenant, operator, url):
    operator(tenant_api_base=True, allow_private=False)
    error = _refused(tenant.admin["test"].patch("/v1/tenant", {"stripe_api_base": url}), "url_not_allowed")
    assert error["message"].startswith("Stripe requests are not sent to a")
    assert tenant.admin["test"].get("/v1/tenant").json["stripe"]["api_base"] is None


def test_an_ipv4_mapped_address_is_not_even_a_url_to_the_schema(tenant, operator):
    operator(tenant_api_base=True, allow_private=False)
    _refused(tenant.admin["test"].patch("/v1/tenant", {"stripe_api_base": "http://[::ffff:127.0.0.1]/"}), "invalid")


def test_the_operators_address_serves_every_tenant(tenant, operator, peer):
    operator(api_base=peer.url)  # AGGREGATOR_STRIPE_API_BASE: trusted, whatever its address
    invoice = _open_invoice(tenant)
    assert tenant.admin["test"].patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242"}).status_code == 200
    paid = tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/pay")
    assert paid.status_code == 200 and paid.json["invoice"]["status"] == "paid", paid.json
    assert len(peer.peer.creates()) == 1


# --- checked at every connection ------------------------------------------------------------------

@pytest.fixture
def names(monkeypatch):
    """Host names this test resolves itself: name -> address (DNS answering what it likes)."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: real(table.get(host, host), *a, **k))
    return table


@pytest.mark.parametrize("host", ["stripe-api.example", "localhost", "2130706433"])
def test_a_name_resolving_to_a_private_address_is_refused_when_connecting(tenant, operator, peer, names, host):
    operator(tenant_api_base=True, allow_private=False)
    names["stripe-api.example"] = "127.0.0.1"  # public when set, loopback when used: rebinding
    port = peer.server.server_address[1]
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242",
                                      "stripe_api_base": f"http://{host}:{port}"}).status_code == 200  # a name
    invoice = _open_invoice(tenant)
    answer = admin.post(f"/v1/invoices/{invoice['id']}/pay")
    assert answer.status_code == 409 and answer.json["error"]["code"] == "payment_gateway_misconfigured"
    assert answer.json["error"]["message"].endswith("stripe_address_refused: The Stripe API address resolves to "
                                                    "an address requests are not sent to.")
    assert peer.peer.seen == []  # nothing reached it
    assert "127.0.0.1" not in answer.get_data(as_text=True)
    [payment] = admin.get(f"/v1/invoices/{invoice['id']}/payments").json["data"]
    assert payment["status"] == "pending" and payment["failure_message"].startswith("stripe_address_refused: ")
    # the same address where the operator allows private ones (development): it is reached
    operator(tenant_api_base=True, allow_private=True)
    assert admin.post(f"/v1/invoices/{invoice['id']}/pay").json["invoice"]["status"] == "paid"
    assert len(peer.peer.creates()) == 1


# --- no answer's words reach an API caller ---------------------------------------------------------

class _Hostile:
    """A Stripe API address answering every request with `status` and `body` (bytes, or JSON)."""

    def __init__(self, status: int, body):
        hostile = self
        self.status, self.body, self.requests = status, body, 0

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hostile.requests += 1
                data = hostile.body if isinstance(hostile.body, bytes) else json.dumps(hostile.body).encode()
                self.send_response(hostile.status)
                self.send_header("Content-Type", "text/plain" if isinstance(hostile.body, bytes) else
                                 "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


ANSWERS = {
    "500": (500, {"error": {"type": "api_error", "message": SECRET}}),
    "200-not-json": (200, f"ami-id\ninstance-id\n{SECRET}\n".encode()),
    "404-html": (404, f"<html><body>{SECRET}</body></html>".encode()),
    "400": (400, {"error": {"type": "invalid_request_error", "code": f"{SECRET}_code", "param": SECRET,
                            "message": SECRET}}),
    "402-card": (402, {"error": {"type": "card_error", "code": f"{SECRET}_code", "decline_code": SECRET,
                                 "message": SECRET}}),
    "401": (401, {"error": {"type": "invalid_request_error", "message": SECRET}}),
}


@pytest.fixture(params=list(ANSWERS))
def hostile(request):
    server = _Hostile(*ANSWERS[request.param])
    yield server
    server.close()


def _nothing_told(*responses) -> None:
    for response in responses:
        text = response.get_data(as_text=True)
        assert SECRET not in text and "ami-id" not in text and "<html>" not in text, text


def test_a_charge_never_tells_what_the_address_answered(tenant, hostile):
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_x4242",
                                      "stripe_api_base": hostile.url}).status_code == 200
    invoice = _open_invoice(tenant)
    answer = admin.post(f"/v1/invoices/{invoice['id']}/pay")
    assert hostile.requests >= 1 and answer.status_code in (200, 409), answer.json
    payments = admin.get(f"/v1/invoices/{invoice['id']}/payments")
    [payment] = payments.json["data"]
    assert payment["failure_message"].split(": ")[0] in (
        "stripe_server_error", "stripe_invalid_response", "stripe_invalid_request", "card_declined",
        "stripe_authentication_failed"), payment
    assert payment["failure_code"] in (None, "card_declined", "stripe_invalid_request") and not payment["decline_code"]
    _nothing_told(answer, payments, admin.get("/v1/events", query_string={"limit": 100}),
                  admin.get(f"/v1/payments/{payment['id']}"))


def test_a_refund_never_tells_what_the_address_answered(tenant, peer, hostile):
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242",
                                      "stripe_api_base": peer.url}).status_code == 200
    invoice = _open_invoice(tenant)
    assert admin.post(f"/v1/invoices/{invoice['id']}/pay").json["invoice"]["status"] == "paid"
    assert admin.patch("/v1/tenant", {"stripe_api_base": hostile.url}).status_code == 200
    answer = admin.post(f"/v1/invoices/{invoice['id']}/refunds", {"amount": "20.00"})
    assert hostile.requests >= 1 and answer.status_code in (201, 409), answer.json
    refunds = admin.get("/v1/refunds")
    assert [r["failure_message"].split(": ")[0] for r in refunds.json["data"]] in (
        [], ["stripe_server_error"], ["stripe_invalid_response"], ["stripe_invalid_request"], ["card_declined"],
        ["stripe_authentication_failed"])
    _nothing_told(answer, refunds, admin.get("/v1/events", query_string={"limit": 100}))


def test_a_payout_never_tells_what_the_address_answered(app, tenant, peer, hostile, clock):
    payout = _paid_and_built(tenant, peer)
    assert tenant.admin["test"].patch("/v1/tenant", {"stripe_api_base": hostile.url}).status_code == 200
    _run_payouts(app, tenant, clock.now())
    assert hostile.requests >= 1
    shown = tenant.admin["test"].get(f"/v1/payouts/{payout['id']}")
    assert shown.json["failure_message"].split(": ")[0] in (
        "stripe_server_error", "stripe_invalid_response", "stripe_invalid_request", "card_declined",
        "stripe_authentication_failed")
    assert shown.json["failure_code"] in (None, "transfer_failed")
    _nothing_told(shown, tenant.admin["test"].get("/v1/payouts"),
                  tenant.admin["test"].get("/v1/events", query_string={"limit": 100}))
    assert _payout(tenant, payout["id"])["status"] in ("approved", "failed")
