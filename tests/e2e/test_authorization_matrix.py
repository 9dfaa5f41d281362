"""The authorization matrix, generated from the app's URL map: every endpoint and method, called
by every kind of caller that must not reach tenant A's objects, answers exactly the status the
rule says; an endpoint missing from the table fails the test, so a new one cannot be left out.

The rule (docs/api.md, "Keys, bills and errors"): no key or a revoked key is `401`; a key whose role the endpoint
does not take is `403` (the role is checked before anything else); another tenant's, mode's or
provider's object is `404`, never `403`. An endpoint that names no object of A (a list, a
create, the tenant's own settings) acts on the caller's own tenant, mode and provider: it answers
what it answers them (`own`), and its body must hold none of A's ids. Public endpoints answer
every caller alike. Path parameters are real ids of tenant A's objects (test mode, provider P1's
where the endpoint is a provider's), proved real by their owner reading them (200).

Finance's pages sign in with an admin key and keep a session; they are checked by session
(none, signed out, revoked key, another tenant's, the other mode's) in the last tests.

One tenant set-up for the whole module (a close, a payment, a refund, a payout day), then about
750 requests through the test client (about 25 s on SQLite)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.callers import Caller
from tests.support.invoicing import AFTER_END, bill_body
from tests.support.payouts import AFTER_PAYOUT_DAY

PERIOD = "2026-10-25"
#: Who calls, besides tenant A's own admin and P1 (the owners).
REFUSED_KINDS = ("no_key", "revoked_admin", "revoked_provider", "other_tenant_admin", "other_tenant_provider",
                 "other_mode_admin", "other_mode_provider", "other_provider")
#: The owners, checked only where their role is refused: A's admin key on a provider's endpoint,
#: P1's key on an admin's.
OWNER_KINDS = ("admin", "provider")
ADMIN, PROVIDER, EITHER, PUBLIC, FINANCE = ("admin",), ("provider",), ("admin", "provider"), "public", "finance"


@dataclass(frozen=True)
class Access:
    """One endpoint and method: the roles it takes, what its path names, what to send."""

    roles: Any  # ADMIN, PROVIDER, EITHER, PUBLIC or FINANCE
    path: dict = field(default_factory=dict)  # parameter -> the World attribute holding A's id
    own: Any = None  # names no object of A: the status a foreign caller gets in its own scope (int, or by kind)
    p1_owned: bool = False  # the object is P1's: P2 (same tenant and mode) gets 404 too
    body: Any = None
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    public: int | None = None  # PUBLIC: the status every caller gets
    read_by: str | None = None  # the owner whose GET the snapshot compares (default: the admin where it may)

    def expected(self, kind: str) -> int | None:
        if self.roles == PUBLIC:
            return self.public
        if kind in ("no_key", "revoked_admin", "revoked_provider"):
            return 401
        role = "admin" if kind.endswith("admin") else "provider"
        if role not in self.roles:
            return 403
        if kind in OWNER_KINDS:
            return None  # the owner: see test_the_owners_read_every_object_named_in_a_path
        if isinstance(self.own, dict) and kind in self.own:
            return self.own[kind]
        if isinstance(self.own, int) and not (kind == "other_provider" and self.p1_owned):
            return self.own
        if self.path:
            return 404
        raise AssertionError(f"the table says nothing of {kind} here")  # pragma: no cover


BILL = bill_body(customer="cust-a")
SENT_BY_PROVIDERS = {"other_tenant_provider": 404, "other_mode_provider": 404, "other_provider": 201}

#: Every endpoint of the URL map, by (method, rule).
TABLE: dict[tuple[str, str], Access] = {
    # accounts
    ("GET", "/v1/tenant"): Access(ADMIN, own=200),
    ("PATCH", "/v1/tenant"): Access(ADMIN, own=200, body={"name": "Renamed by its own admin"}),
    ("POST", "/v1/tenant/keys"): Access(ADMIN, own=201),
    ("GET", "/v1/notification_settings"): Access(ADMIN, own=200),
    ("PATCH", "/v1/notification_settings"): Access(ADMIN, own=200, body={"payment_overdue": False}),
    ("GET", "/v1/providers"): Access(ADMIN, own=200),
    ("POST", "/v1/providers"): Access(ADMIN, own=201, body={"name": "Their App", "revenue_share_rate": "0.10"}),
    ("GET", "/v1/providers/<provider_id>"): Access(ADMIN, path={"provider_id": "p1_id"}),
    ("PATCH", "/v1/providers/<provider_id>"): Access(ADMIN, path={"provider_id": "p1_id"}, body={"name": "Stolen"}),
    ("POST", "/v1/providers/<provider_id>/keys"): Access(ADMIN, path={"provider_id": "p1_id"}),
    ("GET", "/v1/keys"): Access(ADMIN, own=200),
    ("GET", "/v1/keys/<key_id>"): Access(ADMIN, path={"key_id": "p1_key"}),
    ("DELETE", "/v1/keys/<key_id>"): Access(ADMIN, path={"key_id": "p1_key"}),
    ("GET", "/v1/customers"): Access(ADMIN, own=200),
    ("POST", "/v1/customers"): Access(ADMIN, own=201, body={"external_id": "their-customer"}),
    ("GET", "/v1/customers/<path:customer_id>"): Access(ADMIN, path={"customer_id": "customer"}),
    ("PATCH", "/v1/customers/<path:customer_id>"): Access(ADMIN, path={"customer_id": "customer"},
                                                          body={"name": "Stolen"}),
    # intake: a bill for A's customer is unknown to another tenant or mode (404 unknown_customer, on `customer`)
    ("POST", "/v1/bills"): Access(PROVIDER, own=SENT_BY_PROVIDERS, body=BILL,
                                  headers={"Idempotency-Key": "matrix-1"}),
    ("POST", "/v1/bills/batch"): Access(PROVIDER, own=200, body={"bills": [{**BILL, "idempotency_key": "matrix-2"}]}),
    ("GET", "/v1/bills"): Access(EITHER, own=200),
    ("GET", "/v1/bills/<bill_id>"): Access(EITHER, path={"bill_id": "pending_bill"}, p1_owned=True),
    ("DELETE", "/v1/bills/<bill_id>"): Access(PROVIDER, path={"bill_id": "pending_bill"}, p1_owned=True),
    # a trial is a provider's for a customer: P2 declares, reads and ends its own on A's customer
    ("PUT", "/v1/customers/<path:external_id>/trial"): Access(
        PROVIDER, path={"external_id": "customer_external_id"}, body={"ends_at": "2027-01-01T00:00:00Z"},
        own={"other_provider": 200}),
    ("GET", "/v1/customers/<path:external_id>/trial"): Access(
        PROVIDER, path={"external_id": "customer_external_id"}, own={"other_provider": 200}),
    ("DELETE", "/v1/customers/<path:external_id>/trial"): Access(
        PROVIDER, path={"external_id": "customer_external_id"}, own={"other_provider": 200}),
    # periods and invoices: a period is named by its start date, the caller's own calendar's
    ("GET", "/v1/periods"): Access(ADMIN, own=200),
    ("GET", "/v1/periods/<start>"): Access(ADMIN, path={"start": "period"}, own=200),
    ("POST", "/v1/periods/<start>/close"): Access(ADMIN, path={"start": "period"}, own=409),
    ("GET", "/v1/invoices"): Access(ADMIN, own=200),
    ("GET", "/v1/invoices/<invoice_id>"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("POST", "/v1/invoices/<invoice_id>/finalize"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("POST", "/v1/invoices/<invoice_id>/void"): Access(ADMIN, path={"invoice_id": "invoice"}, body={}),
    ("GET", "/v1/invoices/<invoice_id>/pdf"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("GET", "/v1/invoices/<invoice_id>/einvoice"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("GET", "/v1/invoices/<invoice_id>/lines.csv"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("POST", "/v1/invoices/<invoice_id>/pay"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("GET", "/v1/invoices/<invoice_id>/payments"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("POST", "/v1/invoices/<invoice_id>/payments"): Access(
        ADMIN, path={"invoice_id": "invoice"},
        body={"amount": "1.00", "method": "bank_transfer", "reference": "stolen", "received_on": "2026-11-26"}),
    ("POST", "/v1/invoices/<invoice_id>/credit_notes"): Access(
        ADMIN, path={"invoice_id": "invoice"}, body={"amount": "1.00", "reason": "order_change",
                                                     "settlement": "customer_balance"}),
    ("GET", "/v1/credit_notes"): Access(ADMIN, own=200),
    ("GET", "/v1/credit_notes/<credit_note_id>"): Access(ADMIN, path={"credit_note_id": "credit_note"}),
    ("GET", "/v1/credit_notes/<credit_note_id>/pdf"): Access(ADMIN, path={"credit_note_id": "credit_note"}),
    ("GET", "/v1/invoices/<invoice_id>/refunds"): Access(ADMIN, path={"invoice_id": "invoice"}),
    ("POST", "/v1/invoices/<invoice_id>/refunds"): Access(ADMIN, path={"invoice_id": "invoice"},
                                                          body={"amount": "1.00"}),
    ("GET", "/v1/fx_rates"): Access(ADMIN, own=200),
    ("PUT", "/v1/fx_rates"): Access(ADMIN, own=200, body={"base": "USD", "quote": "AUD", "rate": "1.5",
                                                          "effective_date": "2026-11-01"}),
    # a test clock exists in test mode only: live mode has none (404)
    ("GET", "/v1/test_clock"): Access(ADMIN, own={"other_tenant_admin": 200, "other_mode_admin": 404}),
    ("POST", "/v1/test_clock/advance"): Access(ADMIN, own={"other_tenant_admin": 200, "other_mode_admin": 404},
                                               body={"to": "2026-11-11T00:00:00Z"}),
    # payments and refunds
    ("GET", "/v1/payments"): Access(ADMIN, own=200),
    ("GET", "/v1/payments/<payment_id>"): Access(ADMIN, path={"payment_id": "payment"}),
    ("GET", "/v1/refunds"): Access(ADMIN, own=200),
    ("GET", "/v1/refunds/<refund_id>"): Access(ADMIN, path={"refund_id": "refund"}),
    # payouts: P1's
    ("GET", "/v1/payouts"): Access(EITHER, own=200),
    ("GET", "/v1/payouts/<payout_id>"): Access(EITHER, path={"payout_id": "payout"}, p1_owned=True),
    ("GET", "/v1/payouts/<payout_id>/lines"): Access(EITHER, path={"payout_id": "payout"}, p1_owned=True),
    ("POST", "/v1/payouts/<payout_id>/approve"): Access(ADMIN, path={"payout_id": "payout"}),
    ("POST", "/v1/payouts/<payout_id>/cancel"): Access(ADMIN, path={"payout_id": "payout"}),
    ("POST", "/v1/payouts/<payout_id>/mark_paid"): Access(ADMIN, path={"payout_id": "payout"},
                                                          body={"reference": "stolen"}),
    ("POST", "/v1/payouts/approve"): Access(ADMIN, own=200, body={"period": PERIOD}),
    ("GET", "/v1/reports/payouts"): Access(ADMIN, own=200, query={"period": PERIOD}),
    # ledger, events, email
    ("GET", "/v1/ledger/accounts"): Access(ADMIN, own=200),
    ("GET", "/v1/ledger/journals"): Access(ADMIN, own=200),
    ("GET", "/v1/ledger/journals/<journal_id>"): Access(ADMIN, path={"journal_id": "journal"}),
    ("GET", "/v1/ledger/export"): Access(ADMIN, own=200),
    ("GET", "/v1/events"): Access(EITHER, own=200),
    ("GET", "/v1/events/<event_id>"): Access(EITHER, path={"event_id": "p1_event"}, p1_owned=True),
    ("POST", "/v1/events/<event_id>/resend"): Access(EITHER, path={"event_id": "p1_event"}, p1_owned=True),
    ("GET", "/v1/email_deliveries"): Access(ADMIN, own=200),
    ("GET", "/v1/email_deliveries/<delivery_id>"): Access(ADMIN, path={"delivery_id": "email_delivery"}),
    # webhook endpoints: P1's
    ("GET", "/v1/webhook_endpoints"): Access(EITHER, own=200),
    ("POST", "/v1/webhook_endpoints"): Access(EITHER, own=201, body={"url": "http://127.0.0.1:9/theirs",
                                                                     "enabled_events": ["*"]}),
    ("GET", "/v1/webhook_endpoints/<endpoint_id>"): Access(EITHER, path={"endpoint_id": "endpoint"}, p1_owned=True),
    ("PATCH", "/v1/webhook_endpoints/<endpoint_id>"): Access(EITHER, path={"endpoint_id": "endpoint"},
                                                             p1_owned=True, body={"status": "disabled"}),
    ("DELETE", "/v1/webhook_endpoints/<endpoint_id>"): Access(EITHER, path={"endpoint_id": "endpoint"},
                                                              p1_owned=True),
    ("POST", "/v1/webhook_endpoints/<endpoint_id>/rotate_secret"): Access(EITHER, path={"endpoint_id": "endpoint"},
                                                                          p1_owned=True),
    ("GET", "/v1/webhook_endpoints/<endpoint_id>/deliveries"): Access(EITHER, path={"endpoint_id": "endpoint"},
                                                                      p1_owned=True),
    # plans and subscriptions: P1's plan and its subscription for A's customer; environments are the tenant's
    ("GET", "/v1/plans"): Access(EITHER, own=200),
    ("POST", "/v1/plans"): Access(EITHER, own=201, body={"code": "their-plan", "name": "Theirs", "currency": "AUD",
                                                          "fees": [{"name": "Hosting", "price": "1.00"}]}),
    ("GET", "/v1/plans/<code>"): Access(EITHER, path={"code": "plan"}, p1_owned=True),
    ("PATCH", "/v1/plans/<code>"): Access(EITHER, path={"code": "plan"}, p1_owned=True, body={"name": "Stolen"}),
    ("POST", "/v1/plans/<code>/versions"): Access(EITHER, path={"code": "plan"}, p1_owned=True,
                                                  body={"prices": {"Hosting": "0.01"}}),
    ("GET", "/v1/environments"): Access(EITHER, own=200),
    ("POST", "/v1/environments"): Access(ADMIN, own=201, body={"name": "theirs"}),
    ("DELETE", "/v1/environments/<name>"): Access(ADMIN, path={"name": "environment"}),
    # P2 subscribing A's customer to P1's plan: no such plan of its own (404 unknown_plan, on `plan`)
    ("POST", "/v1/subscriptions"): Access(PROVIDER, own=404, body={"customer": "cust-a", "plan": "p1-plan"}),
    ("GET", "/v1/subscriptions"): Access(EITHER, own=200),
    ("GET", "/v1/subscriptions/<ref>"): Access(EITHER, path={"ref": "subscription"}, p1_owned=True),
    ("PATCH", "/v1/subscriptions/<ref>"): Access(PROVIDER, path={"ref": "subscription"}, p1_owned=True,
                                                 body={"quantity": 9}),
    ("DELETE", "/v1/subscriptions/<ref>"): Access(PROVIDER, path={"ref": "subscription"}, p1_owned=True),
    ("GET", "/v1/subscriptions/<ref>/statements"): Access(EITHER, path={"ref": "subscription"}, p1_owned=True),
    ("GET", "/v1/subscriptions/<ref>/usage"): Access(EITHER, path={"ref": "subscription"}, p1_owned=True),
    # meters are the tenant's (A's admin's); usage events name a subscription of the sender's own
    ("GET", "/v1/meters"): Access(EITHER, own=200),
    ("POST", "/v1/meters"): Access(ADMIN, own=201, body={"code": "their-meter", "name": "Theirs",
                                                          "aggregation": "count"}),
    ("GET", "/v1/meters/<code>"): Access(EITHER, path={"code": "meter"}, own={"other_provider": 200}),
    ("PATCH", "/v1/meters/<code>"): Access(ADMIN, path={"code": "meter"}, body={"name": "Stolen"}),
    ("POST", "/v1/usage_events"): Access(PROVIDER, own=404, body={"id": "theirs", "subscription": "sub-of-a",
                                                                   "meter": "a-meter", "value": 1}),
    ("POST", "/v1/usage_events/batch"): Access(PROVIDER, own=200, body={"events": [
        {"id": "theirs", "subscription": "sub-of-a", "meter": "a-meter", "value": 1}]}),
    # the usage export is of the caller's own tenant and mode (a provider's: its own subscriptions' rows)
    ("GET", "/v1/usage_export"): Access(EITHER, own=200, query={"period": PERIOD}),
    # entitlements are a provider's plans for a customer: P2 reads its own (none) for A's customer
    ("GET", "/v1/customers/<customer>/entitlements"): Access(
        PROVIDER, path={"customer": "customer_external_id"}, own={"other_provider": 200}),
    # the upcoming invoice of A's customer: P2 sees its own lines (the bill it sends in the matrix is
    # one, so the snapshot compares P1's view)
    ("GET", "/v1/customers/<customer>/upcoming_invoice"): Access(
        EITHER, path={"customer": "customer_external_id"}, own={"other_provider": 200}, read_by="provider"),
    # public: the document, operations, Stripe's webhooks (authenticated by Stripe's signature)
    ("GET", "/v1/openapi.json"): Access(PUBLIC, public=200),
    ("GET", "/healthz"): Access(PUBLIC, public=200),
    ("GET", "/readyz"): Access(PUBLIC, public=200),
    ("GET", "/metrics"): Access(PUBLIC, public=200),
    ("GET", "/static/<path:filename>"): Access(PUBLIC, path={"filename": "no_such_file"}, public=404),
    # A has no Stripe signing secret: for every caller, there is no such endpoint
    ("POST", "/v1/stripe/webhooks/<tenant_id>/<mode>"): Access(
        PUBLIC, path={"tenant_id": "tenant_id", "mode": "test_mode"}, body={"id": "evt_forged"}, public=404),
    # finance's pages: a session, not a key (see test_finance_pages_by_session); `own` is what
    # another tenant's or mode's session gets (its own page; A's payout is "No such payout")
    ("GET", "/finance/"): Access(FINANCE, own=302),
    ("GET", "/finance/login"): Access(FINANCE, public=200),
    ("POST", "/finance/login"): Access(FINANCE, own=401, body={"api_key": "agg_admin_test_forged"}),
    ("POST", "/finance/logout"): Access(FINANCE, own=302),
    ("GET", "/finance/payouts"): Access(FINANCE, own=200, query={"period": PERIOD}),
    ("POST", "/finance/payouts/<payout_id>/approve"): Access(FINANCE, path={"payout_id": "payout"}, own=302),
    ("POST", "/finance/payouts/<payout_id>/cancel"): Access(FINANCE, path={"payout_id": "payout"}, own=302),
    ("POST", "/finance/payouts/<payout_id>/mark_paid"): Access(FINANCE, path={"payout_id": "payout"}, own=302,
                                                               body={"reference": "stolen"}),
    ("POST", "/finance/payouts/approve"): Access(FINANCE, own=302),
    ("GET", "/finance/report.csv"): Access(FINANCE, own=200, query={"period": PERIOD}),
    ("GET", "/finance/report.pdf"): Access(FINANCE, own=200, query={"period": PERIOD}),
    ("GET", "/finance/static/<path:filename>"): Access(FINANCE, path={"filename": "stylesheet"}, public=200),
}


def url_map(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


# --- tenant A and everyone else ---------------------------------------------------------------------

class World:
    """Tenant A (test mode) with providers P1 and P2, a customer, a closed period with an invoice
    paid and partly refunded, payouts, a pending bill, a trial, webhook endpoints, events, an
    email; and the callers that must not reach them."""


def _ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.get_json(silent=True))
    return response.get_json(silent=True)


@pytest.fixture(scope="module")
def world(app, clock) -> World:
    from aggregator import due
    from aggregator.accounts import service
    from aggregator.events.dispatch import DISPATCH_QUEUE
    from tests.support.clock import START

    clock.set(START)
    client = app.test_client()
    w = World()
    with app.app_context():
        a = service.create_tenant({"name": "Tenant A", "timezone": "Australia/Sydney", "default_currency": "AUD"},
                                  clock.now())
        b = service.create_tenant({"name": "Tenant B", "timezone": "Australia/Sydney", "default_currency": "AUD"},
                                  clock.now())
        tenant_id = a.tenant.id
    admin, live = Caller(client, a.admin_keys["test"]), Caller(client, a.admin_keys["live"])
    other_admin = Caller(client, b.admin_keys["test"])
    w.admin, w.tenant_id, w.test_mode = admin, tenant_id, "test"

    def provider(caller, name):
        created = _ok(caller.post("/v1/providers", {"name": name, "revenue_share_rate": "0.30"}), 201)
        return Caller(client, created["api_key"]), created

    p1, p1_created = provider(admin, "P1")
    p2, _ = provider(admin, "P2")
    w.p1_id, w.p1_key = p1_created["id"], p1_created["api_key_id"]
    _ok(admin.patch("/v1/tenant", {"finance_email": "finance@a.example"}))
    customer = _ok(admin.post("/v1/customers", {"external_id": "cust-a", "email": "ann@a.example"}), 201)
    w.customer, w.customer_external_id = customer["id"], "cust-a"
    endpoint = _ok(p1.post("/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/p1", "enabled_events": ["*"]}), 201)
    w.endpoint = endpoint["id"]
    for key, caller, amount in (("a1", p1, "100.00"), ("s1", p2, "25.00")):
        _ok(caller.post("/v1/bills", bill_body(customer="cust-a", amount=amount), headers={"Idempotency-Key": key}),
            201)
    _ok(admin.post("/v1/test_clock/advance", {"to": AFTER_END}))
    (invoice,) = _ok(admin.get("/v1/invoices"))["data"]
    w.invoice, w.period = invoice["id"], PERIOD
    w.payment = _ok(admin.post(f"/v1/invoices/{w.invoice}/payments", {
        "amount": invoice["total"], "method": "bank_transfer", "reference": "bank-1", "received_on": "2026-11-26"}),
        201)["payment"]["id"]
    w.refund = _ok(admin.post(f"/v1/invoices/{w.invoice}/refunds", {"amount": "1.00"}), 201)["id"]
    (w.credit_note,) = [n["id"] for n in _ok(admin.get("/v1/credit_notes"))["data"]]  # the refund's own
    _ok(admin.post("/v1/test_clock/advance", {"to": AFTER_PAYOUT_DAY}))
    with app.app_context():
        due.drain(DISPATCH_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(w.tenant_id, False))
    w.payout = next(p["id"] for p in _ok(admin.get("/v1/payouts"))["data"] if p["provider"] == w.p1_id)
    w.pending_bill = _ok(p1.post("/v1/bills", bill_body(customer="cust-a"), headers={"Idempotency-Key": "a2"}),
                         201)["id"]
    _ok(admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.5", "effective_date": "2026-11-01"}))
    w.journal = _ok(admin.get("/v1/ledger/journals"))["data"][0]["id"]
    w.email_delivery = _ok(admin.get("/v1/email_deliveries"))["data"][0]["id"]
    w.p1_event = _ok(p1.get("/v1/events"))["data"][0]["id"]
    w.no_such_file, w.stylesheet = "matrix.css", "finance.css"

    # the revoked keys, each used once before (P1's is then remembered by intake's fast path)
    revoked_admin = _ok(admin.post("/v1/tenant/keys"), 201)
    revoked_p1 = _ok(admin.post(f"/v1/providers/{w.p1_id}/keys"), 201)
    _ok(Caller(client, revoked_admin["secret"]).get("/v1/tenant"))
    _ok(Caller(client, revoked_p1["secret"]).post("/v1/bills", bill_body(customer="cust-a"),
                                                  headers={"Idempotency-Key": "a3"}), 201)
    for key in (revoked_admin["id"], revoked_p1["id"]):
        _ok(admin.delete(f"/v1/keys/{key}"))

    _ok(p1.put("/v1/customers/cust-a/trial", {"ends_at": "2027-06-01T00:00:00Z"}))
    w.plan = _ok(p1.post("/v1/plans", {"code": "p1-plan", "name": "P1's plan", "currency": "AUD",
                                       "fees": [{"name": "Hosting", "price": "10.00"}]}), 201)["id"]
    w.subscription = _ok(p1.post("/v1/subscriptions", {"customer": "cust-a", "plan": "p1-plan"}), 201)["id"]
    w.meter = _ok(admin.post("/v1/meters", {"code": "a-meter", "name": "A's meter", "aggregation": "count"}),
                  201)["code"]
    w.environment = "a-only"  # A's own environment's name: no other tenant or mode has one so named
    _ok(admin.post("/v1/environments", {"name": w.environment}), 201)
    other_mode_provider, _ = provider(live, "P1 live")
    other_tenant_provider, _ = provider(other_admin, "B's app")
    w.callers = {
        "no_key": None, "admin": admin, "provider": p1, "other_provider": p2,
        "revoked_admin": Caller(client, revoked_admin["secret"]),
        "revoked_provider": Caller(client, revoked_p1["secret"]),
        "other_tenant_admin": other_admin, "other_tenant_provider": other_tenant_provider,
        "other_mode_admin": live, "other_mode_provider": other_mode_provider,
    }
    w.client = client
    w.private_ids = {w.p1_id, w.customer, w.endpoint, w.invoice, w.payment, w.refund, w.credit_note, w.payout,
                     w.pending_bill, w.journal, w.email_delivery, w.p1_event, w.p1_key, w.plan, w.subscription}
    w.p1_private_ids = {w.endpoint, w.payout, w.pending_bill, w.p1_event, w.p1_key, w.plan, w.subscription}
    w.before = _snapshot(w)
    return w


def _path(rule: str, access: Access, world: World) -> str:
    def fill(match):
        return str(getattr(world, access.path[match.group(2)]))

    return re.sub(r"<(?:(\w+):)?(\w+)>", fill, rule)


def _call(world: World, kind: str, method: str, path: str, access: Access):
    caller = world.callers[kind]
    headers = {**access.headers, **({"Authorization": f"Bearer {caller.key}"} if caller else {})}
    return world.client.open(path, method=method, json=access.body, query_string=access.query, headers=headers)


def _snapshot(world: World) -> dict:
    """Tenant A's objects named in paths, as their owners read them."""
    seen = {}
    for (method, rule), access in TABLE.items():
        if method == "GET" and access.path and access.roles not in (PUBLIC, FINANCE):
            owner = access.read_by or ("admin" if "admin" in access.roles else "provider")
            path = _path(rule, access, world)
            response = _call(world, owner, "GET", path, access)
            seen[path] = (response.status_code, response.get_json(silent=True) if response.is_json
                          else response.mimetype)
    # an environment is named in a path but read only in its list
    seen[ENVIRONMENTS] = _call(world, "admin", "GET", "/v1/environments", Access(ADMIN)).get_json()
    return seen


