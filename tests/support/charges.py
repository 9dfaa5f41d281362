"""Card charges against localstripe: a tenant that charges through it, a customer paying with one
of its cards, and what the charges left there and in the tenant's invoices and events."""
from __future__ import annotations

import pytest


@pytest.fixture
def stripe_tenant(tenant, localstripe):
    response = tenant.admin["test"].patch("/v1/tenant", {
        "stripe_secret_key": "sk_test_aggregator4242", "stripe_api_base": localstripe.url})
    assert response.status_code == 200, response.json
    return tenant


def _customer_paying_with(tenant, localstripe, card: str, external_id: str = "cust-1") -> dict:
    tenant.customer(external_id)
    stripe_customer, method = localstripe.customer_with_card(card)
    response = tenant.admin["test"].patch(f"/v1/customers/{external_id}", {
        "stripe_customer_id": stripe_customer, "stripe_payment_method": method})
    assert response.status_code == 200, response.json
    return response.json


def _invoice(tenant) -> dict:
    invoices = tenant.admin["test"].get("/v1/invoices").json["data"]
    assert len(invoices) == 1
    return invoices[0]


def _intents_of(localstripe, invoice_id: str) -> list:
    return [pi for pi in localstripe.payment_intents() if pi.to_dict().get("metadata",
                                                                           {}).get("invoice_id") == invoice_id]


def _event_types(tenant) -> list[str]:
    return [e["type"] for e in tenant.admin["test"].get("/v1/events", query_string={"limit": 100}).json["data"]]


def _pay_manually(app, tenant, invoice: dict, amount: int) -> str:
    """Money received by bank transfer, recorded the way the manual-payments use case does."""
    from datetime import date

    import sqlalchemy as sa

    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate import transitions as invoice_transitions
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db
    from aggregator.payments import transitions

    with app.app_context():
        as_of = db.session.get(Invoice, invoice["id"]).finalized_at
        payment = transitions.record_received({
            "tenant_id": tenant.id, "livemode": False, "invoice_id": invoice["id"],
            "customer_id": invoice["customer"],
            "gateway": "manual", "method": "bank_transfer", "trigger": "recorded", "amount": amount,
            "currency": invoice["currency"], "reference": "TRX-1", "received_on": date(2026, 12, 1),
            "created_at": as_of, "requests": 0, "hard_decline": False, "amount_refunded": 0}, as_of)
        db.session.execute(sa.update(Invoice.__table__).where(Invoice.id == invoice["id"])
                           .values(amount_paid=Invoice.__table__.c.amount_paid + amount))
        invoice_transitions.mark_paid(tenant_settings(tenant.id, False), [invoice["id"]], as_of)
        db.session.commit()
        return payment.id
