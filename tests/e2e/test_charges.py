"""Charging on the charge day against a real peer (localstripe): the test clock moves past the
due date at the charge hour, and past each retry day; each charge runs as of its own instant."""
from __future__ import annotations

from tests.localstripe_server import CARD_3DS, CARD_DECLINED, CARD_OK
from tests.support.charges import _customer_paying_with, _event_types, _intents_of, _invoice
from tests.support.invoicing import advance, send

# The tenant is in Australia/Sydney: the period 2026-10-25 ends 2026-11-25 00:00 local; the
# invoice is due on the 2nd and charged at 09:00 local, 2026-12-01 22:00 UTC.
CHARGE_AT = "2026-12-01T22:00:00+00:00"


def test_the_settings_show_only_hints_of_the_stripe_secrets(stripe_tenant):
    body = stripe_tenant.admin["test"].get("/v1/tenant").json
    assert body["stripe"]["secret_key"] == "sk_test_…4242"
    assert "stripe_secret_key" not in body and "sk_test_aggregator4242" not in str(body)
    wrong = stripe_tenant.admin["test"].patch("/v1/tenant", {"stripe_secret_key": "sk_live_abcd1234"})
    assert wrong.status_code == 422 and "stripe_secret_key" in str(wrong.json)
    live_base = stripe_tenant.admin["live"].patch("/v1/tenant", {"stripe_api_base": "http://127.0.0.1:1"})
    assert live_base.status_code == 422


def test_an_invoice_is_charged_once_at_its_charge_instant(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    provider = stripe_tenant.provider()
    send(provider, "b1", amount="120.00")
    advance(stripe_tenant, "2026-12-01T21:59:00+00:00")  # closed, not yet charged
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "open" and invoice["collection"] == "scheduled"
    assert invoice["next_charge_at"] == "2026-12-01T22:00:00+00:00"
    advance(stripe_tenant, "2026-12-20T00:00:00+00:00")
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "paid" and invoice["amount_paid"] == "120.00"
    assert invoice["amount_remaining"] == "0.00" and invoice["paid_at"] == CHARGE_AT
    intents = _intents_of(localstripe, invoice["id"])
    assert len(intents) == 1 and intents[0].status == "succeeded" and intents[0].amount == 12000
    assert intents[0].currency == "aud" and intents[0].metadata["invoice_number"] == invoice["number"]
    types = _event_types(stripe_tenant)
    assert "invoice.paid" in types and "payment.succeeded" in types


def test_an_advance_while_stripe_is_unreachable_answers_the_pending_charge_and_the_next_one_charges_once(
        stripe_tenant, localstripe):
    """Stripe unreachable on the charge day: the advance answers 200, the clock is ready (not
    stuck advancing), the answer lists the charge as pending with a classified reason, and later
    due work (the next period's close) does not wait behind it. Once Stripe answers again, the
    next advance charges the invoice exactly once, as of its charge instant."""
    admin = stripe_tenant.admin["test"]
    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    provider = stripe_tenant.provider()
    send(provider, "b1", amount="120.00")
    advance(stripe_tenant, "2026-12-01T21:59:00+00:00")
    assert admin.patch("/v1/tenant", {"stripe_api_base": "http://127.0.0.1:1"}).status_code == 200
    send(provider, "b2", amount="30.00")  # in the next period (the clock's time)
    answer = admin.post("/v1/test_clock/advance", {"to": "2026-12-26T00:00:00+00:00"})
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "ready"
    [pending] = answer.json["pending"]
    assert (pending["kind"], pending["due_at"], pending["reason"]) == (
        "invoice.charge", CHARGE_AT, "charge_outcome_unknown")
    assert pending["retry_at"] is not None
    assert "127.0.0.1" not in str(answer.json)  # a classified reason, no upstream detail
    assert [c["period"] for c in answer.json["ran"]["closes"]] == ["2026-11-25"]  # not held up
    clock = admin.get("/v1/test_clock").json
    assert clock["status"] == "ready" and clock["pending"] == answer.json["pending"]
    first = next(i for i in admin.get("/v1/invoices").json["data"] if i["amount_due"] == "120.00")
    assert first["status"] == "open" and not _intents_of(localstripe, first["id"])

    assert admin.patch("/v1/tenant", {"stripe_api_base": localstripe.url}).status_code == 200
    answer = advance(stripe_tenant, "2026-12-26T00:01:00+00:00")
    assert answer["status"] == "ready" and answer["pending"] == []
    invoice = admin.get(f"/v1/invoices/{first['id']}").json
    assert invoice["status"] == "paid" and invoice["paid_at"] == CHARGE_AT and invoice["attempt_count"] == 1
    intents = _intents_of(localstripe, first["id"])
    assert len(intents) == 1 and intents[0].status == "succeeded" and intents[0].amount == 12000
    payments = admin.get(f"/v1/invoices/{first['id']}/payments").json["data"]
    assert [(p["attempt"], p["status"]) for p in payments] == [(1, "succeeded")]
    assert admin.get("/v1/test_clock").json["pending"] == []


def test_a_declined_card_is_retried_on_the_schedule_then_the_invoice_is_uncollectible(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_DECLINED)
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant, "2026-12-03T00:00:00+00:00")
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "open" and invoice["collection"] == "retrying"
    assert invoice["next_charge_at"] == "2026-12-04T22:00:00+00:00"  # 3 days after the first failure
    advance(stripe_tenant, "2027-01-01T00:00:00+00:00")  # past the retries of days 3, 5 and 7
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "uncollectible" and invoice["attempt_count"] == 4
    assert len(_intents_of(localstripe, invoice["id"])) == 4
    types = _event_types(stripe_tenant)
    assert types.count("invoice.payment_failed") == 4 and "invoice.marked_uncollectible" in types


def test_a_card_that_needs_authentication_waits_for_the_customer(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_3DS)
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant, "2026-12-20T00:00:00+00:00")
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "open" and invoice["collection"] == "action_required"
    assert invoice["next_charge_at"] is None and invoice["attempt_count"] == 1
    assert "invoice.payment_action_required" in _event_types(stripe_tenant)


def test_a_new_payment_method_charges_an_invoice_that_waits_for_one(stripe_tenant, localstripe):
    _customer_paying_with(stripe_tenant, localstripe, CARD_3DS)
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant, "2026-12-20T00:00:00+00:00")
    stripe_customer = stripe_tenant.admin["test"].get("/v1/customers/cust-1").json["stripe_customer_id"]
    method = localstripe.client.v1.payment_methods.create(params={
        "type": "card", "card": {"number": CARD_OK, "exp_month": 12, "exp_year": 2034, "cvc": "123"}})
    localstripe.client.v1.payment_methods.attach(method.id, params={"customer": stripe_customer})
    patched = stripe_tenant.admin["test"].patch("/v1/customers/cust-1", {"stripe_payment_method": method.id})
    assert patched.status_code == 200
    advance(stripe_tenant, "2026-12-20T00:01:00+00:00")
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "paid" and invoice["attempt_count"] == 2
    # the attempt awaiting authentication was canceled at Stripe first: it can no longer pay too
    assert sorted(pi.status for pi in _intents_of(localstripe, invoice["id"])) == ["canceled", "succeeded"]
    payments = stripe_tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}/payments").json["data"]
    assert sorted((p["attempt"], p["status"]) for p in payments) == [(1, "canceled"), (2, "succeeded")]


def test_a_customer_without_a_card_pays_by_transfer(stripe_tenant):
    stripe_tenant.customer("cust-1")
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant, "2026-12-20T00:00:00+00:00")
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "open" and invoice["collection"] == "manual" and invoice["attempt_count"] == 0
