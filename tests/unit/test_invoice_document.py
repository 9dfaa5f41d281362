"""What the invoice document (template v3) says, from plain values: who issues it to whom, the
tax, how it is paid, how plan and usage lines read, and when a large invoice's detail is
summarized."""
from __future__ import annotations

from datetime import date

import pytest

from aggregator.consolidate.document import (
    DocumentLine,
    Payment,
    invoice_document,
    plan_fee_details,
    tax_id_text,
    usage_details,
)

SELLER = {"legal_name": "Harbour Apps Pty Ltd", "address": {"line1": "1 George St", "city": "Sydney", "state": "NSW",
                                                          "postal_code": "2000", "country": "AU"},
          "country": "AU", "tax_ids": [{"type": "au_abn", "value": "51824753556"}], "tax_name": "GST",
          "title": "Tax invoice"}
BUYER = {"name": "Café de la Lune SARL", "address": {"line1": "3 rue de Rivoli", "city": "Paris", "country": "FR"},
         "country": "FR", "tax_ids": [{"type": "eu_vat", "value": "FR40303265045"}]}


def line(provider="prov_a", amount=1000, description="Seats", start=date(2026, 10, 1), end=date(2026, 10, 31),
         details=()) -> DocumentLine:
    return DocumentLine("bill", provider, description, start, end, amount, None, None, None, details)


def document(lines=None, *, parties=None, treatment="standard", payment=None, limit=None, tax_rate="0.1",
             amount_due=None, tenant=None, customer=None, locale="en") -> dict:
    lines = lines if lines is not None else [line(), line("prov_b", 500, "Backups", None, None)]
    subtotal = sum(item.amount for item in lines)
    tax = subtotal // 10 if treatment == "standard" else 0
    return invoice_document(
        invoice={"number": "INV-2026-000007", "currency": "AUD", "issue_date": date(2026, 11, 25),
                 "period_start": date(2026, 10, 25), "period_end": date(2026, 11, 24), "due_date": date(2026, 12, 2),
                 "subtotal": subtotal, "tax": tax, "tax_rate": tax_rate, "total": subtotal + tax,
                 "amount_due": subtotal + tax if amount_due is None else amount_due, "carried_credit": 0},
        lines=lines, provider_names={"prov_a": "Ledgerly", "prov_b": "CloudNest"},
        tenant=tenant or {"legal_name": "Live Name Pty Ltd", "logo": None, "address_lines": [],
                          "tax_ids": [{"type": "au_abn", "value": "11111111111"}], "tax_name": "Tax",
                          "title": "Invoice"},
        customer=customer or {"name": "Live Customer", "email": "ap@example.com", "external_id": "cafe",
                              "address_lines": [], "tax_ids": []},
        locale=locale, parties=parties, tax_treatment=treatment, payment=payment, line_limit=limit,
        lines_file="INV-2026-000007-lines.csv")


def test_the_recorded_parties_name_seller_and_buyer_with_their_tax_ids_and_the_title():
    doc = document(parties={"seller": SELLER, "buyer": BUYER})
    assert doc["title"] == "Tax invoice"
    assert doc["seller"]["name"] == "Harbour Apps Pty Ltd" and doc["seller"]["tax_ids"] == ["ABN 51824753556"]
    assert doc["seller"]["address_lines"] == ["1 George St", "Sydney NSW 2000", "AU"]
    assert doc["buyer"]["name"] == "Café de la Lune SARL" and doc["buyer"]["tax_ids"] == ["VAT FR40303265045"]
    assert doc["tax_label"] == "GST 10%"
    assert doc["tax_summary"] == [{"label": "GST 10%", "base": "A$15.00", "tax": "A$1.50"}]


def test_without_recorded_parties_the_live_settings_are_shown():
    doc = document(parties=None)
    assert doc["title"] == "Invoice" and doc["seller"]["name"] == "Live Name Pty Ltd"
    assert doc["seller"]["tax_ids"] == ["ABN 11111111111"] and doc["buyer"]["name"] == "Live Customer"
    assert doc["tax_label"] == "Tax 10%"


def test_a_reverse_charged_invoice_says_so_and_quotes_the_buyers_vat_number():
    doc = document(parties={"seller": {**SELLER, "tax_name": "VAT"}, "buyer": BUYER}, treatment="reverse_charge",
                   tax_rate="0.2")
    assert doc["tax_label"] == "VAT 0% (reverse charge)"
    assert doc["tax_note"].startswith("VAT reverse charged") and "FR40303265045" in doc["tax_note"]
    assert doc["tax_summary"][0]["tax"] == "A$0.00"


def test_an_exempt_invoice_says_no_tax_is_charged():
    doc = document(treatment="exempt", tax_rate="0")
    assert doc["tax_label"] == "Tax exempt" and "exempt" in doc["tax_note"]


@pytest.mark.parametrize("payment,method,words", [
    (Payment("card"), "card", "A$16.50 will be charged to your card on file on Dec 2, 2026."),
    (None, "due", "Payment of A$16.50 is due on Dec 2, 2026."),
    (Payment("due"), "due", "Payment of A$16.50 is due on Dec 2, 2026."),
    (Payment("transfer", None), "due", "Payment of A$16.50 is due on Dec 2, 2026."),
])
def test_it_says_a_card_is_charged_only_when_there_is_one_to_charge(payment, method, words):
    section = document(payment=payment)["payment"]
    assert (section["method"], section["text"]) == (method, words)


