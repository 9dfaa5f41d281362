"""Refunds against the tests' own request-checking Stripe peer: the exact request and its stable
idempotency key (`refund-<id>`), lost answers resolved by lookup and never refunded twice, a
crash between the commit and the call resumed by the `refund.send` queue exactly once, and
racing refunds (PostgreSQL) never giving back more than was paid."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from aggregator.payments.gateway import RefundRequest
from aggregator.payments.stripe import StripeGateway
from tests.support.callers import Caller
from tests.support.invoicing import advance, send
from tests.support.peer import _charge

PAID = "2026-12-20T00:00:00+00:00"


def _gateway(peer) -> StripeGateway:
    return StripeGateway("sk_test_peer", peer.url, timeout=5.0, sleep=lambda s: None)


def _charged(peer) -> tuple[StripeGateway, str]:
    """A gateway to the peer, and a PaymentIntent it charged."""
    gateway = _gateway(peer)
    return gateway, gateway.charge(_charge()).payment_intent_id


def _request(intent_id: str, refund_id: str = "re_1", amount: int = 2000) -> RefundRequest:
    return RefundRequest(refund_id=refund_id, idempotency_key=f"refund-{refund_id}", payment_intent_id=intent_id,
                         amount=amount, reason="requested_by_customer",
                         metadata={"tenant": "ten_1", "mode": "test", "invoice_id": "inv_1", "payment_id": "pay_1",
                                   "refund_id": refund_id})


# --- the gateway ------------------------------------------------------------------------------

def test_a_refund_is_one_request_of_the_exact_shape(peer):
    gateway, intent = _charged(peer)
    outcome = gateway.refund(_request(intent))
    assert outcome.status == "succeeded" and outcome.requests == 1 and outcome.amount == 2000
    (create,) = peer.peer.refund_creates()
    assert create.idempotency_key == "refund-re_1" and create.authorization == "Bearer sk_test_peer"
    assert create.form == {"payment_intent": intent, "amount": "2000", "reason": "requested_by_customer",
                           "metadata": {"tenant": "ten_1", "mode": "test", "invoice_id": "inv_1",
                                        "payment_id": "pay_1", "refund_id": "re_1"}}
    assert outcome.extra["refund_id"] in peer.peer.refunds and peer.peer.problems == []


@pytest.mark.parametrize("failure", ["500_after", "drop_after"])
def test_a_refund_answer_lost_after_the_refund_is_found_by_lookup_not_refunded_again(peer, failure):
    gateway, intent = _charged(peer)
    peer.peer.fail.append(failure)
    outcome = gateway.refund(_request(intent))
    assert outcome.status == "succeeded" and outcome.extra["refund_id"] in peer.peer.refunds
    assert len(peer.peer.refunds) == 1 and len(peer.peer.refund_creates()) == 1
    lookups = [s for s in peer.peer.seen if s.method == "GET" and s.path == "/v1/refunds"]
    assert lookups and lookups[0].form.get("payment_intent") == intent


@pytest.mark.parametrize("failure", ["500", "429"])
def test_a_refund_the_peer_never_acted_on_is_sent_again_with_the_same_key(peer, failure):
    gateway, intent = _charged(peer)
    peer.peer.fail.append(failure)
    outcome = gateway.refund(_request(intent))
    assert outcome.status == "succeeded" and len(peer.peer.refunds) == 1
    assert [s.idempotency_key for s in peer.peer.refund_creates()] == ["refund-re_1", "refund-re_1"]


# --- the use case and the queue ----------------------------------------------------------------

@pytest.fixture
def paid(tenant, peer) -> dict:
    """An invoice of 120.00 AUD charged by card at the peer."""
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242",
                                      "stripe_api_base": peer.url}).status_code == 200
    tenant.customer("cust-1")
    assert admin.patch("/v1/customers/cust-1", {"stripe_customer_id": "cus_A",
                                                "stripe_payment_method": "pm_A"}).status_code == 200
    send(tenant.provider(), "b1", amount="120.00")
    advance(tenant, PAID)
    (invoice,) = admin.get("/v1/invoices").json["data"]
    assert invoice["status"] == "paid" and len(peer.peer.intents) == 1, invoice
    return invoice


def _run_queue(app, tenant, now):
    from aggregator import adapters as edge
    from aggregator.due import Lane
    from aggregator.payments.due_work import REFUND_QUEUE

    with app.app_context():
        return REFUND_QUEUE.run_batch(edge.current(), now, 50, Lane(tenant.id, False))


def _pending_refund(app, tenant, invoice: dict, amount: int, locked_until) -> str:
    """A refund committed pending whose sender died before (or after) calling Stripe."""
    import sqlalchemy as sa

    from aggregator.db import db, new_id
    from aggregator.payments import transitions
    from aggregator.payments.models import Payment

    with app.app_context():
        payment = db.session.scalars(sa.select(Payment).where(Payment.invoice_id == invoice["id"])).one()
        refund = transitions.create_refund({
            "id": new_id("re"), "tenant_id": tenant.id, "livemode": False, "invoice_id": invoice["id"],
            "payment_id": payment.id, "amount": amount, "currency": "AUD", "reason": None, "note": None,
            "gateway": "stripe", "requests": 0, "locked_until": locked_until, "created_at": locked_until}, locked_until,
            settled=False)
        db.session.commit()
        return refund.id


def _refund(tenant, refund_id: str) -> dict:
    return tenant.admin["test"].get(f"/v1/refunds/{refund_id}").json


def test_a_crash_between_commit_and_call_is_resumed_by_the_queue_exactly_once(app, tenant, paid, peer, clock):
    now = clock.now()
    refund_id = _pending_refund(app, tenant, paid, 3000, locked_until=now + timedelta(minutes=5))
    assert _run_queue(app, tenant, now).taken == 0  # its sender still holds it
    worked = _run_queue(app, tenant, now + timedelta(minutes=6))
    assert (worked.done, worked.failed) == (1, 0)
    assert _run_queue(app, tenant, now + timedelta(minutes=20)).taken == 0
    refund = _refund(tenant, refund_id)
    assert refund["status"] == "succeeded" and refund["stripe_refund"] in peer.peer.refunds
    assert [s.idempotency_key for s in peer.peer.refund_creates()] == [f"refund-{refund_id}"]
    first = [s for s in peer.peer.seen if "/refunds" in s.path][0]
    assert first.method == "GET"  # looked up before it was sent
    assert tenant.admin["test"].get(f"/v1/invoices/{paid['id']}").json["amount_refunded"] == "30.00"


def test_a_crash_after_the_call_is_resolved_by_lookup_not_refunded_again(app, tenant, paid, peer, clock):
    now = clock.now()
    refund_id = _pending_refund(app, tenant, paid, 3000, locked_until=now - timedelta(seconds=1))
    (intent,) = peer.peer.intents
    sent = _gateway(peer).refund(_request(intent, refund_id, 3000))  # the dead sender's call
    assert _run_queue(app, tenant, now).done == 1
    refund = _refund(tenant, refund_id)
    assert refund["status"] == "succeeded" and refund["stripe_refund"] == sent.extra["refund_id"]
    assert len(peer.peer.refunds) == 1 and len(peer.peer.refund_creates()) == 1


def test_an_unknown_outcome_stays_pending_then_the_queue_settles_it_with_the_same_key(app, tenant, paid, peer, clock):
    peer.peer.fail.extend(["500"] * 4)  # every try of the request fails before the peer acts
    response = tenant.admin["test"].post(f"/v1/invoices/{paid['id']}/refunds", {"amount": "20.00"})
    assert response.status_code == 201, response.json
    refund = response.json
    assert refund["status"] == "pending" and refund["stripe_refund"] is None and refund["failure_message"]
    invoice = tenant.admin["test"].get(f"/v1/invoices/{paid['id']}").json
    assert invoice["amount_refunded"] == "20.00" and invoice["status"] == "paid"  # pending counts
    now = clock.now()
    assert _run_queue(app, tenant, now + timedelta(seconds=30)).taken == 0  # backing off (1 min)
    assert _run_queue(app, tenant, now + timedelta(minutes=2)).done == 1
    assert _refund(tenant, refund["id"])["status"] == "succeeded"
    keys = {s.idempotency_key for s in peer.peer.refund_creates()}
    assert keys == {f"refund-{refund['id']}"} and len(peer.peer.refunds) == 1


def test_a_refund_stripe_keeps_pending_is_settled_by_a_later_look(app, tenant, paid, peer, clock):
    peer.peer.refund_status = "pending"
    refund = tenant.admin["test"].post(f"/v1/invoices/{paid['id']}/refunds", {}).json
    assert refund["status"] == "pending" and refund["stripe_refund"] in peer.peer.refunds
    assert refund["amount"] == "120.00"
    now = clock.now()
    assert _run_queue(app, tenant, now + timedelta(minutes=5)).taken == 0
    peer.peer.refunds[refund["stripe_refund"]]["status"] = "succeeded"
    assert _run_queue(app, tenant, now + timedelta(hours=1)).done == 1
    assert _refund(tenant, refund["id"])["status"] == "succeeded"
    assert len(peer.peer.refund_creates()) == 1
    retrieved = [s for s in peer.peer.seen if s.method == "GET" and s.path == f"/v1/refunds/{refund['stripe_refund']}"]
    assert len(retrieved) == 1


def test_a_refund_stripe_refuses_fails_and_gives_its_amount_back(app, tenant, paid, peer):
    (intent_id,) = peer.peer.intents
    peer.peer.refunds["re_other"] = {"id": "re_other", "payment_intent": intent_id, "amount": 11000,
                                     "status": "succeeded", "metadata": {}}  # refunded from Stripe's dashboard
    refund = tenant.admin["test"].post(f"/v1/invoices/{paid['id']}/refunds", {"amount": "20.00"}).json
    assert refund["status"] == "failed" and refund["failure_message"] == (
        "charge_already_refunded: The charge is already refunded (or less of it is left than asked).")
    assert tenant.admin["test"].get(f"/v1/invoices/{paid['id']}").json["amount_refunded"] == "0.00"
    peer.peer.problems.clear()


@pytest.mark.slow
def test_racing_refunds_cannot_exceed_what_was_paid(postgres_only, app, tenant, paid, peer):
    n = 4
    barrier = threading.Barrier(n)

    def one(_):
        caller = Caller(app.test_client(), tenant.admin["test"].key)
        barrier.wait()
        return caller.post(f"/v1/invoices/{paid['id']}/refunds", {"amount": "50.00"})

    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(n)))
    assert sorted(r.status_code for r in responses) == [201, 201, 409, 409]
    assert {r.json["error"]["code"] for r in responses if r.status_code == 409} == {"refund_exceeds_payment"}
    assert sum(r["amount"] for r in peer.peer.refunds.values()) == 10000 and len(peer.peer.refunds) == 2
    assert tenant.admin["test"].get(f"/v1/invoices/{paid['id']}").json["amount_refunded"] == "100.00"