# --- the tests --------------------------------------------------------------------------------------

def test_every_endpoint_of_the_url_map_is_in_the_table(app):
    assert sorted(url_map(app) - set(TABLE)) == [], "add the new endpoint to TABLE with its access class"
    assert sorted(set(TABLE) - url_map(app)) == [], "remove the endpoint that is gone from TABLE"


@pytest.mark.parametrize("method,rule", [key for key, access in TABLE.items() if access.roles != FINANCE],
                         ids=lambda value: value)
def test_the_matrix(world, method, rule):
    access = TABLE[method, rule]
    path = _path(rule, access, world)
    wrong = []
    for kind in REFUSED_KINDS + OWNER_KINDS:
        expected = access.expected(kind)
        if expected is None:
            continue
        response = _call(world, kind, method, path, access)
        if response.status_code != expected:
            said = response.get_data(as_text=True)[:200]
            wrong.append(f"{kind}: {response.status_code} (expected {expected}) {said}")
            continue
        if access.roles != PUBLIC and expected < 300:  # its own scope: none of A's (or P1's) ids
            private = world.p1_private_ids if kind == "other_provider" else world.private_ids
            leaked = [i for i in private if i in response.get_data(as_text=True)]
            if leaked:
                wrong.append(f"{kind}: {response.status_code} with A's ids {leaked}")
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)


