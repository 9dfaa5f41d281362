"""The invoice PDF (template v3) read back with pypdf, from bills sent over the API and the
test clock's close: the title, both parties' tax ids, the tax summary, the reverse charge note,
how to pay, each line's service period; a very large invoice's lines attached as CSV, the same
file as GET /v1/invoices/{id}/lines.csv."""
from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from aggregator.accounts.models import Customer, TenantSettings
from aggregator.consolidate import pdf_service
from aggregator.consolidate.models import Invoice
from aggregator.db import db
from tests.support.invoicing import advance, bill_body, send

SELLER_ADDRESS = {"line1": "1 George St", "city": "Sydney", "state": "NSW", "postal_code": "2000", "country": "AU"}
BUYER_ADDRESS = {"line1": "3 rue de Rivoli", "city": "Paris", "postal_code": "75001", "country": "FR"}
OCTOBER = {"start": "2026-10-01", "end": "2026-10-31"}


@pytest.fixture
def shop(make_tenant, app):  # an Australian tenant: its locale is en_AU (from its country)
    tenant = make_tenant(legal_name="Harbour Apps Pty Ltd", address=SELLER_ADDRESS, country="AU",
                         tax_ids=[{"type": "au_abn", "value": "51824753556"}], tax_name="GST",
                         invoice_title="Tax invoice", default_tax_rate="0.1")
    tenant.customer("cafe", name="Café de la Lune SARL", currency="AUD")
    with app.app_context():
        db.session.execute(sa.update(Customer).where(Customer.tenant_id == tenant.id).values(
            address=BUYER_ADDRESS, tax_ids=[{"type": "eu_vat", "value": "FR40303265045"}]))
        db.session.commit()
    tenant.apps = [tenant.provider(name="Ledgerly"), tenant.provider(name="CloudNest")]
    return tenant


def _settings(app, tenant, **values) -> None:
    with app.app_context():
        db.session.execute(sa.update(TenantSettings).where(TenantSettings.tenant_id == tenant.id).values(**values))
        db.session.commit()


def _invoice(tenant) -> dict:
    [invoice] = tenant.admin["test"].get("/v1/invoices").json["data"]
    return invoice


def _pdf(tenant, invoice) -> PdfReader:
    response = tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200, response.json
    return PdfReader(io.BytesIO(response.data))


def _text(reader: PdfReader) -> str:
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def _rerender(app, invoice_id: str, **columns) -> None:
    """Change what the invoice recorded and render its PDF again (as if finalized so)."""
    with app.app_context():
        db.session.execute(sa.update(Invoice).where(Invoice.id == invoice_id).values(
            pdf_path=None, pdf_sha256=None, **columns))
        db.session.commit()
        report = pdf_service.render_pending(app.extensions["aggregator.adapters"], only=[invoice_id], retry_now=True)
    assert (report.rendered, report.failed) == (1, 0)


def test_a_tax_invoice_names_both_parties_their_tax_ids_the_tax_and_each_service_period(shop):
    send(shop.apps[0], "pro", customer="cafe", amount="49.00", description="Ledgerly Pro plan",
         service_period=OCTOBER)
    send(shop.apps[1], "vm", customer="cafe", amount="12.50", description="Cloud VM")
    advance(shop)
    reader = _pdf(shop, _invoice(shop))
    text = _text(reader)
    for expected in ("Tax invoice", "Harbour Apps Pty Ltd", "1 George St", "ABN 51824753556",
                     "Café de la Lune SARL", "3 rue de Rivoli", "VAT FR40303265045",
                     "Ledgerly 1 GST 10% $49.00", "CloudNest 1 GST 10% $12.50",  # the summary per provider
                     "GST 10% on $61.50 $6.15", "Amount due $67.65",  # en_AU (from the country): A$ is $
                     "1 Oct 2026 – 31 Oct 2026",  # the line's service period
                     "Payment of $67.65 is due on"):  # no card, no Stripe: nothing is charged
        assert expected in text, expected
    assert "will be charged" not in text and "reverse charge" not in text


