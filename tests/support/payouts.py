"""Payouts over the API: a market whose period is invoiced, paid by bank transfer, its payouts
listed; and a payout sent by Stripe Connect to the tests' own Stripe peer, its send queue run."""
from __future__ import annotations

import pytest

from tests.support.invoicing import AFTER_END, advance, send

# Sydney: the payout day 2026-12-10 starts at 2026-12-09T13:00Z.
AFTER_PAYOUT_DAY = "2026-12-10T00:00:00+00:00"
PAYOUT_DAY = "2026-12-10T00:00:00+00:00"  # Sydney: the payout day 2026-12-10 has begun


@pytest.fixture
def market(tenant):
    """Two providers (30% revenue share, and 0%), one customer, bills invoiced at the close."""
    tenant.customer("cust-1", name="Customer One")
    tenant.apps = [tenant.provider(name="Accounting App", rate="0.30"), tenant.provider(name="SMS Gateway", rate="0")]
    accounting, sms = tenant.apps
    send(accounting, "a1", amount="100.00")  # fee 30.00, net 70.00
    send(accounting, "a2", amount="10.01", revenue_share=False)  # pass-through: net 10.01
    send(sms, "s1", amount="25.00")  # rate 0: net 25.00
    advance(tenant, AFTER_END)
    (invoice,) = tenant.admin["test"].get("/v1/invoices").json["data"]
    tenant.invoice = invoice
    return tenant


def _pay(tenant, amount: str, reference: str = "bank-1"):
    response = tenant.admin["test"].post(f"/v1/invoices/{tenant.invoice['id']}/payments",
                                         {"amount": amount, "method": "bank_transfer", "reference": reference,
                                          "received_on": "2026-11-26"})
    assert response.status_code == 201, response.json
    return response.json


def _payouts(tenant, **query):
    response = tenant.admin["test"].get("/v1/payouts", query_string=query)
    assert response.status_code == 200, response.json
    return {p["provider"]: p for p in response.json["data"]}


def _paid_and_built(tenant, peer, destination: str = "acct_provider_a") -> dict:
    """An invoice of 120.00 AUD charged by card at the peer (its charge day, 2 Dec), and the
    payout day's payout of its provider (30%: 84.00), approved."""
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"stripe_secret_key": "sk_test_peer4242",
                                      "stripe_api_base": peer.url}).status_code == 200
    tenant.customer("cust-1")
    assert admin.patch("/v1/customers/cust-1", {"stripe_customer_id": "cus_A",
                                                "stripe_payment_method": "pm_A"}).status_code == 200
    provider = tenant.provider()
    assert admin.patch(f"/v1/providers/{provider.id}", {"stripe_account_id": destination}).status_code == 200
    send(provider, "b1", amount="120.00")
    advance(tenant, PAYOUT_DAY)
    (payout,) = admin.get("/v1/payouts").json["data"]
    assert payout["method"] == "stripe" and payout["amount"] == "84.00" and payout["destination"] == destination
    approved = admin.post(f"/v1/payouts/{payout['id']}/approve")
    assert approved.status_code == 200, approved.json
    return approved.json


def _run_queue(app, tenant, now):
    from aggregator import adapters as edge
    from aggregator.due import Lane
    from aggregator.payouts.due_work import SEND_QUEUE

    with app.app_context():
        return SEND_QUEUE.run_batch(edge.current(), now, 50, Lane(tenant.id, False))


def _payout(tenant, payout_id: str) -> dict:
    return tenant.admin["test"].get(f"/v1/payouts/{payout_id}").json
