"""The EN 16931 e-invoice of every kind of invoice is valid, in both syntaxes (CII, as Factur-X
embeds it, and UBL 2.1): against the XSDs and, where Saxon is installed, the EN 16931 business
rules (tests/support/einvoices.py); and its sums are the invoice's."""
from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import facturx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from lxml import etree

from aggregator.consolidate import einvoice, ubl
from aggregator.consolidate.invoices import Line, totals
from tests.support.einvoices import NS, assert_valid_einvoice, assert_valid_ubl, schematron_failures

FR_SELLER = einvoice.party_of({
    "legal_name": "Marché Numérique SAS", "country": "FR", "tax_ids": [{"type": "eu_vat", "value": "FR40303265045"}],
    "address": {"line1": "12 rue de la Paix", "city": "Paris", "postal_code": "75002", "country": "FR"},
}, name_key="legal_name", seller=True)
DE_BUYER = einvoice.party_of({
    "name": "Kunde GmbH", "country": "DE", "tax_ids": [{"type": "eu_vat", "value": "DE136695976"}],
    "address": {"line1": "Unter den Linden 1", "city": "Berlin", "postal_code": "10117", "country": "DE"},
}, name_key="name", seller=False, email="billing@kunde.example")
FR_BUYER = replace(DE_BUYER, name="Client SARL", country="FR", vat_id="FR83404833048", city="Lyon",
                   postal_code="69001")
AU_SELLER = einvoice.party_of({
    "legal_name": "Harbour Apps Pty Ltd", "country": "AU", "tax_ids": [{"type": "au_abn", "value": "51824753556"}],
    "address": {"line1": "1 George St", "city": "Sydney", "state": "NSW", "postal_code": "2000", "country": "AU"},
}, name_key="legal_name", seller=True)
AU_BUYER = einvoice.party_of({"name": "Koala Cafe", "country": "AU",
                              "address": {"line1": "2 Pitt St", "city": "Sydney", "country": "AU"}},
                             name_key="name", seller=False)
IBAN = {"account_holder": "Marché Numérique SAS", "iban": "FR7630006000011234567890189", "bic": "AGRIFRPP"}


def bill(amount: int, description: str = "Pro plan", provider: str = "prov_a", **fields) -> Line:
    return Line("bill", amount, fields.pop("currency", "EUR"), description, bill_id=f"bill_{amount}",
                provider_id=provider, **fields)


def credit(amount: int) -> Line:
    return Line("credit", -amount, "EUR", "Credit from invoice INV-2026-000001", credit_id="cred_1")


def build(lines, *, rate="0.2", treatment="standard", currency="EUR", seller=FR_SELLER, buyer=DE_BUYER,
          means="bank", type_code=einvoice.INVOICE, preceding=(None, None)) -> einvoice.EInvoice:
    sums = totals((line.amount for line in lines), Decimal(rate) if treatment == "standard" else Decimal(0),
                  currency)
    invoice = {"number": "INV-2026-000042", "issue_date": date(2026, 11, 25), "currency": currency,
               "tax_rate": rate, "subtotal": sums.subtotal, "tax": sums.tax, "total": sums.total,
               "carried_credit": sums.carried_credit, "due_date": date(2026, 12, 2),
               "period_start": date(2026, 10, 25), "period_end": date(2026, 11, 24)}
    return einvoice.einvoice_of(
        invoice=invoice, lines=lines, seller=seller, buyer=buyer, treatment=treatment,
        provider_names={"prov_a": "Accounting App", "prov_b": "Payroll App"},
        payment_means=einvoice.payment_means_of(card=False, instructions=IBAN, currency=currency,
                                                due_date=invoice["due_date"]) if means == "bank" else means,
        buyer_reference="cust-42", type_code=type_code, preceding_number=preceding[0], preceding_date=preceding[1])


def xml_of(e: einvoice.EInvoice) -> etree._Element:
    """The CII, valid; the UBL of the same e-invoice is checked as valid too."""
    xml = einvoice.to_cii(e)
    assert_valid_einvoice(xml)
    assert_valid_ubl(ubl.to_ubl(e))
    return etree.fromstring(xml)


