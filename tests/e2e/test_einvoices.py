"""E-invoices: every finalized invoice's PDF is a Factur-X PDF/A-3b carrying its EN 16931 XML,
and the same XML is served at GET /v1/invoices/{id}/einvoice and by `aggregator invoices
einvoice` (and as UBL 2.1 with format=ubl); what the XML says is what the invoice (the API) and
its PDF say."""
from __future__ import annotations

import io
import re
from decimal import Decimal

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from tests.support.einvoices import NS, assert_valid_einvoice, assert_valid_ubl
from tests.support.invoicing import advance, pdf_text, send

SELLER = {"legal_name": "Marché Numérique SAS", "country": "FR",
          "address": {"line1": "12 rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR"},
          "tax_ids": [{"type": "eu_vat", "value": "FR40303265045"}],
          "payment_instructions": {"account_holder": "Marché Numérique SAS", "iban": "FR7630006000011234567890189",
                                   "bic": "AGRIFRPP"}}
BUYER_ADDRESS = {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117", "country": "DE"}


def _set(app, model, key, **values):
    from aggregator.db import db

    with app.app_context():
        row = db.session.get(model, key)
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()


@pytest.fixture
def eu_shop(app, make_tenant):
    """A French tenant (VAT 20 %, bank details), a German business customer, two providers."""
    from aggregator.accounts.models import Customer, TenantSettings

    shop = make_tenant(timezone="Europe/Paris", default_currency="EUR", default_tax_rate="0.2")
    _set(app, TenantSettings, (shop.id, False), tax_name="VAT", **SELLER)
    customer = shop.customer("cust-1", name="Kunde GmbH", email="billing@kunde.example", currency="EUR",
                             address=BUYER_ADDRESS)
    _set(app, Customer, customer["id"], tax_ids=[{"type": "eu_vat", "value": "DE136695976"}])
    shop.apps = [shop.provider(name="Accounting App"), shop.provider(name="Payroll App")]
    return shop


def _invoice(shop, *bills, fx=None):
    admin = shop.admin["test"]
    if fx:
        assert admin.put("/v1/fx_rates", fx).status_code == 200
    for n, (app_index, overrides) in enumerate(bills):
        send(shop.apps[app_index], f"k{n}", **{"currency": "EUR", **overrides})
    advance(shop)
    invoice = admin.get("/v1/invoices").json["data"][0]
    assert invoice["status"] == "open" and invoice["pdf_url"], invoice
    return invoice


def _pdf(shop, invoice) -> bytes:
    response = shop.admin["test"].get(f"/v1/invoices/{invoice['id']}/pdf")
    assert response.status_code == 200
    return response.data


def _einvoice(shop, invoice) -> bytes:
    response = shop.admin["test"].get(f"/v1/invoices/{invoice['id']}/einvoice")
    assert response.status_code == 200, response.json
    assert response.mimetype == "application/xml"
    return response.data


def test_a_finalized_invoice_pdf_is_a_factur_x_pdf_a_3b_with_its_xml(eu_shop):
    invoice = _invoice(eu_shop, (0, {"amount": "100.00"}), (1, {"amount": "50.00", "description": "Payroll, 12 staff"}))
    pdf = _pdf(eu_shop, invoice)
    reader = PdfReader(io.BytesIO(pdf))
    catalog = reader.trailer["/Root"]

    # the XML, attached as factur-x.xml (AFRelationship Data, text/xml), listed in the catalog's AF
    (filespec,) = [f.get_object() for f in catalog["/AF"]]
    assert filespec["/F"] == "factur-x.xml" and filespec["/AFRelationship"] == "/Data"
    embedded = filespec["/EF"]["/F"].get_object()
    assert embedded["/Subtype"] == "/text/xml"
    assert embedded.get_data() == _einvoice(eu_shop, invoice)
    assert facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)[0] == "factur-x.xml"
    assert_valid_einvoice(embedded.get_data())

    # PDF/A-3b identification and the Factur-X properties, in the one XMP packet
    xmp = catalog["/Metadata"].get_object().get_data()
    rdf = etree.fromstring(xmp[xmp.index(b"<x:xmpmeta"):xmp.index(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")])
    (description,) = [d for d in rdf.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
                      if d.get("{http://www.aiim.org/pdfa/ns/id/}part")]
    assert description.get("{http://www.aiim.org/pdfa/ns/id/}part") == "3"
    assert description.get("{http://www.aiim.org/pdfa/ns/id/}conformance") == "B"
    fx = "{urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#}"
    assert {e.tag.removeprefix(fx): e.text for e in rdf.iter() if str(e.tag).startswith(fx)} == {
        "DocumentType": "INVOICE", "DocumentFileName": "factur-x.xml", "Version": "1.0",
        "ConformanceLevel": "EN 16931"}
    assert len(rdf.findall("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}RDF")) == 1
    assert b"<pdfaSchema:prefix>fx</pdfaSchema:prefix>" in xmp  # the extension schema declaring fx

    # an output intent (sRGB) for PDF/A, and every font embedded
    (intent,) = [i.get_object() for i in catalog["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1" and "/DestOutputProfile" in intent
    fonts = _fonts(reader)
    assert fonts and all(_embedded(font) for font in fonts), [f.get("/BaseFont") for f in fonts]
    assert reader.trailer.get("/ID")  # PDF/A wants the file identifier
    assert pdf.startswith(b"%PDF-1.7")


def _fonts(reader: PdfReader) -> list:
    fonts = {}
    for page in reader.pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            fonts[id(font)] = font
            for descendant in font.get("/DescendantFonts") or ():
                fonts[id(descendant.get_object())] = descendant.get_object()
    return list(fonts.values())


def _embedded(font) -> bool:
    if font.get("/Subtype") in ("/Type0", "/Type3"):
        return True  # a composite font's glyphs are in its descendant; a Type 3 font's in its procedures
    descriptor = font["/FontDescriptor"].get_object()
    return any(key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3"))


def _text(element, path: str) -> str | None:
    return element.findtext(path, namespaces=NS)


def test_the_xml_says_what_the_invoice_says(eu_shop):
    invoice = _invoice(eu_shop, (0, {"amount": "100.00", "description": "Ledger, November",
                                     "service_period": {"start": "2026-10-25", "end": "2026-11-24"}}),
                       (1, {"amount": "18.00", "currency": "USD", "description": "Payroll, in dollars"}),
                       (1, {"amount": "50.00", "description": "Payroll, 12 staff"}),
                       fx={"base": "USD", "quote": "EUR", "rate": "0.9", "effective_date": "2026-10-25"})
    xml = _einvoice(eu_shop, invoice)
    assert_valid_einvoice(xml)
    root = etree.fromstring(xml)
    assert _text(root, "rsm:ExchangedDocument/ram:ID") == invoice["number"]
    assert _text(root, "rsm:ExchangedDocument/ram:TypeCode") == "380"
    assert _text(root, ".//ram:GuidelineSpecifiedDocumentContextParameter/ram:ID") == "urn:cen.eu:en16931:2017"

    # the lines, in the invoice's order, with its amounts, descriptions and service periods
    items = root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)
    assert [(_text(i, ".//ram:SpecifiedTradeProduct/ram:Name"),
             _text(i, ".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount"),
             _text(i, ".//ram:SpecifiedTradeProduct/ram:SellerAssignedID"),
             _period(i.find(".//ram:SpecifiedLineTradeSettlement/ram:BillingSpecifiedPeriod", NS)))
            for i in items] == [
        (line["description"], line["amount"], line["provider"],
         (line["service_period"]["start"], line["service_period"]["end"]) if line["service_period"] else None)
        for line in invoice["lines"]]
    dollars = next(i for i in items if _text(i, ".//ram:Name") == "Payroll, in dollars")
    assert "Billed as 18.00 USD at 0.9 EUR per USD" in _text(dollars, ".//ram:IncludedNote/ram:Content")
    assert "Provider: Payroll App" in _text(dollars, ".//ram:IncludedNote/ram:Content")

    # the tax summary and the totals
    settlement = root.find(".//ram:ApplicableHeaderTradeSettlement", NS)
    (tax,) = settlement.findall("ram:ApplicableTradeTax", NS)
    assert (_text(tax, "ram:CategoryCode"), _text(tax, "ram:RateApplicablePercent"), _text(tax, "ram:BasisAmount"),
            _text(tax, "ram:CalculatedAmount")) == ("S", "20", invoice["subtotal"], invoice["tax"])
    sums = settlement.find("ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert {child.tag.split("}")[1]: child.text for child in sums} == {
        "LineTotalAmount": invoice["subtotal"], "TaxBasisTotalAmount": invoice["subtotal"],
        "TaxTotalAmount": invoice["tax"], "GrandTotalAmount": invoice["total"],
        "DuePayableAmount": invoice["amount_due"]}
    assert _text(settlement, "ram:InvoiceCurrencyCode") == invoice["currency"] == "EUR"
    assert _text(settlement, ".//ram:DueDateDateTime/udt:DateTimeString") == invoice["due_date"].replace("-", "")
    assert _period(settlement.find("ram:BillingSpecifiedPeriod", NS)) == (invoice["period"]["start"],
                                                                           invoice["period"]["end"])

    # the parties and how to pay: the tenant's IBAN, the invoice number as the reference
    seller = root.find(".//ram:SellerTradeParty", NS)
    assert _text(seller, "ram:Name") == SELLER["legal_name"]
    assert _text(seller, "ram:SpecifiedTaxRegistration/ram:ID") == "FR40303265045"
    assert _text(seller, "ram:PostalTradeAddress/ram:CountryID") == "FR"
    buyer = root.find(".//ram:BuyerTradeParty", NS)
    assert (_text(buyer, "ram:Name"), _text(buyer, "ram:SpecifiedTaxRegistration/ram:ID"),
            _text(buyer, "ram:PostalTradeAddress/ram:CityName"), _text(buyer, "ram:URIUniversalCommunication/ram:URIID")
            ) == ("Kunde GmbH", "DE136695976", "Berlin", "billing@kunde.example")
    assert _text(root, ".//ram:BuyerReference") == "cust-1"
    means = settlement.find("ram:SpecifiedTradeSettlementPaymentMeans", NS)
    assert (_text(means, "ram:TypeCode"), _text(means, ".//ram:IBANID"), _text(means, ".//ram:BICID")) == (
        "58", "FR7630006000011234567890189", "AGRIFRPP")
    assert _text(settlement, "ram:PaymentReference") == invoice["number"]
    assert sum(Decimal(line["amount"]) for line in invoice["lines"]) == Decimal(invoice["subtotal"])


def test_the_xml_and_the_pdf_show_the_same_lines_totals_and_parties(eu_shop):
    from aggregator import money

    invoice = _invoice(eu_shop, (0, {"amount": "100.00", "description": "Ledger, November"}),
                       (1, {"amount": "25.99", "description": "Payroll, 12 staff"}))
    text = pdf_text(eu_shop, invoice)
    root = etree.fromstring(_einvoice(eu_shop, invoice))
    shown = lambda amount: money.display(money.parse_amount(amount, "EUR"), "EUR", "en")  # noqa: E731
    for item in root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS):
        assert _text(item, ".//ram:SpecifiedTradeProduct/ram:Name") in text
        assert shown(_text(item, ".//ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount")) in text
    sums = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    for total in ("TaxBasisTotalAmount", "TaxTotalAmount", "GrandTotalAmount"):
        assert shown(_text(sums, f"ram:{total}")) in text, total
    assert _text(root, ".//ram:SellerTradeParty/ram:Name") in text
    assert _text(root, ".//ram:BuyerTradeParty/ram:Name") in text
    assert _text(root, "rsm:ExchangedDocument/ram:ID") in text
    compact = text.replace(" ", "")  # an IBAN may be printed in groups of four
    for vat_id in root.iterfind(".//ram:SpecifiedTaxRegistration/ram:ID", NS):
        assert vat_id.text in compact
    assert _text(root, ".//ram:IBANID") in compact and _text(root, ".//ram:BICID") in compact


def _period(element) -> tuple[str, str] | None:
    if element is None:
        return None
    day = lambda tag: re.sub(r"(\d{4})(\d\d)(\d\d)", r"\1-\2-\3",  # noqa: E731
                             _text(element, f"ram:{tag}/udt:DateTimeString"))
    return day("StartDateTime"), day("EndDateTime")


def test_the_parties_kept_at_finalization_are_the_xmls_not_todays_settings(app, eu_shop):
    from aggregator.accounts.models import TenantSettings
    from aggregator.consolidate.models import Invoice

    invoice = _invoice(eu_shop, (0, {"amount": "100.00"}))
    kept = {"seller": {"legal_name": "Marché Numérique SAS", "address": SELLER["address"], "country": "FR",
                       "tax_ids": SELLER["tax_ids"], "tax_name": "VAT", "title": "Invoice"},
            "buyer": {"name": "Kunde GmbH", "address": BUYER_ADDRESS, "country": "DE",
                      "tax_ids": [{"type": "eu_vat", "value": "DE136695976"}]}}
    _set(app, Invoice, invoice["id"], parties=kept, tax_treatment="reverse_charge")
    _set(app, TenantSettings, (eu_shop.id, False), legal_name="Renamed SAS", tax_ids=[])
    root = etree.fromstring(_einvoice(eu_shop, invoice))
    assert _text(root, ".//ram:SellerTradeParty/ram:Name") == "Marché Numérique SAS"
    assert _text(root, ".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:CategoryCode") == "AE"


def test_a_draft_has_no_einvoice_and_format_is_checked(eu_shop):
    admin = eu_shop.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual"})
    send(eu_shop.apps[0], "d1", currency="EUR")
    advance(eu_shop)
    draft = admin.get("/v1/invoices").json["data"][0]
    assert draft["status"] == "draft"
    response = admin.get(f"/v1/invoices/{draft['id']}/einvoice")
    assert response.status_code == 409 and response.json["error"]["code"] == "invoice_not_finalized"
    response = admin.get(f"/v1/invoices/{draft['id']}/einvoice?format=ubl")
    assert response.status_code == 409 and response.json["error"]["code"] == "invoice_not_finalized"
    response = admin.get(f"/v1/invoices/{draft['id']}/einvoice?format=pdf")
    assert response.status_code == 422 and "format" in response.json["error"]["fields"]
    assert admin.get("/v1/invoices/inv_nope/einvoice").status_code == 404


def test_the_ubl_says_what_the_cii_and_the_invoice_say(eu_shop):
    invoice = _invoice(eu_shop, (0, {"amount": "100.00", "description": "Ledger, November"}),
                       (1, {"amount": "25.99", "description": "Payroll, 12 staff"}))
    response = eu_shop.admin["test"].get(f"/v1/invoices/{invoice['id']}/einvoice?format=ubl")
    assert response.status_code == 200 and response.mimetype == "application/xml"
    assert response.headers["Content-Disposition"] == f'inline; filename="{invoice["number"]}.ubl.xml"'
    assert_valid_ubl(response.data)
    ubl = {"cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
           "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
    root = etree.fromstring(response.data)
    assert root.findtext("cbc:ID", namespaces=ubl) == invoice["number"]
    assert [(line.findtext("cac:Item/cbc:Name", namespaces=ubl), line.findtext("cbc:LineExtensionAmount",
                                                                                namespaces=ubl))
            for line in root.findall("cac:InvoiceLine", ubl)] == [
        (line["description"], line["amount"]) for line in invoice["lines"]]
    sums = root.find("cac:LegalMonetaryTotal", ubl)
    assert (sums.findtext("cbc:TaxExclusiveAmount", namespaces=ubl), root.findtext("cac:TaxTotal/cbc:TaxAmount",
                                                                                    namespaces=ubl),
            sums.findtext("cbc:PayableAmount", namespaces=ubl)) == (invoice["subtotal"], invoice["tax"],
                                                                    invoice["total"])
    assert root.findtext("cac:AccountingCustomerParty//cac:PartyTaxScheme/cbc:CompanyID", namespaces=ubl) == (
        "DE136695976")
    assert root.findtext("cac:PaymentMeans/cac:PayeeFinancialAccount/cbc:ID", namespaces=ubl) == SELLER[
        "payment_instructions"]["iban"]


def test_the_cli_saves_the_same_xml(cli, eu_shop, tmp_path):
    invoice = _invoice(eu_shop, (0, {"amount": "100.00"}))
    scope = ["--tenant", eu_shop.id, "--mode", "test"]
    target = tmp_path / "e.xml"
    result = cli("invoices", "einvoice", invoice["id"], *scope, "-o", str(target))
    assert "Wrote" in result.output
    assert target.read_bytes() == _einvoice(eu_shop, invoice)
    assert cli("invoices", "einvoice", invoice["id"], *scope, "-o", "-").stdout_bytes == target.read_bytes()
    cli("invoices", "einvoice", invoice["id"], *scope, "--format", "ubl", "-o", str(tmp_path / "u.xml"))
    assert (tmp_path / "u.xml").read_bytes() == eu_shop.admin["test"].get(
        f"/v1/invoices/{invoice['id']}/einvoice?format=ubl").data


@pytest.mark.parametrize("body", [
    {"lines": [{"invoice_line": "BILL", "amount": "40.00"}], "reason": "product_unsatisfactory"},
    {"amount": "30.00", "reason": "requested_by_customer"},
], ids=["lines", "amount"])
def test_a_credit_note_pdf_is_a_factur_x_credit_note_of_its_invoice(eu_shop, body):
    invoice = _invoice(eu_shop, (0, {"amount": "100.00", "description": "Ledger, November"}),
                       (1, {"amount": "25.99", "description": "Payroll, 12 staff"}))
    admin = eu_shop.admin["test"]
    if "lines" in body:
        body["lines"][0]["invoice_line"] = invoice["lines"][0]["bill"]
    created = admin.post(f"/v1/invoices/{invoice['id']}/credit_notes", body)
    assert created.status_code == 201, created.json
    note = created.json
    response = admin.get(f"/v1/credit_notes/{note['id']}/pdf")
    assert response.status_code == 200
    name, xml = facturx.get_facturx_xml_from_pdf(response.data, check_xsd=True)
    assert name == "factur-x.xml"
    assert_valid_einvoice(xml)
    root = etree.fromstring(xml)
    assert (_text(root, "rsm:ExchangedDocument/ram:ID"), _text(root, "rsm:ExchangedDocument/ram:TypeCode")) == (
        note["number"], "381")
    assert _text(root, ".//ram:InvoiceReferencedDocument/ram:IssuerAssignedID") == invoice["number"]
    sums = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert (_text(sums, "ram:TaxBasisTotalAmount"), _text(sums, "ram:TaxTotalAmount"),
            _text(sums, "ram:GrandTotalAmount")) == (note["subtotal"], note["tax"], note["total"])
    assert _text(root, ".//ram:SellerTradeParty/ram:Name") == SELLER["legal_name"]
    assert _text(root, ".//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration/ram:ID") == "DE136695976"
