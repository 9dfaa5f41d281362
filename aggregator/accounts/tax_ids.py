"""Tax identities, checked for form: the tax id types a tenant or customer may hold (Stripe's
names), each checked by python-stdnum (country prefix, length, check digits where the number
has them; never a network call), the EU member states, the rule that decides an invoice's tax
treatment, and the locale a country's invoices are formatted in. Pure: no database, no Flask."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Iterable, Mapping

from babel import localedata
from babel.core import get_global
from babel.languages import get_official_languages
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, InvalidLength, ValidationError

#: The member states of the European Union (ISO 3166-1 alpha-2; Greece is GR here, EL in a VAT
#: number). Northern Ireland's "XI" VAT numbers are eu_vat for goods, but the UK is not a member.
EU_MEMBER_STATES = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT",
    "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})

#: An invoice's tax treatment: tax charged at the rate ("standard"); none charged because the
#: buyer, an EU business in another member state, accounts for it ("reverse_charge"); none
#: charged because the buyer is exempt or the rate is zero ("exempt").
TREATMENTS = ("standard", "reverse_charge", "exempt")


@dataclass(frozen=True)
class TaxIdType:
    """One kind of tax id: its Stripe name, what it is called, its country (None: in its
    prefix), the python-stdnum module that checks it, and an example in its compact form."""

    name: str
    label: str
    country: str | None
    module: str
    example: str
    prefix: str = ""  # kept before stdnum's compact form (gb_vat: "GB", as Stripe writes it)

    def check(self, value: str) -> str:
        """`value` in its compact form; stdnum's ValidationError if it is not well formed."""
        checker: Any = importlib.import_module(f"stdnum.{self.module}")
        if self.prefix and value.strip().upper().startswith(self.prefix):
            value = value.strip()[len(self.prefix):]
        return self.prefix + str(checker.validate(value))

    def display(self, compact: str) -> str:
        """As people write it (stdnum's format: "51 824 753 556"), else the compact form."""
        checker: Any = importlib.import_module(f"stdnum.{self.module}")
        formatted = getattr(checker, "format", None)
        if formatted is None:
            return compact
        try:
            return f"{self.prefix} {formatted(compact[len(self.prefix):])}".strip()
        except ValidationError:  # pragma: no cover - a stored value was normalized on the way in
            return compact


TYPES: dict[str, TaxIdType] = {t.name: t for t in (
    TaxIdType("eu_vat", "EU VAT number", None, "eu.vat", "DE136695976"),
    TaxIdType("gb_vat", "UK VAT number", "GB", "gb.vat", "GB980780684", prefix="GB"),
    TaxIdType("ch_vat", "Swiss VAT number", "CH", "ch.vat", "CHE107787577MWST"),
    TaxIdType("no_vat", "Norwegian VAT number", "NO", "no.mva", "995525828MVA"),
    TaxIdType("is_vat", "Icelandic VAT number", "IS", "is_.vsk", "00621"),
    TaxIdType("au_abn", "Australian Business Number", "AU", "au.abn", "83914571673"),
    TaxIdType("nz_gst", "New Zealand GST number", "NZ", "nz.ird", "49091850"),
    TaxIdType("us_ein", "US Employer Identification Number", "US", "us.ein", "042103594"),
    TaxIdType("ca_bn", "Canadian Business Number", "CA", "ca.bn", "123026635"),
    TaxIdType("in_gst", "Indian GSTIN", "IN", "in_.gstin", "27AAPFU0939F1ZV"),
    TaxIdType("jp_cn", "Japanese Corporate Number", "JP", "jp.cn", "5835678256246"),
    TaxIdType("sg_uen", "Singaporean UEN", "SG", "sg.uen", "00192200M"),
    TaxIdType("br_cnpj", "Brazilian CNPJ", "BR", "br.cnpj", "16727230000197"),
    TaxIdType("mx_rfc", "Mexican RFC", "MX", "mx.rfc", "GODE561231GR8"),
    TaxIdType("kr_brn", "Korean Business Registration Number", "KR", "kr.brn", "1168200276"),
    TaxIdType("cl_tin", "Chilean RUT", "CL", "cl.rut", "760864285"),
    TaxIdType("tr_tin", "Turkish tax number (VKN)", "TR", "tr.vkn", "4540536920"),
    TaxIdType("ru_inn", "Russian INN", "RU", "ru.inn", "123456789047"),
)}

#: EU VAT prefixes that are not the ISO code of their country.
_VAT_PREFIX_COUNTRY = {"EL": "GR", "XI": "GB"}

_PROBLEMS = [  # stdnum's exception -> what to tell a person
    (InvalidLength, "it has the wrong number of characters"),
    (InvalidChecksum, "its check digits do not match (a typing error?)"),
    (InvalidComponent, "a part of it is not valid (for an EU VAT number: the country prefix, such as DE or FR)"),
    (InvalidFormat, "it is not written as such a number is"),
]