def text(root, path):
    return root.findtext(path, namespaces=NS)


def tax_of(root) -> tuple:
    tax = root.find(".//ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax", NS)
    return tuple(text(tax, f"ram:{name}") for name in ("CategoryCode", "RateApplicablePercent", "BasisAmount",
                                                        "CalculatedAmount", "ExemptionReasonCode",
                                                        "ExemptionReason"))


def sums_of(root) -> dict:
    sums = root.find(".//ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    return {child.tag.split("}")[1]: child.text for child in sums}


def test_one_provider_standard_rate():
    root = xml_of(build([bill(10_000)]))
    assert tax_of(root) == ("S", "20", "100.00", "20.00", None, None)
    assert sums_of(root) == {"LineTotalAmount": "100.00", "TaxBasisTotalAmount": "100.00",
                             "TaxTotalAmount": "20.00", "GrandTotalAmount": "120.00", "DuePayableAmount": "120.00"}
    assert text(root, ".//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "58"


def test_several_providers_with_service_periods_keep_their_order_and_names():
    root = xml_of(build([bill(10_000, service_start=date(2026, 10, 25), service_end=date(2026, 11, 24)),
                         bill(2_599, "Payroll, 12 staff", "prov_b"), bill(1, "Rounding", "prov_b")]))
    items = root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)
    assert [(text(i, ".//ram:LineID"), text(i, ".//ram:Name"), text(i, ".//ram:IncludedNote/ram:Content"))
            for i in items] == [("1", "Pro plan", "Provider: Accounting App"),
                                ("2", "Payroll, 12 staff", "Provider: Payroll App"),
                                ("3", "Rounding", "Provider: Payroll App")]
    period = items[0].find(".//ram:BillingSpecifiedPeriod", NS)
    assert [text(period, f"ram:{end}/udt:DateTimeString") for end in ("StartDateTime", "EndDateTime")] == [
        "20261025", "20261124"]
    assert items[1].find(".//ram:BillingSpecifiedPeriod", NS) is None
    assert tax_of(root)[2:4] == ("126.00", "25.20")


def test_a_line_converted_from_another_currency_says_what_it_was_billed_as():
    root = xml_of(build([bill(1_800 * 9 // 10, "Payroll", original_amount=1_800, original_currency="USD",
                              fx_rate=Decimal("0.9"))]))
    assert text(root, ".//ram:IncludedNote/ram:Content") == (
        "Provider: Accounting App; Billed as 18.00 USD at 0.9 EUR per USD")
    assert text(root, ".//ram:LineTotalAmount") == "16.20"


def test_reverse_charge_is_category_ae_with_no_tax_and_its_reason():
    e = build([bill(10_000)], rate="0.2", treatment="reverse_charge")
    root = xml_of(e)
    assert tax_of(root) == ("AE", "0", "100.00", "0.00", "VATEX-EU-AE", "Reverse charge")
    assert text(root, ".//ram:IncludedSupplyChainTradeLineItem//ram:CategoryCode") == "AE"
    assert "reverse charged" in text(root, "rsm:ExchangedDocument/ram:IncludedNote/ram:Content")
    assert sums_of(root)["GrandTotalAmount"] == "100.00"


def test_an_exempt_customer_is_category_e_with_a_reason():
    root = xml_of(build([bill(10_000)], rate="0", treatment="exempt", buyer=FR_BUYER))
    assert tax_of(root) == ("E", "0", "100.00", "0.00", None, "Exempt from tax")


def test_no_tax_at_a_zero_rate_is_category_z():
    root = xml_of(build([bill(10_000)], rate="0", buyer=FR_BUYER))
    assert tax_of(root) == ("Z", "0", "100.00", "0.00", None, None)


def test_an_applied_credit_is_a_negative_line_with_a_positive_price():
    root = xml_of(build([bill(10_000), credit(2_500)]))
    credit_line = root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)[1]
    assert text(credit_line, ".//ram:ChargeAmount") == "25.00"
    assert credit_line.find(".//ram:BilledQuantity", NS).text == "-1"
    assert text(credit_line, ".//ram:LineTotalAmount") == "-25.00"
    assert sums_of(root)["DuePayableAmount"] == "90.00"  # 75.00 and 20 %


