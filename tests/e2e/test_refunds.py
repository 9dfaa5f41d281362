"""Refunds over HTTP: a card payment refunded through localstripe, in part then in full, never
beyond what was paid; money received outside Stripe refunded as manual; tenant and mode apart."""
from __future__ import annotations

import json

import pytest

from tests.localstripe_server import CARD_OK
from tests.support.charges import _customer_paying_with, _event_types, _intents_of, _invoice, _pay_manually
from tests.support.invoicing import advance, send

PAID = "2026-12-20T00:00:00+00:00"  # past the charge instant of the period 2026-10-25


@pytest.fixture
def paid_by_card(stripe_tenant, localstripe) -> dict:
    """An invoice of 120.00 AUD charged by card at its charge instant."""
    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    send(stripe_tenant.provider(), "b1", amount="120.00")
    advance(stripe_tenant, PAID)
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "paid", invoice
    return invoice


def _refund(tenant, invoice_id: str, mode: str = "test", **body):
    return tenant.admin[mode].post(f"/v1/invoices/{invoice_id}/refunds", body)


def _stripe_refunds(localstripe, refund_ids: list[str]) -> list:
    return [r for r in localstripe.client.v1.refunds.list(params={"limit": 100}).auto_paging_iter()
            if r.to_dict().get("metadata", {}).get("refund_id") in refund_ids]


def test_a_card_payment_is_refunded_in_part_then_in_full_through_stripe(stripe_tenant, paid_by_card, localstripe):
    admin = stripe_tenant.admin["test"]
    partial = _refund(stripe_tenant, paid_by_card["id"], amount="20.00", note="goodwill")
    assert partial.status_code == 201, partial.json
    body = partial.json
    assert body["status"] == "succeeded" and body["gateway"] == "stripe" and body["amount"] == "20.00"
    assert body["stripe_refund"].startswith("re_") and body["note"] == "goodwill"
    invoice = admin.get(f"/v1/invoices/{paid_by_card['id']}").json
    assert invoice["status"] == "paid" and invoice["amount_refunded"] == "20.00"

    rest = _refund(stripe_tenant, paid_by_card["id"])  # default: all that is left of the payment
    assert rest.status_code == 201 and rest.json["amount"] == "100.00" and rest.json["status"] == "succeeded"
    invoice = admin.get(f"/v1/invoices/{paid_by_card['id']}").json
    assert invoice["status"] == "paid" and invoice["amount_refunded"] == "120.00"

    at_stripe = _stripe_refunds(localstripe, [body["id"], rest.json["id"]])
    assert sorted(r.amount for r in at_stripe) == [2000, 10000]
    (intent,) = _intents_of(localstripe, paid_by_card["id"])
    assert {r.payment_intent for r in at_stripe} == {intent.id}
    assert {r.metadata["payment_id"] for r in at_stripe} == {body["payment"]}
    assert at_stripe[0].metadata["tenant"] == stripe_tenant.id and at_stripe[0].metadata["mode"] == "test"

    again = _refund(stripe_tenant, paid_by_card["id"], amount="0.01")
    assert again.status_code == 409 and again.json["error"]["code"] == "nothing_to_refund"
    listed = admin.get(f"/v1/invoices/{paid_by_card['id']}/refunds").json["data"]
    assert [r["id"] for r in listed] == [rest.json["id"], body["id"]]
    types = _event_types(stripe_tenant)
    assert types.count("refund.created") == 2 and types.count("refund.succeeded") == 2


def test_a_refund_beyond_what_is_left_is_refused(stripe_tenant, paid_by_card, localstripe):
    too_much = _refund(stripe_tenant, paid_by_card["id"], amount="120.01")
    assert too_much.status_code == 409 and too_much.json["error"]["code"] == "refund_exceeds_payment"
    assert "amount" in too_much.json["error"]["fields"]
    assert _refund(stripe_tenant, paid_by_card["id"], amount="100.00").status_code == 201
    over = _refund(stripe_tenant, paid_by_card["id"], amount="20.01")
    assert over.status_code == 409 and over.json["error"]["code"] == "refund_exceeds_payment"
    for bad in ("1.001", "0", "-5.00", "ten"):
        refused = _refund(stripe_tenant, paid_by_card["id"], amount=bad)
        assert refused.status_code == 422 and "amount" in refused.json["error"]["fields"], bad
    wrong_payment = _refund(stripe_tenant, paid_by_card["id"], payment="pay_nope")
    assert wrong_payment.status_code == 404
    invoice = stripe_tenant.admin["test"].get(f"/v1/invoices/{paid_by_card['id']}").json
    assert invoice["amount_refunded"] == "100.00"


