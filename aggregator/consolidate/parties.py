"""Who issues an invoice to whom, and how it is taxed: the seller (the tenant's legal identity,
its tax ids, the tax's name and the invoice's title) and the buyer (the customer's name,
address, country and tax ids) as they are when the invoice is finalized, kept with it so that
a finalized invoice's documents never change with later settings; and the invoice's tax
treatment (accounts/tax_ids.py decides it), on which its tax is computed.

Readers (the PDF, the e-invoice, credit notes) take `parties_of(invoice)`: the kept parties, or
for a draft and an invoice finalized before they were kept, the live settings'."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Mapping

from ..accounts.models import Customer, TenantSettings
from ..accounts.tax_ids import recorded_treatment, tax_treatment
from ..db import db
from .issued import has_card, pays_by_card

_ADDRESS_FIELDS = ("line1", "line2", "city", "state", "postal_code", "country")


def _address(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not address:
        return None
    return {name: address[name] for name in _ADDRESS_FIELDS if name in address}


def _tax_ids(tax_ids) -> list[dict[str, str]]:
    return [{"type": t["type"], "value": t["value"]} for t in tax_ids or ()]


def seller_country(settings: TenantSettings) -> str | None:
    """The tenant's country: its setting, else its address's."""
    return settings.country or (settings.address or {}).get("country")


def seller(settings: TenantSettings) -> dict[str, Any]:
    """The tenant as an invoice names it, with how it is paid as issued: whether the tenant
    charges cards in this mode, and its bank details."""
    return {"legal_name": settings.legal_name or settings.name, "address": _address(settings.address),
            "country": seller_country(settings), "tax_ids": _tax_ids(settings.tax_ids),
            "tax_name": settings.tax_name, "title": settings.invoice_title,
            "charges_cards": bool(settings.stripe_secret_key), "payment_instructions": settings.payment_instructions}


def buyer(name: str | None, external_id: str, address: Mapping[str, Any] | None, tax_ids,
          card: bool = False) -> dict[str, Any]:
    """The customer as an invoice names it (its name, else its external id), and whether it has
    a card a charge run charges (issued.has_card)."""
    return {"name": name or external_id, "address": _address(address),
            "country": (address or {}).get("country"), "tax_ids": _tax_ids(tax_ids), "card": card}


def buyer_of(customer: Customer) -> dict[str, Any]:
    return buyer(customer.name, customer.external_id, customer.address, customer.tax_ids, has_card(customer))


def payment_of(invoice, settings: TenantSettings, customer: Customer) -> tuple[bool, dict[str, Any] | None]:
    """How the invoice's documents say it is paid: (charged to a card, the bank details), as
    kept at its finalization (its PDF and its e-invoice then agree whenever either is made), else
    (a draft, or kept before this was) as the settings and the customer are now."""
    kept = invoice.parties or {}
    if "card" in (kept.get("buyer") or {}) and "charges_cards" in (kept.get("seller") or {}):
        return (bool(kept["seller"]["charges_cards"] and kept["buyer"]["card"]),
                kept["seller"].get("payment_instructions"))
    return pays_by_card(settings, customer), settings.payment_instructions


def treatment(settings: TenantSettings, address: Mapping[str, Any] | None, exempt: bool, tax_ids,
              rate: Decimal) -> tuple[str, Decimal]:
    """The invoice's tax treatment and the rate it is taxed at: zero when reverse charged (the
    buyer accounts for the tax; the stored rate is the one applied, so that the lines derived on
    read add up to the stored totals)."""
    decided = tax_treatment(seller_country(settings), settings.reverse_charge, (address or {}).get("country"),
                            exempt, tax_ids or (), rate)
    return decided, Decimal(0) if decided == "reverse_charge" else rate


def kept_treatment(treatment: str | None, kept_buyer: Mapping[str, Any]) -> str | None:
    """A draft's treatment as its finalization keeps it with `kept_buyer`: reverse charge needs
    the buyer's EU VAT number on the document; without it (removed since the draft was made) it is
    "exempt", at the same zero tax."""
    if treatment == "reverse_charge" and not any(t["type"] == "eu_vat" for t in kept_buyer.get("tax_ids") or ()):
        return "exempt"
    return treatment


def parties_of(invoice) -> dict[str, Any]:
    """The invoice's parties: as kept at its finalization, else (a draft, or finalized before
    they were kept) the tenant's and the customer's as they are now."""
    if invoice.parties:
        return invoice.parties
    settings = db.session.get(TenantSettings, (invoice.tenant_id, invoice.livemode))
    customer = db.session.get(Customer, invoice.customer_id)
    return {"seller": seller(settings), "buyer": buyer_of(customer)}


def treatment_of(invoice) -> str:
    """The invoice's tax treatment: as recorded, else (finalized before treatments were
    recorded) "exempt" at a zero rate, "standard" otherwise."""
    return recorded_treatment(invoice.tax_treatment, Decimal(invoice.tax_rate))