#: Named in a path, but read only in a list: an environment (GET /v1/environments).
LISTED_ONLY = {"environment"}
ENVIRONMENTS = "GET /v1/environments"  # in the snapshot: A's environments


def test_the_owners_read_every_object_named_in_a_path(world):
    """The matrix's 404s mean something: every id in a path is real, and its owner reads it."""
    named = {name for access in TABLE.values() if access.roles not in (PUBLIC, FINANCE)
             for name in access.path.values()} - LISTED_ONLY
    read = {name for (method, _), access in TABLE.items() if method == "GET" and access.roles not in (PUBLIC, FINANCE)
            for name in access.path.values()}
    paths = {path: seen for path, seen in world.before.items() if path != ENVIRONMENTS}
    assert named == read and len(paths) == len({_path(r, a, world) for (m, r), a in TABLE.items()
                                                       if m == "GET" and a.path and a.roles not in (PUBLIC, FINANCE)})
    assert world.environment in world.before[ENVIRONMENTS]["data"]
    for path, (status, body) in paths.items():
        assert status == 200, (path, body)


FINANCE_KINDS = ("no_session", "signed_out", "revoked_key", "other_tenant", "other_mode")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _signed_in(app, key: str):
    """A client of its own, signed in to finance with `key`, and its CSRF token."""
    visitor = app.test_client()
    login = visitor.get("/finance/login")
    signed = visitor.post("/finance/login", data={"api_key": key, "csrf_token": _csrf(login.text)})
    assert signed.status_code == 302 and signed.location.endswith("/finance/payouts"), signed.text
    return visitor, _csrf(visitor.get("/finance/payouts").text)


