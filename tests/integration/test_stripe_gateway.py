"""The gateway against the tests' own request-checking peer: the exact request, and outcomes
that are unknown (500s, 429s, dropped connections, slow answers) resolved by lookup, never by a
second PaymentIntent; a request is sent again, with the same idempotency key, only when the peer
has no record of it."""
from __future__ import annotations

import pytest

from tests.support.peer import _charge, _gateway


def test_a_charge_is_one_request_of_the_exact_shape(peer):
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded" and outcome.requests == 1
    (create,) = peer.peer.creates()
    assert create.idempotency_key == "payment-pay_1" and create.authorization == "Bearer sk_test_peer"
    assert create.form == {"amount": "12000", "currency": "aud", "customer": "cus_A", "payment_method": "pm_A",
                           "off_session": "true", "confirm": "true", "metadata": {
                               "tenant": "ten_1", "mode": "test", "invoice_id": "inv_1", "invoice_number": "INV-1",
                               "payment_id": "pay_1"}}
    assert peer.peer.problems == []


@pytest.mark.parametrize("failure", ["500_after", "drop_after"])
def test_an_answer_lost_after_the_charge_is_found_by_lookup_not_charged_again(peer, failure):
    peer.peer.fail.append(failure)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded"
    assert len(peer.peer.intents) == 1 and len(peer.peer.creates()) == 1
    assert outcome.payment_intent_id in peer.peer.intents
    lookups = [s for s in peer.peer.seen if s.method == "GET"]
    assert lookups and lookups[0].form.get("customer") == "cus_A"


def test_a_slow_answer_is_an_unknown_outcome_resolved_by_lookup(peer):
    peer.peer.fail.append("slow_after")
    peer.peer.slow_seconds = 2.0
    outcome = _gateway(peer, timeout=0.5).charge(_charge())
    assert outcome.status == "succeeded" and len(peer.peer.intents) == 1 and len(peer.peer.creates()) == 1


@pytest.mark.parametrize("failure", ["500", "429"])
def test_a_request_the_peer_never_acted_on_is_sent_again_with_the_same_key(peer, failure):
    peer.peer.fail.append(failure)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "succeeded" and len(peer.peer.intents) == 1
    keys = [s.idempotency_key for s in peer.peer.creates()]
    assert keys == ["payment-pay_1", "payment-pay_1"]


def test_a_peer_that_never_answers_leaves_the_outcome_unknown(peer):
    peer.peer.fail.extend(["500"] * 10)
    outcome = _gateway(peer).charge(_charge())
    assert outcome.status == "unknown"
    assert len(peer.peer.intents) == 0 and {s.idempotency_key for s in peer.peer.creates()} == {"payment-pay_1"}


def test_resuming_an_attempt_looks_it_up_before_sending_it(peer):
    gateway = _gateway(peer)
    first = gateway.charge(_charge())
    resumed = gateway.charge(_charge(), resume=True)  # a crash after the call, before the commit
    assert resumed.status == "succeeded" and resumed.payment_intent_id == first.payment_intent_id
    assert len(peer.peer.creates()) == 1


# --- a charge run against the peer -------------------------------------------------------------

def test_a_charge_run_whose_outcomes_stay_unknown_keeps_them_due_and_the_next_run_resolves_them(app, tenant, peer):
    """Stripe unreachable for a whole run: the run raises ChargesIncomplete, the invoice stays
    open with its attempt pending (unclaimed); the next run looks the attempt up, finds no
    record and sends it again with the same idempotency key: one PaymentIntent."""
    from datetime import datetime, timezone

    from aggregator.db import db
    from aggregator.payments import charge_service
    from aggregator.payments.models import Payment
    from tests.support.invoicing import advance, send

    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242", "stripe_api_base": peer.url,
                                      "stripe_concurrency": 4}).status_code == 200
    for n in (1, 2):
        tenant.customer(f"cust-{n}")
        assert admin.patch(f"/v1/customers/cust-{n}", {"stripe_customer_id": f"cus_{n}",
                                                       "stripe_payment_method": f"pm_{n}"}).status_code == 200
    provider = tenant.provider()
    send(provider, "b1", customer="cust-1", amount="120.00")
    send(provider, "b2", customer="cust-2", amount="30.00")
    advance(tenant, "2026-12-01T21:00:00+00:00")  # closed; the charges are due at 22:00
    charge_at = datetime(2026, 12, 1, 22, tzinfo=timezone.utc)
    adapters = app.extensions["aggregator.adapters"]
    peer.peer.fail.extend(["500"] * 8)  # every create of the first run: 2 attempts x 4 tries
    with app.app_context():
        with pytest.raises(charge_service.ChargesIncomplete):
            charge_service.charge_due(tenant.id, False, charge_at, adapters)
        pending = db.session.scalars(db.select(Payment).where(Payment.tenant_id == tenant.id)).all()
        assert [(p.status, p.locked_until) for p in pending] == [("pending", None)] * 2
        payment_ids = [p.id for p in pending]
        assert not peer.peer.intents
        report = charge_service.charge_due(tenant.id, False, charge_at, adapters)
        assert report.succeeded == 2 and report.attempted == 0  # resumed, not new attempts
    invoices = admin.get("/v1/invoices").json["data"]
    assert {(i["status"], i["paid_at"], i["attempt_count"]) for i in invoices} == {
        ("paid", "2026-12-01T22:00:00+00:00", 1)}
    assert len(peer.peer.intents) == 2
    keys = {}
    for seen in peer.peer.creates():
        keys.setdefault(seen.form["metadata"]["payment_id"], set()).add(seen.idempotency_key)
    assert keys == {p: {f"payment-{p}"} for p in payment_ids}
    assert peer.peer.problems == []


def test_a_payment_the_gateway_is_still_processing_is_looked_up_again_if_its_webhook_never_comes(app, tenant, peer):
    """Processing (a bank debit): the invoice waits, and at its recheck time the PaymentIntent is
    retrieved by id (never created again) and settles the invoice as of that instant."""
    from datetime import datetime, timezone

    from aggregator.payments import charge_service
    from tests.support.invoicing import advance, send

    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242", "stripe_api_base": peer.url}
                       ).status_code == 200
    tenant.customer("cust-1")
    assert admin.patch("/v1/customers/cust-1", {"stripe_customer_id": "cus_1", "stripe_payment_method": "pm_1"}
                       ).status_code == 200
    send(tenant.provider(), "b1", customer="cust-1", amount="120.00")
    advance(tenant, "2026-12-01T21:00:00+00:00")
    peer.peer.intent_status = "processing"
    adapters = app.extensions["aggregator.adapters"]
    with app.app_context():
        report = charge_service.charge_due(tenant.id, False, datetime(2026, 12, 1, 22, tzinfo=timezone.utc), adapters)
        assert report.processing == 1
    [invoice] = admin.get("/v1/invoices").json["data"]
    assert invoice["collection"] == "processing" and invoice["next_charge_at"] == "2026-12-02T04:00:00+00:00"
    [intent] = peer.peer.intents.values()
    intent["status"] = "succeeded"  # the debit went through; its webhook is lost
    advance(tenant, "2026-12-02T05:00:00+00:00")
    [invoice] = admin.get("/v1/invoices").json["data"]
    assert invoice["status"] == "paid" and invoice["paid_at"] == "2026-12-02T04:00:00+00:00"
    assert len(peer.peer.creates()) == 1 and invoice["attempt_count"] == 1
    assert [s.path for s in peer.peer.seen if s.method == "GET"] == [f"/v1/payment_intents/{intent['id']}"]