def test_what_was_recorded_at_finalization_is_shown_not_the_settings_of_today(shop, app):
    send(shop.apps[0], "pro", customer="cafe", amount="100.00", description="Ledgerly Pro plan")
    advance(shop)
    invoice = _invoice(shop)
    _settings(app, shop, invoice_title="Rechnung", legal_name="Renamed Later GmbH", tax_name="MwSt")
    parties = {"seller": {"legal_name": "Harbour Apps Pty Ltd", "address": SELLER_ADDRESS, "country": "IE",
                          "tax_ids": [{"type": "eu_vat", "value": "IE6388047V"}], "tax_name": "VAT",
                          "title": "Invoice"},
               "buyer": {"name": "Café de la Lune SARL", "address": BUYER_ADDRESS, "country": "FR",
                         "tax_ids": [{"type": "eu_vat", "value": "FR40303265045"}]}}
    _rerender(app, invoice["id"], parties=parties, tax_treatment="reverse_charge", tax=0, tax_rate="0",
              total=10000, amount_due=10000)
    text = _text(_pdf(shop, invoice))
    assert "Renamed Later" not in text and "Rechnung" not in text and "MwSt" not in text
    for expected in ("VAT IE6388047V", "VAT 0% (reverse charge) on $100.00 $0.00",
                     "VAT reverse charged: the customer accounts for the VAT",
                     "Customer's VAT number: FR40303265045"):
        assert expected in text, expected


def test_a_customer_paying_by_transfer_is_given_the_bank_details_and_the_reference(shop, app):
    _settings(app, shop, payment_instructions={"account_holder": "Harbour Apps Pty Ltd", "bsb": "062-000",
                                               "account_number": "12345678", "bank_name": "Commonwealth Bank"})
    send(shop.apps[0], "pro", customer="cafe", amount="49.00")
    advance(shop)
    invoice = _invoice(shop)
    text = _text(_pdf(shop, invoice))
    assert (f"Please pay $53.90 by bank transfer by {_text_date(invoice, 'en_AU')}, quoting the reference "
            f"{invoice['number']}.") in text
    for expected in ("Account holder Harbour Apps Pty Ltd", "BSB 062-000", "Account number 12345678",
                     f"Reference {invoice['number']}"):
        assert expected in text, expected


def _text_date(invoice, locale: str = "en") -> str:
    from datetime import date

    from babel.dates import format_date
    return format_date(date.fromisoformat(invoice["due_date"]), "medium", locale=locale)


def test_the_card_on_file_is_mentioned_only_when_the_tenant_has_stripe_and_the_customer_a_card(shop, app):
    from types import SimpleNamespace

    from aggregator.consolidate.parties import payment_of

    with_stripe, without = SimpleNamespace(stripe_secret_key="sealed", payment_instructions=None), \
        SimpleNamespace(stripe_secret_key=None, payment_instructions={"iban": "DE89370400440532013000"})
    card = SimpleNamespace(stripe_customer_id="cus_1", stripe_payment_method="pm_1")
    no_card = SimpleNamespace(stripe_customer_id="cus_1", stripe_payment_method=None)
    draft = SimpleNamespace(parties=None)  # read as the settings are now

    def method(settings, customer, invoice=draft):
        return pdf_service._payment(*payment_of(invoice, settings, customer)).method

    assert method(with_stripe, card) == "card"
    assert method(with_stripe, no_card) == "due"
    assert method(without, card) == "transfer"
    # a payment method without a Stripe customer is not charged by the charge run: not said to be
    assert method(with_stripe, SimpleNamespace(stripe_customer_id=None, stripe_payment_method="pm_1")) == "due"
    # once finalized, as kept then, whatever the card or the settings since
    kept = SimpleNamespace(parties={"seller": {"charges_cards": True, "payment_instructions": None},
                                    "buyer": {"card": True}})
    assert method(without, no_card, kept) == "card"