def _problem(exc: ValidationError) -> str:
    return next((text for kind, text in _PROBLEMS if isinstance(exc, kind)), "it is not well formed")


def normalize(type_: str, value: str) -> str:
    """The compact form of a tax id of `type_` (spaces, dots and dashes removed, upper case:
    "DE 136 695 976" -> "DE136695976"); ValueError with a message for a person if the type is
    not supported or the value is not well formed."""
    kind = TYPES.get(type_)
    if kind is None:
        raise ValueError(f"Unsupported tax id type {type_!r}: use one of {', '.join(sorted(TYPES))}.")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Give the {kind.label}, e.g. {kind.display(kind.example)}.")
    try:
        return kind.check(value)
    except ValidationError as exc:
        raise ValueError(f"{value[:40]!r} is not a valid {kind.label}: {_problem(exc)}; "
                         f"e.g. {kind.display(kind.example)}.") from None


def display(type_: str, value: str) -> str:
    """A stored (compact) tax id as people write it: au_abn "83914571673" -> "83 914 571 673"."""
    kind = TYPES.get(type_)
    return kind.display(value) if kind else value


def country_of(type_: str, value: str) -> str | None:
    """The country a tax id belongs to: the type's, or an EU VAT number's prefix (EL -> GR)."""
    kind = TYPES.get(type_)
    if kind is None:
        return None
    if kind.country:
        return kind.country
    prefix = value[:2].upper()
    return _VAT_PREFIX_COUNTRY.get(prefix, prefix)


def normalize_iban(value: str) -> str:
    """An IBAN in its compact form (country, check digits, account: "DE89370400440532013000"),
    checked by its ISO 7064 check digits and its country's length; ValueError otherwise."""
    from stdnum import iban

    try:
        return str(iban.validate(value))
    except ValidationError as exc:
        raise ValueError(f"{str(value)[:40]!r} is not a valid IBAN: {_problem(exc)}.") from None


def normalize_bic(value: str) -> str:
    """A BIC (SWIFT code, 8 or 11 characters) in its compact form; ValueError otherwise."""
    from stdnum import bic

    try:
        return str(bic.validate(value))
    except ValidationError as exc:
        raise ValueError(f"{str(value)[:40]!r} is not a valid BIC: {_problem(exc)}.") from None


def in_eu(country: str | None) -> bool:
    return country is not None and country.upper() in EU_MEMBER_STATES


def eu_vat_id(tax_ids: Iterable[Mapping[str, str]]) -> str | None:
    """The first EU VAT number among `tax_ids`, if any (what a reverse-charged invoice quotes)."""
    return next((t["value"] for t in tax_ids if t.get("type") == "eu_vat"), None)


def tax_treatment(seller_country: str | None, reverse_charge_enabled: bool, buyer_country: str | None,
                  buyer_exempt: bool, buyer_tax_ids: Iterable[Mapping[str, str]], tax_rate: Decimal) -> str:
    """How an invoice is taxed:

    - "reverse_charge": the tenant enables it, the seller is in the EU, the buyer is a business
      (it holds an EU VAT number, from a member state), in another member state (its country,
      else its VAT number's) and marked tax exempt: no tax is charged, the buyer accounts for it;
    - "exempt": otherwise, when the buyer is exempt or the rate in effect is zero;
    - "standard": tax charged at `tax_rate` (the customer's rate, else the tenant's default)."""
    vat_id = eu_vat_id(buyer_tax_ids)
    buyer_country = buyer_country or (country_of("eu_vat", vat_id) if vat_id else None)
    if (reverse_charge_enabled and buyer_exempt and vat_id is not None and in_eu(seller_country)
            and in_eu(buyer_country) and in_eu(country_of("eu_vat", vat_id))
            and str(buyer_country).upper() != str(seller_country).upper()):
        return "reverse_charge"
    if buyer_exempt or tax_rate == 0:
        return "exempt"
    return "standard"


def recorded_treatment(stored: str | None, tax_rate: Decimal) -> str:
    """An invoice's treatment as stored, or, for one finalized before treatments were recorded,
    what its rate says: "exempt" at zero, else "standard"."""
    if stored:
        return stored
    return "exempt" if tax_rate == 0 else "standard"


def locale_for(country: str | None, timezone: str | None = None) -> str:
    """The locale a seller in `country` formats its invoices in: English where it is an official
    language of the country (AU -> en_AU, GB -> en_GB, IE -> en_IE, CA -> en_CA), else the
    country's first official language (DE -> de_DE, FR -> fr_FR, CH -> de_CH); without a
    country, that of the time zone's country (Australia/Sydney -> en_AU); else "en"."""
    if not country and timezone:
        country = get_global("zone_territories").get(timezone)
    if not country:
        return "en"
    country = country.upper()
    languages = get_official_languages(country, de_facto=True)
    for language in (["en"] if "en" in languages else []) + list(languages):
        if localedata.exists(f"{language}_{country}"):
            return f"{language}_{country}"
    return "en"