@pytest.fixture
def sessions(app, world) -> dict:
    """Finance's callers: kind -> (client, CSRF token to send); new for each endpoint, as one
    of them signs out."""
    admin = world.callers["admin"]
    found = {"no_session": (app.test_client(), None)}
    signed_out, token = _signed_in(app, admin.key)
    cookie = signed_out.get_cookie("aggregator_finance", path="/finance").value
    assert signed_out.post("/finance/logout", data={"csrf_token": token}).status_code == 302
    replay = app.test_client()
    replay.set_cookie("aggregator_finance", cookie, path="/finance")  # the cookie copied before signing out
    found["signed_out"] = (replay, token)
    issued = _ok(admin.post("/v1/tenant/keys"), 201)
    found["revoked_key"] = _signed_in(app, issued["secret"])
    _ok(admin.delete(f"/v1/keys/{issued['id']}"))
    found["other_tenant"] = _signed_in(app, world.callers["other_tenant_admin"].key)
    found["other_mode"] = _signed_in(app, world.callers["other_mode_admin"].key)
    return found


def _finance_expected(access: Access, method: str, rule: str, kind: str) -> int:
    if access.public is not None:
        return access.public
    if kind == "no_session":
        return 400 if method == "POST" else 302  # a POST fails the CSRF check before anything else
    if kind in ("signed_out", "revoked_key"):
        return 401 if rule == "/finance/login" else 302  # to the sign-in page (signing in: the key is refused)
    return access.own