def test_a_very_large_invoice_summarizes_its_detail_and_carries_every_line_as_csv(shop, app):
    _settings(app, shop, invoice_line_limit=10)
    items = [{**bill_body(customer="cafe", amount=f"{i}.25", description=f"Seat licence {i % 4}",
                          service_period=OCTOBER), "idempotency_key": f"k{i}"} for i in range(23)]
    assert shop.apps[0].post("/v1/bills/batch", {"bills": items}).status_code == 200
    send(shop.apps[1], "vm", customer="cafe", amount="1.00", description="=HYPERLINK(\"x\")")
    advance(shop)
    invoice = _invoice(shop)
    reader = _pdf(shop, invoice)
    text = _text(reader)
    assert "Detail, summarized" in text and f"{invoice['number']}-lines.csv" in text
    assert "This invoice has 24 lines, more than the 10 printed in full" in text
    assert "Seat licence 3 5" in text  # a description, its count of lines, then their sum
    attached = reader.attachments
    assert sorted(attached) == sorted([f"{invoice['number']}-lines.csv", "factur-x.xml"])  # and its e-invoice

    served = shop.admin["test"].get(f"/v1/invoices/{invoice['id']}/lines.csv")
    assert served.status_code == 200 and served.mimetype == "text/csv"
    assert served.headers["Content-Disposition"] == f'attachment; filename="{invoice["number"]}-lines.csv"'
    assert attached[f"{invoice['number']}-lines.csv"] == [served.data]
    rows = list(csv.DictReader(io.StringIO(served.data.decode())))
    api_lines = shop.admin["test"].get(f"/v1/invoices/{invoice['id']}").json["lines"]
    assert [(r["kind"], r["bill"], r["description"], r["amount"], r["currency"]) for r in rows] == [
        (line["kind"], line["bill"] or "", line["description"] if not line["description"].startswith("=")
         else "'" + line["description"], line["amount"], "AUD") for line in api_lines]
    seat = next(r for r in rows if r["description"] == "Seat licence 0")
    assert (seat["provider_name"], seat["service_start"], seat["service_end"]) == ("Ledgerly", "2026-10-01",
                                                                                  "2026-10-31")
    assert [r["line"] for r in rows] == [str(n) for n in range(1, 25)]


def test_an_invoice_at_its_line_limit_prints_every_line_and_attaches_nothing(shop, app):
    _settings(app, shop, invoice_line_limit=10)
    items = [{**bill_body(customer="cafe", amount="1.00", description=f"Seat {i}"), "idempotency_key": f"k{i}"}
             for i in range(10)]
    assert shop.apps[0].post("/v1/bills/batch", {"bills": items}).status_code == 200
    advance(shop)
    reader = _pdf(shop, _invoice(shop))
    assert list(reader.attachments) == ["factur-x.xml"]  # its e-invoice only
    assert "Seat 9" in _text(reader) and "summarized" not in _text(reader)


def test_the_lines_of_an_unknown_invoice_are_a_404_naming_it(shop):
    response = shop.admin["test"].get("/v1/invoices/inv_nope/lines.csv")
    assert response.status_code == 404 and "inv_nope" in response.json["error"]["message"]


def test_a_customer_with_a_card_is_told_it_will_be_charged_the_others_when_it_is_due(stripe_tenant, localstripe):
    from tests.localstripe_server import CARD_OK
    from tests.support.charges import _customer_paying_with

    _customer_paying_with(stripe_tenant, localstripe, CARD_OK, "with-card")
    stripe_tenant.customer("no-card")
    app = stripe_tenant.provider(name="Ledgerly")
    send(app, "a", customer="with-card", amount="10.00")
    send(app, "b", customer="no-card", amount="20.00")
    advance(stripe_tenant)
    invoices = {i["customer_external_id"]: i for i in stripe_tenant.admin["test"].get("/v1/invoices").json["data"]}
    due = _text_date(invoices["with-card"])
    with_card = _text(_pdf(stripe_tenant, invoices["with-card"]))
    assert f"A$10.00 will be charged to your card on file on {due}." in with_card
    no_card = _text(_pdf(stripe_tenant, invoices["no-card"]))
    assert f"Payment of A$20.00 is due on {due}." in no_card and "will be charged" not in no_card