def test_a_negative_subtotal_is_carried_forward_as_a_charge_so_the_sums_hold():
    e = build([bill(1_000), credit(6_000)])
    root = xml_of(e)
    assert sums_of(root) == {"LineTotalAmount": "-50.00", "ChargeTotalAmount": "50.00",
                             "TaxBasisTotalAmount": "0.00", "TaxTotalAmount": "0.00", "GrandTotalAmount": "0.00",
                             "DuePayableAmount": "0.00"}
    charge = root.find(".//ram:SpecifiedTradeAllowanceCharge", NS)
    assert text(charge, "ram:Reason") == einvoice.CARRIED_CREDIT_REASON and text(charge, "ram:ActualAmount") == "50.00"


def test_a_credit_note_is_type_381_and_names_the_invoice_it_credits():
    root = xml_of(build([bill(2_500, "Refund of the Pro plan")], type_code=einvoice.CREDIT_NOTE,
                        preceding=("INV-2026-000041", date(2026, 10, 25))))
    assert text(root, "rsm:ExchangedDocument/ram:TypeCode") == "381"
    referenced = root.find(".//ram:InvoiceReferencedDocument", NS)
    assert text(referenced, "ram:IssuerAssignedID") == "INV-2026-000041"
    assert text(referenced, ".//qdt:DateTimeString") == "20261025"


def test_a_card_on_file_is_payment_means_48():
    means = einvoice.payment_means_of(card=True, instructions=IBAN, currency="EUR", due_date=date(2026, 12, 2))
    root = xml_of(build([bill(10_000)], means=means))
    assert text(root, ".//ram:SpecifiedTradeSettlementPaymentMeans/ram:TypeCode") == "48"
    assert "2026-12-02" in text(root, ".//ram:SpecifiedTradeSettlementPaymentMeans/ram:Information")
    assert root.find(".//ram:IBANID", NS) is None


def test_an_australian_tax_invoice_in_gst_with_a_bsb_account():
    means = einvoice.payment_means_of(card=False, currency="AUD", due_date=None, instructions={
        "account_holder": "Harbour Apps Pty Ltd", "bsb": "062-000", "account_number": "12345678",
        "bank_name": "CBA"})
    root = xml_of(build([bill(1_999, currency="AUD")], rate="0.1", currency="AUD", seller=AU_SELLER,
                        buyer=AU_BUYER, means=means))
    seller = root.find(".//ram:SellerTradeParty", NS)
    assert text(seller, "ram:SpecifiedLegalOrganization/ram:ID") == "51824753556"
    assert seller.find("ram:SpecifiedTaxRegistration/ram:ID", NS).attrib == {"schemeID": "FC"}
    assert text(seller, "ram:SpecifiedTaxRegistration/ram:ID") == "51824753556"
    assert text(seller, "ram:PostalTradeAddress/ram:CountrySubDivisionName") == "NSW"
    means_element = root.find(".//ram:SpecifiedTradeSettlementPaymentMeans", NS)
    assert (text(means_element, "ram:TypeCode"), text(means_element, ".//ram:ProprietaryID"),
            text(means_element, "ram:Information")) == ("30", "12345678", "Bank transfer (CBA, BSB 062-000)")
    assert tax_of(root)[:4] == ("S", "10", "19.99", "2.00")


def test_a_currency_without_minor_units_has_no_decimals():
    root = xml_of(build([bill(15_000, currency="JPY")], rate="0.1", currency="JPY"))
    assert sums_of(root)["GrandTotalAmount"] == "16500"


def test_without_bank_details_or_a_card_no_payment_means_is_claimed():
    means = einvoice.payment_means_of(card=False, instructions=None, currency="EUR", due_date=None)
    assert means is None
    root = xml_of(build([bill(10_000)], means=means))
    assert root.find(".//ram:SpecifiedTradeSettlementPaymentMeans", NS) is None


