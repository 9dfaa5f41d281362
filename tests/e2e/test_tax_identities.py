"""Tax identities through the API: the tenant's country, tax ids, tax name, invoice title,
reverse charge, payment instructions, void policy and line limit; customers' tax ids; a
malformed one refused naming the field; the locale following the country."""
from __future__ import annotations

import pytest

from aggregator.accounts import service
from tests.support.cli import as_json


def test_the_tenants_tax_identity_is_set_and_read_back_compact(tenant):
    admin = tenant.admin["test"]
    before = admin.get("/v1/tenant").json
    assert (before["country"], before["tax_ids"], before["tax_name"], before["invoice_title"]) == (
        None, [], "Tax", "Invoice")
    assert (before["reverse_charge"], before["payment_instructions"], before["void_finalized"],
            before["invoice_line_limit"]) == (False, None, None, 2000)
    response = admin.patch("/v1/tenant", {
        "country": "AU", "tax_ids": [{"type": "au_abn", "value": "83 914 571 673"}], "tax_name": "GST",
        "invoice_title": "Tax invoice", "payment_instructions": {
            "account_holder": "Marketplace Pty Ltd", "bsb": "062000", "account_number": "1234 5678",
            "bank_name": "Commonwealth Bank"},
        "void_finalized": False, "invoice_line_limit": 500})
    assert response.status_code == 200, response.json
    body = admin.get("/v1/tenant").json
    assert body["country"] == "AU" and body["tax_ids"] == [{"type": "au_abn", "value": "83914571673"}]
    assert (body["tax_name"], body["invoice_title"], body["void_finalized"], body["invoice_line_limit"]) == (
        "GST", "Tax invoice", False, 500)
    assert body["payment_instructions"] == {"account_holder": "Marketplace Pty Ltd", "bsb": "062-000",
                                            "account_number": "1234 5678", "bank_name": "Commonwealth Bank"}
    assert body["locale"] == "en_AU"  # the default locale followed the country
    assert tenant.admin["live"].get("/v1/tenant").json["tax_ids"] == []  # the other mode keeps its own


def test_an_iban_is_kept_compact_and_a_reverse_charging_eu_tenant_is_recorded(tenant):
    admin = tenant.admin["test"]
    response = admin.patch("/v1/tenant", {
        "country": "DE", "locale": "en", "reverse_charge": True,
        "tax_ids": [{"type": "eu_vat", "value": "DE 136 695 976"}],
        "payment_instructions": {"iban": "de89 3704 0044 0532 0130 00", "bic": "cobadeffxxx"}})
    assert response.status_code == 200, response.json
    body = response.json
    assert body["payment_instructions"] == {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX"}
    assert body["reverse_charge"] is True and body["tax_ids"][0]["value"] == "DE136695976"
    assert body["locale"] == "en"  # set in the same request: kept


@pytest.mark.parametrize("body, field", [
    ({"tax_ids": [{"type": "eu_vat", "value": "DE136695977"}]}, "tax_ids.0.value"),
    ({"tax_ids": [{"type": "au_abn", "value": "83914571673"}, {"type": "au_abn", "value": "1"}]},
     "tax_ids.1.value"),
    ({"tax_ids": [{"type": "xx_vat", "value": "1"}]}, "tax_ids.0.type"),
    ({"tax_ids": [{"value": "DE136695976"}]}, "tax_ids.0.type"),
    ({"tax_ids": [{"type": "eu_vat", "value": "DE136695976"}] * 6}, "tax_ids"),
    ({"payment_instructions": {"iban": "DE89 3704 0044 0532 0130 01"}}, "payment_instructions.iban"),
    ({"payment_instructions": {"bic": "COBA"}}, "payment_instructions.bic"),
    ({"payment_instructions": {"bsb": "12345"}}, "payment_instructions.bsb"),
    ({"payment_instructions": {"swift": "COBADEFFXXX"}}, "payment_instructions.swift"),
    ({"country": "XX"}, "country"), ({"country": "au"}, "country"), ({"country": "AUS"}, "country"),
    ({"tax_name": ""}, "tax_name"), ({"invoice_title": "x" * 65}, "invoice_title"),
    ({"reverse_charge": "yes"}, "reverse_charge"), ({"void_finalized": 1}, "void_finalized"),
    ({"invoice_line_limit": 9}, "invoice_line_limit"), ({"invoice_line_limit": 100001}, "invoice_line_limit"),
])
def test_a_malformed_setting_is_refused_naming_the_field(tenant, body, field):
    response = tenant.admin["test"].patch("/v1/tenant", body)
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"], response.json


def test_a_malformed_tax_id_says_what_is_wrong(tenant):
    response = tenant.admin["test"].patch("/v1/tenant", {"tax_ids": [{"type": "eu_vat", "value": "DE136695977"}]})
    assert "check digits" in " ".join(response.json["error"]["fields"]["tax_ids.0.value"])


def test_customers_tax_ids_on_create_update_and_read(tenant):
    admin = tenant.admin["test"]
    created = admin.post("/v1/customers", {"external_id": "acme-fr", "name": "Acme SARL", "tax_exempt": True,
                                           "address": {"country": "FR"},
                                           "tax_ids": [{"type": "eu_vat", "value": "FR 40 303 265 045"}]})
    assert created.status_code == 201, created.json
    assert created.json["tax_ids"] == [{"type": "eu_vat", "value": "FR40303265045"}]
    assert admin.get("/v1/customers/acme-fr").json["tax_ids"] == created.json["tax_ids"]
    plain = admin.post("/v1/customers", {"external_id": "plain"}).json
    assert plain["tax_ids"] == []
    patched = admin.patch("/v1/customers/acme-fr", {"tax_ids": [{"type": "gb_vat", "value": "GB 980 7806 84"}]})
    assert patched.status_code == 200 and patched.json["tax_ids"] == [{"type": "gb_vat", "value": "GB980780684"}]
    refused = admin.patch("/v1/customers/acme-fr", {"tax_ids": [{"type": "eu_vat", "value": "FR40303265046"}]})
    assert refused.status_code == 422 and "tax_ids.0.value" in refused.json["error"]["fields"]
    refused = admin.post("/v1/customers", {"external_id": "x", "tax_ids": [{"type": "nz_gst", "value": "1"}]})
    assert refused.status_code == 422 and "tax_ids.0.value" in refused.json["error"]["fields"]
    assert admin.patch("/v1/customers/acme-fr", {"tax_ids": []}).json["tax_ids"] == []


def test_a_tenant_created_with_a_country_and_no_locale_gets_the_countrys(app, clock):
    with app.app_context():
        german = service.create_tenant({"name": "GmbH", "timezone": "Europe/Berlin", "country": "DE"}, clock.now())
        assert german.tenant.locale == "de_DE"
        chosen = service.create_tenant({"name": "Ltd", "country": "GB", "locale": "en_AU"}, clock.now())
        assert chosen.tenant.locale == "en_AU"
        none = service.create_tenant({"name": "Co"}, clock.now())
        assert none.tenant.locale == "en"


def test_setting_a_country_keeps_a_locale_the_tenant_chose(tenant):
    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"locale": "fr_FR"})
    assert admin.patch("/v1/tenant", {"country": "AU"}).json["locale"] == "fr_FR"


