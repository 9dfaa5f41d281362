"""Tax ids are checked for form by python-stdnum (never a network call); the tax treatment rule;
the locale a country's invoices are formatted in."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.accounts import tax_ids
from aggregator.fields import known_locales

#: type -> (valid as people write it, its compact form, invalid examples)
EXAMPLES = {
    "eu_vat": ("DE 136,695 976", "DE136695976", ["DE136695977", "DE13669597", "136695976", "QQ123456789"]),
    "gb_vat": ("GB 980 7806 84", "GB980780684", ["GB980780685", "GB98078068"]),
    "ch_vat": ("CHE-107.787.577 MWST", "CHE107787577MWST", ["CHE-107.787.578 MWST", "CHE107787"]),
    "no_vat": ("NO 995 525 828 MVA", "995525828MVA", ["995525829MVA", "99552582MVA"]),
    "is_vat": ("IS 00621", "00621", ["0062A", "1234567"]),
    "au_abn": ("83 914 571 673", "83914571673", ["83 914 571 674", "8391457167"]),
    "nz_gst": ("49-091-850", "49091850", ["49-091-851", "4909"]),
    "us_ein": ("04-2103594", "042103594", ["07-2103594", "04-210359"]),
    "ca_bn": ("12302 6635", "123026635", ["123026636", "12302663"]),
    "in_gst": ("27AAPFU0939F1ZV", "27AAPFU0939F1ZV", ["27AAPFU0939F1ZW", "27AAPFU0939F1Z"]),
    "jp_cn": ("5-8356-7825-6246", "5835678256246", ["5-8356-7825-6247", "583567825624"]),
    "sg_uen": ("00192200M", "00192200M", ["00192200N", "001922"]),
    "br_cnpj": ("16.727.230/0001-97", "16727230000197", ["16.727.230/0001-98", "1672723000019"]),
    "mx_rfc": ("GODE 561231 GR8", "GODE561231GR8", ["GODE561331GR8", "GO"]),
    "kr_brn": ("116-82-00276", "1168200276", ["116-00-00276", "11682002"]),
    "cl_tin": ("76086428-5", "760864285", ["76086428-6", "7608"]),
    "tr_tin": ("4540536920", "4540536920", ["4540536921", "454053692"]),
    "ru_inn": ("123456789047", "123456789047", ["123456789048", "1234567890"]),
}


def test_every_supported_type_has_examples():
    assert set(EXAMPLES) == set(tax_ids.TYPES)


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_a_valid_tax_id_is_kept_in_its_compact_form(type_):
    written, compact, _ = EXAMPLES[type_]
    assert tax_ids.normalize(type_, written) == compact
    assert tax_ids.normalize(type_, compact) == compact  # idempotent
    assert tax_ids.normalize(type_, tax_ids.TYPES[type_].example) == tax_ids.TYPES[type_].example


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_a_malformed_tax_id_is_refused_with_a_message_naming_the_kind(type_):
    for value in EXAMPLES[type_][2]:
        with pytest.raises(ValueError) as refused:
            tax_ids.normalize(type_, value)
        assert tax_ids.TYPES[type_].label in str(refused.value)


def test_an_unsupported_type_or_an_empty_value_is_refused():
    with pytest.raises(ValueError, match="Unsupported tax id type 'xx_vat'"):
        tax_ids.normalize("xx_vat", "123")
    with pytest.raises(ValueError, match="Give the EU VAT number"):
        tax_ids.normalize("eu_vat", "  ")


def test_a_checksum_error_says_so():
    with pytest.raises(ValueError, match="check digits"):
        tax_ids.normalize("eu_vat", "DE136695977")


def test_tax_ids_are_displayed_as_people_write_them():
    assert tax_ids.display("au_abn", "83914571673") == "83 914 571 673"
    assert tax_ids.display("gb_vat", "GB980780684") == "GB 980 7806 84"
    assert tax_ids.display("eu_vat", "DE136695976") == "DE136695976"
    assert tax_ids.display("unknown", "X1") == "X1"


def test_the_country_of_a_tax_id():
    assert tax_ids.country_of("eu_vat", "FR40303265045") == "FR"
    assert tax_ids.country_of("eu_vat", "EL094259216") == "GR"
    assert tax_ids.country_of("au_abn", "83914571673") == "AU"
    assert tax_ids.country_of("xx", "1") is None


def test_ibans_and_bics_are_checked():
    assert tax_ids.normalize_iban("DE89 3704 0044 0532 0130 00") == "DE89370400440532013000"
    with pytest.raises(ValueError, match="not a valid IBAN"):
        tax_ids.normalize_iban("DE89 3704 0044 0532 0130 01")
    assert tax_ids.normalize_bic("COBADEFFXXX") == "COBADEFFXXX"
    with pytest.raises(ValueError, match="not a valid BIC"):
        tax_ids.normalize_bic("COBA")


def test_the_eu_has_27_member_states():
    assert len(tax_ids.EU_MEMBER_STATES) == 27
    assert "GB" not in tax_ids.EU_MEMBER_STATES and "GR" in tax_ids.EU_MEMBER_STATES
    assert tax_ids.in_eu("de") and not tax_ids.in_eu(None) and not tax_ids.in_eu("CH")


FR_VAT = [{"type": "eu_vat", "value": "FR40303265045"}]
TEN = Decimal("0.19")


@pytest.mark.parametrize("seller, enabled, buyer, exempt, ids, rate, expected", [
    # an exempt business with an EU VAT number in another member state, the tenant enabling it
    ("DE", True, "FR", True, FR_VAT, TEN, "reverse_charge"),
    ("DE", True, None, True, FR_VAT, TEN, "reverse_charge"),  # the country from the VAT number
    ("DE", False, "FR", True, FR_VAT, TEN, "exempt"),  # not enabled
    ("DE", True, "DE", True, [{"type": "eu_vat", "value": "DE136695976"}], TEN, "exempt"),  # same country
    ("DE", True, "FR", True, [], TEN, "exempt"),  # no VAT number: not a business we can tell
    ("DE", True, "FR", False, FR_VAT, TEN, "standard"),  # not exempt: the tenant charges VAT
    ("DE", True, "US", True, FR_VAT, TEN, "exempt"),  # the buyer is outside the EU
    ("GB", True, "FR", True, FR_VAT, TEN, "exempt"),  # the seller is outside the EU
    (None, True, "FR", True, FR_VAT, TEN, "exempt"),  # the seller's country unknown
    ("DE", True, "FR", True, [{"type": "gb_vat", "value": "GB980780684"}], TEN, "exempt"),
    ("AU", False, "AU", False, [], Decimal("0.1"), "standard"),
    ("AU", False, "AU", False, [], Decimal("0"), "exempt"),  # nothing charged at a zero rate
    ("AU", False, "AU", True, [], Decimal("0"), "exempt"),
])
def test_the_tax_treatment_rule(seller, enabled, buyer, exempt, ids, rate, expected):
    assert tax_ids.tax_treatment(seller, enabled, buyer, exempt, ids, rate) == expected
    assert expected in tax_ids.TREATMENTS


def test_an_invoice_without_a_recorded_treatment_reads_it_from_its_rate():
    assert tax_ids.recorded_treatment(None, Decimal("0")) == "exempt"
    assert tax_ids.recorded_treatment(None, Decimal("0.1")) == "standard"
    assert tax_ids.recorded_treatment("reverse_charge", Decimal("0")) == "reverse_charge"


@pytest.mark.parametrize("country, locale", [
    ("AU", "en_AU"), ("GB", "en_GB"), ("DE", "de_DE"), ("FR", "fr_FR"), ("NZ", "en_NZ"), ("US", "en_US"),
    ("IE", "en_IE"), ("CA", "en_CA"), ("IN", "en_IN"), ("CH", "de_CH"), ("JP", "ja_JP"), ("at", "de_AT"),
])
def test_a_countrys_locale(country, locale):
    assert tax_ids.locale_for(country) == locale
    assert locale in known_locales()  # one the tenant settings accept


def test_without_a_country_the_locale_comes_from_the_time_zone_else_english():
    assert tax_ids.locale_for(None, "Australia/Sydney") == "en_AU"
    assert tax_ids.locale_for(None, "Europe/Paris") == "fr_FR"
    assert tax_ids.locale_for(None, "UTC") == "en"
    assert tax_ids.locale_for(None) == "en"
    assert tax_ids.locale_for("AQ") == "en"  # no locale for it


COUNTRIES = st.sampled_from(["DE", "FR", "GR", "IE", "GB", "CH", "AU", "US", None])
IDS = st.lists(st.sampled_from([{"type": "eu_vat", "value": "FR40303265045"},
                                {"type": "eu_vat", "value": "EL094259216"},
                                {"type": "eu_vat", "value": "XI980780684"},
                                {"type": "gb_vat", "value": "GB980780684"},
                                {"type": "au_abn", "value": "83914571673"}]), max_size=3)


@given(COUNTRIES, st.booleans(), COUNTRIES, st.booleans(), IDS, st.sampled_from([Decimal(0), Decimal("0.2")]))
def test_reverse_charge_only_between_two_member_states_for_an_exempt_vat_registered_buyer(
        seller, enabled, buyer, exempt, ids, rate):
    treatment = tax_ids.tax_treatment(seller, enabled, buyer, exempt, ids, rate)
    if treatment == "reverse_charge":
        vat = tax_ids.eu_vat_id(ids)
        buyer_country = buyer or tax_ids.country_of("eu_vat", vat)
        assert enabled and exempt and vat and tax_ids.in_eu(seller) and tax_ids.in_eu(buyer_country)
        assert buyer_country != seller and tax_ids.in_eu(tax_ids.country_of("eu_vat", vat))
    else:  # otherwise nothing changes from before: exempt customers and zero rates pay no tax
        assert treatment == ("exempt" if exempt or rate == 0 else "standard")