@pytest.mark.parametrize("method,rule", [key for key, access in TABLE.items() if access.roles == FINANCE],
                         ids=lambda value: value)
def test_finance_pages_by_session(world, sessions, method, rule):
    access = TABLE[method, rule]
    path = _path(rule, access, world)
    wrong = []
    for kind in FINANCE_KINDS:
        visitor, token = sessions[kind]
        form = {**(access.body or {}), "period": PERIOD, **({"csrf_token": token} if token else {})}
        response = (visitor.post(path, data=form) if method == "POST"
                    else visitor.get(path, query_string=access.query))
        expected = _finance_expected(access, method, rule, kind)
        if response.status_code != expected:
            wrong.append(f"{kind}: {response.status_code} (expected {expected})")
        elif expected == 302 and kind in ("signed_out", "revoked_key", "no_session") \
                and not response.location.endswith("/finance/login"):
            wrong.append(f"{kind}: sent to {response.location}, not to the sign-in page")
        elif kind in ("other_tenant", "other_mode"):
            page = visitor.get(response.location) if expected == 302 else response
            sent = {getattr(world, name) for name in access.path.values()}  # "No such payout: 'po_…'" echoes it
            leaked = [i for i in world.private_ids - sent if i.encode() in page.data]
            if leaked:
                wrong.append(f"{kind}: A's ids {leaked} shown")
            if "payout_id" in access.path and "No such payout" not in page.get_data(as_text=True):
                wrong.append(f"{kind}: A's payout was not refused: {page.text[:300]}")
    assert not wrong, f"{method} {path}:\n" + "\n".join(wrong)


def test_a_provider_key_cannot_sign_in_to_finance(app, world):
    visitor = app.test_client()
    login = visitor.get("/finance/login")
    refused = visitor.post("/finance/login", data={"api_key": world.callers["provider"].key,
                                                   "csrf_token": _csrf(login.text)})
    assert refused.status_code == 403
    assert visitor.get("/finance/payouts").status_code == 302


def test_no_refused_call_changed_tenant_a(world):
    """Run after the matrix (module order): A's objects are as they were before it."""
    after = _snapshot(world)
    assert after == world.before