def test_a_bank_transfer_prints_the_tenants_bank_details_and_the_invoice_number_to_quote():
    bank = {"account_holder": "Harbour Apps Pty Ltd", "bsb": "062-000", "account_number": "12345678",
            "bank_name": "Commonwealth Bank"}
    section = document(payment=Payment("transfer", bank))["payment"]
    assert section["text"] == ("Please pay A$16.50 by bank transfer by Dec 2, 2026, quoting the reference "
                               "INV-2026-000007.")
    assert [(row["label"], row["value"]) for row in section["details"]] == [
        ("Account holder", "Harbour Apps Pty Ltd"), ("Bank", "Commonwealth Bank"), ("BSB", "062-000"),
        ("Account number", "12345678"), ("Reference", "INV-2026-000007")]


def test_an_iban_is_printed_in_groups_of_four_and_a_reference_text_comes_before_the_number():
    bank = {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "reference": "Acme"}
    details = {row["label"]: row["value"] for row in document(payment=Payment("transfer", bank))["payment"]["details"]}
    assert details == {"IBAN": "DE89 3704 0044 0532 0130 00", "BIC": "COBADEFFXXX", "Reference": "Acme INV-2026-000007"}


def test_nothing_due_is_said_so():
    assert document(payment=Payment("card"), amount_due=0)["payment"]["text"] == "Nothing is due on this invoice."


def test_each_line_shows_its_service_period_and_its_rating_details():
    lines = [line(details=("Billed in advance", "Prorated: 11 of 30 days")), line("prov_b", 500, "Backups", None, None)]
    doc = document(lines)
    first, second = doc["groups"][0]["lines"][0], doc["groups"][1]["lines"][0]
    assert first["service_period"] == "Oct 1, 2026 – Oct 31, 2026"
    assert first["details"] == ["Billed in advance", "Prorated: 11 of 30 days"]
    assert second["service_period"] == ""
    assert [(row["app"], row["count"], row["subtotal"]) for row in doc["summary"]] == [
        ("Ledgerly", "1", "A$10.00"), ("CloudNest", "1", "A$5.00")]


def test_dates_and_amounts_follow_the_tenants_locale():
    doc = document(locale="de_DE")
    assert doc["due_date"] == "02.12.2026" and doc["amount_due"] == "16,50\xa0AU$"


def test_past_the_line_limit_the_detail_is_summarized_by_provider_and_description():
    lines = [line("prov_a", 100 + i, f"Seat {i % 20}") for i in range(40)] + [line("prov_b", 7, "Backups")] * 3
    doc = document(lines, limit=42)
    assert doc["summarized"] is not None and doc["lines_file"] == "INV-2026-000007-lines.csv"
    assert doc["line_count"] == 43 and doc["groups"][0]["lines"] == []  # the detail's lines are not laid out
    ledgerly, cloudnest = doc["summarized"]
    assert len(ledgerly["rows"]) == 11  # the 10 largest descriptions, then the rest in one row
    assert ledgerly["rows"][-1]["description"] == "10 other descriptions" and ledgerly["rows"][-1]["count"] == 20
    assert cloudnest["rows"] == [{"description": "Backups", "count": 3, "amount": "A$0.21"}]
    assert sum(row["count"] for row in ledgerly["rows"]) == 40
    assert document(lines, limit=43)["summarized"] is None  # at the limit, every line is printed
    eleven = [line("prov_a", 100 + i, f"Seat {i}") for i in range(11)]
    assert document(eleven, limit=10)["summarized"][0]["rows"][-1]["description"] == "1 other description"


def test_a_plan_fee_reads_when_it_is_billed_its_proration_and_quantity():
    assert plan_fee_details("in_advance", 30, 30, 1) == ("Billed in advance",)
    assert plan_fee_details("in_arrears", 11, 30, 3) == ("Billed in arrears", "Prorated: 11 of 30 days", "Quantity 3")
    assert plan_fee_details("adjustment", 5, 31, 1) == ("Adjusts a fee billed in advance", "Prorated: 5 of 31 days")


def test_a_usage_line_is_split_into_its_quantity_included_units_and_tiers():
    assert usage_details("Bandwidth — 1,340 GB: 100 GB included, 900 × €0.05, 340 × €0.03 = €55.20") == (
        "Bandwidth — 1,340 GB", ("100 GB included", "900 × €0.05", "340 × €0.03"))
    assert usage_details("API calls — 2,500 calls: 3 × 1,000 calls at €5.00 = €15.00, minimum €20.00") == (
        "API calls — 2,500 calls", ("3 × 1,000 calls at €5.00", "minimum €20.00"))
    one_price = "CPU — 16 unit-hours × €0.04 = €0.64"
    assert usage_details(one_price) == (one_price, ())


def test_tax_ids_are_labelled_by_their_type():
    assert tax_id_text({"type": "gb_vat", "value": "GB980780684"}) == "VAT GB980780684"
    assert tax_id_text({"type": "nz_gst", "value": "49091850"}) == "GST 49091850"
    assert tax_id_text({"type": "xx_new", "value": "1"}) == "XX NEW 1"