# --- the command line --------------------------------------------------------------------------

def test_tenants_create_and_update_with_tax_identities(cli):
    created = as_json(cli("tenants", "create", "--name", "Shop", "--timezone", "Australia/Sydney",
                          "--country", "AU", "--tax-id", "au_abn=83 914 571 673", "--tax-name", "GST",
                          "--invoice-title", "Tax invoice", "--payment-instructions", "bsb=062-000",
                          "--payment-instructions", "account_number=12345678", "--json"))
    live = as_json(cli("tenants", "show", created["id"], "--json"))["live"]
    assert (live["country"], live["locale"], live["tax_name"], live["invoice_title"]) == (
        "AU", "en_AU", "GST", "Tax invoice")
    assert live["tax_ids"] == [{"type": "au_abn", "value": "83914571673"}]
    assert live["payment_instructions"] == {"bsb": "062-000", "account_number": "12345678"}
    updated = as_json(cli("tenants", "update", created["id"], "--mode", "test", "--tax-id", "none",
                          "--payment-instructions", "none", "--reverse-charge", "--void-finalized", "forbid",
                          "--invoice-line-limit", "100", "--json"))
    assert (updated["tax_ids"], updated["payment_instructions"], updated["reverse_charge"],
            updated["void_finalized"], updated["invoice_line_limit"]) == ([], None, True, False, 100)
    back = as_json(cli("tenants", "update", created["id"], "--mode", "test", "--void-finalized", "country",
                       "--json"))
    assert back["void_finalized"] is None
    assert "GST" in cli("tenants", "show", created["id"]).stdout


def test_a_malformed_tax_id_on_the_command_line_is_a_usage_error_naming_the_option(cli, cli_tenant):
    refused = cli("tenants", "update", cli_tenant["id"], "--mode", "test", "--tax-id", "eu_vat=DE136695977",
                  exit_code=2)
    assert "Invalid value for '--tax-id'" in refused.output and "check digits" in refused.output
    refused = cli("tenants", "update", cli_tenant["id"], "--mode", "test", "--tax-id", "DE136695976", exit_code=2)
    assert "TYPE=VALUE" in refused.output
    refused = cli("tenants", "update", cli_tenant["id"], "--mode", "test", "--payment-instructions",
                  "iban=DE00", exit_code=2)
    assert "Invalid value for '--payment-instructions'" in refused.output


def test_customers_tax_ids_on_the_command_line(cli, cli_tenant):
    scope = cli_tenant["scope"]
    customer = as_json(cli("customers", "create", *scope, "--external-id", "acme-fr", "--tax-exempt",
                           "--tax-id", "eu_vat=FR 40 303 265 045", "--address", "country=FR", "--json"))
    assert customer["tax_ids"] == [{"type": "eu_vat", "value": "FR40303265045"}]
    assert customer["address"]["country"] == "FR" and customer["tax_exempt"] is True
    updated = as_json(cli("customers", "update", *scope, "acme-fr", "--tax-id", "none", "--no-tax-exempt",
                          "--name", "Acme SARL", "--json"))
    assert (updated["tax_ids"], updated["tax_exempt"], updated["name"]) == ([], False, "Acme SARL")
    refused = cli("customers", "update", *scope, "acme-fr", "--tax-id", "eu_vat=FR1", exit_code=2)
    assert "Invalid value for '--tax-id'" in refused.output
    cli("customers", "update", *scope, "acme-fr", exit_code=2)  # nothing to change