@pytest.mark.parametrize("treatment", ["standard", "exempt"])
def test_a_seller_without_tax_ids_charging_no_tax_is_outside_its_scope(treatment):
    anonymous = replace(AU_SELLER, id="ten_123", legal_id=None, tax_number=None)
    root = xml_of(build([bill(1_000, currency="AUD")], rate="0", currency="AUD", seller=anonymous, buyer=DE_BUYER,
                        means=None, treatment=treatment))
    assert text(root, ".//ram:SellerTradeParty/ram:ID") == "ten_123"  # BR-CO-26: the seller is identified
    assert tax_of(root) == ("O", None, "10.00", "0.00", "VATEX-EU-O", "Not subject to VAT")
    assert root.find(".//ram:BuyerTradeParty/ram:SpecifiedTaxRegistration", NS) is None  # BR-O-02


def test_a_description_xml_cannot_hold_is_cleaned_not_fatal():
    root = xml_of(build([bill(1_000, "Seats <b>&</b> \"more\"\x07"), bill(500, "\x00\x1f ")]))
    assert [text(item, ".//ram:Name") for item in root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)] == [
        'Seats <b>&</b> "more"', "Charge"]


def test_a_buyer_without_an_address_makes_valid_xml_that_en_16931_finds_incomplete():
    e = build([bill(1_000)], buyer=einvoice.Party("Walk-in customer", None))
    xml = einvoice.to_cii(e)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert etree.fromstring(xml).find(".//ram:BuyerTradeParty/ram:PostalTradeAddress", NS) is None
    failures = schematron_failures(xml)
    if failures is not None:  # the buyer's postal address and its country are missing: the data's gap
        assert sorted(failure.split(":")[0] for failure in failures) == ["BR-10", "BR-11", "FX-SCH-A-000419"]
        assert all("PostalTradeAddress" in f or "Buyer postal address" in f for f in failures), failures
    assert facturx.xml_check_xsd(ubl.to_ubl(e), flavor="ubl-2.1-invoice")


def test_a_draft_has_no_einvoice():
    e = build([bill(100)])
    with pytest.raises(einvoice.EInvoiceError):
        einvoice.einvoice_of(invoice={"number": None}, lines=[], seller=e.seller, buyer=e.buyer,
                             treatment="standard", provider_names={}, payment_means=None, buyer_reference=None)


amounts = st.integers(-50_000, 500_000).filter(bool)


descriptions = st.text(st.characters(codec="utf-8"), max_size=40)  # &, <, quotes, control characters…


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(st.tuples(amounts, st.sampled_from(["prov_a", "prov_b"]), descriptions), min_size=1,
                      max_size=6),
       applied=st.integers(0, 80_000), rate=st.sampled_from(["0", "0.05", "0.1", "0.19", "0.2", "0.077"]),
       treatment=st.sampled_from(["standard", "reverse_charge", "exempt"]),
       seller=st.sampled_from([FR_SELLER, replace(FR_SELLER, vat_id=None, id="ten_1")]))
def test_any_invoice_makes_a_valid_einvoice_whose_sums_are_the_invoices(lines, applied, rate, treatment, seller):
    # a seller without a tax id that charges tax or reverse charges is refused (BR-S-02, BR-AE-02)
    assume(seller.vat_id or (treatment != "reverse_charge" and rate == "0"))
    invoice_lines = [bill(amount, description, provider) for amount, provider, description in lines]
    invoice_lines += [credit(applied)] if applied else []
    e = build(invoice_lines, rate=rate, treatment=treatment, buyer=DE_BUYER if treatment != "exempt" else FR_BUYER,
              seller=seller)
    root = xml_of(e)
    sums = totals((line.amount for line in invoice_lines), Decimal(rate) if treatment == "standard" else Decimal(0),
                  "EUR")
    assert e.line_total == sums.subtotal and e.tax_total == sums.tax and e.grand_total == e.due_payable == sums.total
    assert sums_of(root)["DuePayableAmount"] == f"{Decimal(sums.total) / 100:.2f}"
    names = [text(item, ".//ram:SpecifiedTradeProduct/ram:Name")
             for item in root.findall(".//ram:IncludedSupplyChainTradeLineItem", NS)]
    assert names == [einvoice._xml_chars(line.description).strip() or "Charge"
                     for line in invoice_lines[:len(lines)]] + (
        [invoice_lines[-1].description] if applied else [])
