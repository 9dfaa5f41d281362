"""An invoice keeps who issued it to whom as they were when it was finalized (at the close, or
by finalize), whatever the tenant and the customer change afterwards; its tax treatment is
decided with its amounts: a reverse-charged invoice charges no tax."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from aggregator.consolidate.models import Invoice
from aggregator.consolidate.parties import parties_of, treatment_of
from aggregator.db import db
from tests.support.invoicing import advance, send

ABN = {"type": "au_abn", "value": "83914571673"}
SELLER_AU = {"legal_name": "Marketplace Pty Ltd", "country": "AU", "tax_ids": [{"type": "au_abn",
                                                                                "value": "83 914 571 673"}],
             "tax_name": "GST", "invoice_title": "Tax invoice",
             "address": {"line1": "1 George St", "city": "Sydney", "country": "AU"}}


def _invoice(tenant, customer="cust-1") -> dict:
    [invoice] = tenant.admin["test"].get(f"/v1/invoices?customer={customer}").json["data"]
    return invoice


def test_an_invoice_finalized_at_the_close_keeps_its_parties_after_the_settings_change(app, tenant):
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {**SELLER_AU, "default_tax_rate": "0.10"}).status_code == 200
    tenant.customer("cust-1", name="Customer One", address={"city": "Melbourne", "country": "AU"},
                    tax_ids=[{"type": "au_abn", "value": "51 824 753 556"}])
    send(tenant.provider(), "b1", amount="100.00")
    advance(tenant)
    invoice = _invoice(tenant)
    expected = {
        "seller": {"legal_name": "Marketplace Pty Ltd", "address": SELLER_AU["address"], "country": "AU",
                   "tax_ids": [ABN], "tax_name": "GST", "title": "Tax invoice", "charges_cards": False,
                   "payment_instructions": None},
        "buyer": {"name": "Customer One", "address": {"city": "Melbourne", "country": "AU"}, "country": "AU",
                  "tax_ids": [{"type": "au_abn", "value": "51824753556"}], "card": False}}
    assert invoice["status"] == "open" and invoice["parties"] == expected
    assert (invoice["tax_treatment"], invoice["tax"]) == ("standard", "10.00")

    admin.patch("/v1/tenant", {"legal_name": "Renamed Pty Ltd", "tax_ids": [], "tax_name": "VAT",
                               "invoice_title": "Invoice", "address": None})
    admin.patch("/v1/customers/cust-1", {"name": "Someone Else", "tax_ids": [], "address": None})
    assert _invoice(tenant)["parties"] == expected  # as it was finalized
    finalized = admin.get("/v1/events?type=invoice.finalized").json["data"][0]["data"]["object"]
    assert finalized["parties"] == expected and finalized["tax_treatment"] == "standard"
    with app.app_context():  # what the PDF and the e-invoice read
        row = db.session.get(Invoice, invoice["id"])
        assert parties_of(row) == expected and treatment_of(row) == "standard"


def test_a_draft_takes_its_parties_when_it_is_finalized(app, tenant):
    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {**SELLER_AU, "invoice_review": "manual"})
    tenant.customer("cust-1", name="Customer One")
    send(tenant.provider(), "b1", amount="100.00")
    advance(tenant)
    draft = _invoice(tenant)
    assert draft["status"] == "draft" and draft["parties"] is None
    assert draft["tax_treatment"] == "exempt"  # the tenant's rate is 0: nothing is charged
    with app.app_context():  # a draft's documents show the live settings
        assert parties_of(db.session.get(Invoice, draft["id"]))["seller"]["legal_name"] == "Marketplace Pty Ltd"

    admin.patch("/v1/tenant", {"legal_name": "Later Pty Ltd"})
    admin.patch("/v1/customers/cust-1", {"tax_ids": [{"type": "au_abn", "value": "51824753556"}]})
    finalized = admin.post(f"/v1/invoices/{draft['id']}/finalize")
    assert finalized.status_code == 200, finalized.json
    parties = finalized.json["parties"]
    assert parties["seller"]["legal_name"] == "Later Pty Ltd" and parties["seller"]["tax_ids"] == [ABN]
    assert parties["buyer"] == {"name": "Customer One", "address": None, "country": None,
                                "tax_ids": [{"type": "au_abn", "value": "51824753556"}], "card": False}

    admin.patch("/v1/tenant", {"legal_name": "Even Later Pty Ltd"})
    assert _invoice(tenant)["parties"] == parties


FR_VAT = [{"type": "eu_vat", "value": "FR40303265045"}]


@pytest.fixture
def german_seller(tenant):
    tenant.admin["test"].patch("/v1/tenant", {
        "country": "DE", "tax_ids": [{"type": "eu_vat", "value": "DE136695976"}], "tax_name": "VAT",
        "default_tax_rate": "0.19", "reverse_charge": True})
    return tenant


def test_an_exempt_eu_business_in_another_member_state_is_reverse_charged(german_seller):
    tenant = german_seller
    tenant.customer("fr-business", name="Acme SARL", tax_exempt=True, address={"country": "FR"}, tax_ids=FR_VAT)
    tenant.customer("de-business", name="Muster GmbH", address={"country": "DE"},
                    tax_ids=[{"type": "eu_vat", "value": "DE136695976"}])
    tenant.customer("fr-private", name="Jean", tax_exempt=True, address={"country": "FR"})
    provider = tenant.provider()
    for n, customer in enumerate(["fr-business", "de-business", "fr-private"]):
        send(provider, f"b{n}", customer=customer, amount="100.00")
    upcoming = tenant.admin["test"].get("/v1/customers/fr-business/upcoming_invoice").json
    assert (upcoming["tax_treatment"], upcoming["tax_rate"], upcoming["total"]) == ("reverse_charge", "0", "100.00")
    advance(tenant)
    reversed_ = _invoice(tenant, "fr-business")
    assert (reversed_["tax_treatment"], reversed_["tax_rate"], reversed_["tax"], reversed_["total"]) == (
        "reverse_charge", "0", "0.00", "100.00")
    assert reversed_["parties"]["buyer"]["tax_ids"] == FR_VAT
    standard = _invoice(tenant, "de-business")
    assert (standard["tax_treatment"], standard["tax_rate"], standard["tax"]) == ("standard", "0.19", "19.00")
    exempt = _invoice(tenant, "fr-private")  # exempt, but no VAT number: not reverse charged
    assert (exempt["tax_treatment"], exempt["tax"]) == ("exempt", "0.00")


def test_a_draft_whose_buyer_lost_its_vat_number_is_finalized_exempt_not_reverse_charged(german_seller):
    tenant = german_seller
    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual"})
    tenant.customer("fr-business", name="Acme SARL", tax_exempt=True, address={"country": "FR"}, tax_ids=FR_VAT)
    send(tenant.provider(), "b1", customer="fr-business", amount="100.00")
    advance(tenant)
    draft = _invoice(tenant, "fr-business")
    assert (draft["status"], draft["tax_treatment"]) == ("draft", "reverse_charge")
    admin.patch("/v1/customers/fr-business", {"tax_ids": []})
    finalized = admin.post(f"/v1/invoices/{draft['id']}/finalize").json
    assert (finalized["tax_treatment"], finalized["tax"], finalized["total"]) == ("exempt", "0.00", "100.00")


def test_without_the_tenant_enabling_it_nothing_is_reverse_charged(german_seller):
    tenant = german_seller
    tenant.admin["test"].patch("/v1/tenant", {"reverse_charge": False})
    tenant.customer("fr-business", tax_exempt=True, address={"country": "FR"}, tax_ids=FR_VAT)
    send(tenant.provider(), "b1", customer="fr-business", amount="100.00")
    advance(tenant)
    assert _invoice(tenant, "fr-business")["tax_treatment"] == "exempt"


def test_an_invoice_from_before_treatments_were_kept_reads_it_from_its_rate(app, tenant):
    tenant.admin["test"].patch("/v1/tenant", {"default_tax_rate": "0.10"})
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="100.00")
    advance(tenant)
    invoice = _invoice(tenant)
    with app.app_context():
        db.session.execute(sa.update(Invoice).where(Invoice.id == invoice["id"])
                           .values(tax_treatment=None, parties=None))
        db.session.commit()
    older = _invoice(tenant)
    assert (older["tax_treatment"], older["parties"]) == ("standard", None)
    with app.app_context():
        assert parties_of(db.session.get(Invoice, invoice["id"]))["buyer"]["name"] == "cust-1"