def test_an_unpaid_invoice_has_nothing_to_refund(tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    assert invoice["status"] == "open"
    refused = _refund(tenant, invoice["id"])
    assert refused.status_code == 409 and refused.json["error"]["code"] == "nothing_to_refund"
    assert _refund(tenant, "inv_nope").status_code == 404


def test_money_received_by_transfer_is_refunded_as_manual(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    payment_id = _pay_manually(app, tenant, invoice, 5000)
    refund = _refund(tenant, invoice["id"], amount="15.00", reason="requested_by_customer")
    assert refund.status_code == 201, refund.json
    assert refund.json["gateway"] == "manual" and refund.json["status"] == "succeeded"
    assert refund.json["payment"] == payment_id and refund.json["stripe_refund"] is None
    assert refund.json["settled_at"] is not None and refund.json["reason"] == "requested_by_customer"
    invoice = tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}").json
    assert invoice["status"] == "paid" and invoice["amount_refunded"] == "15.00"
    over = _refund(tenant, invoice["id"], amount="35.01")
    assert over.status_code == 409 and over.json["error"]["code"] == "refund_exceeds_payment"


def test_a_null_amount_or_payment_is_refused_not_taken_as_everything(app, tenant):
    """`"amount": null` is not an absent amount: it is refused naming the field, and nothing
    is refunded (an absent amount refunds everything that is left)."""
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    for field in ("amount", "payment"):
        refused = _refund(tenant, invoice["id"], **{field: None})
        assert refused.status_code == 422, refused.json
        assert refused.json["error"]["type"] == "validation_error" and list(refused.json["error"]["fields"]) == [field]
    invoice = tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}").json
    assert invoice["amount_refunded"] == "0.00"
    assert tenant.admin["test"].get("/v1/refunds").json["data"] == []


def test_refunds_are_seen_only_by_their_tenant_in_their_mode(app, tenant, make_tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    refund = _refund(tenant, invoice["id"], amount="5.00").json
    admin = tenant.admin["test"]
    assert admin.get(f"/v1/refunds/{refund['id']}").json["id"] == refund["id"]
    assert [r["id"] for r in admin.get("/v1/refunds", query_string={"invoice": invoice["id"]}).json["data"]] \
        == [refund["id"]]
    assert admin.get("/v1/refunds", query_string={"payment": refund["payment"], "status": "failed"}).json["data"] \
        == []
    other = make_tenant()
    for caller in (tenant.admin["live"], other.admin["test"]):
        assert caller.get(f"/v1/refunds/{refund['id']}").status_code == 404
        assert caller.get("/v1/refunds").json["data"] == []
        assert caller.get(f"/v1/invoices/{invoice['id']}/refunds").status_code == 404
        assert caller.post(f"/v1/invoices/{invoice['id']}/refunds", {}).status_code == 404


def test_the_command_line_refunds_and_lists(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    runner = app.test_cli_runner()
    created = runner.invoke(args=["refunds", "create", invoice["id"], "--tenant", tenant.id, "--mode", "test",
                                  "--amount", "7.50", "--reason", "duplicate", "--json"])
    assert created.exit_code == 0, created.output
    refund = json.loads(created.stdout)
    assert refund["amount"] == "7.50" and refund["status"] == "succeeded"
    listed = runner.invoke(args=["refunds", "list", "--tenant", tenant.id, "--mode", "test", "--json"])
    assert listed.exit_code == 0 and [r["id"] for r in json.loads(listed.stdout)["data"]] == [refund["id"]]
    refused = runner.invoke(args=["refunds", "create", invoice["id"], "--tenant", tenant.id, "--mode", "test",
                                  "--amount", "50.00"])
    assert refused.exit_code == 1 and "left to refund" in refused.output
