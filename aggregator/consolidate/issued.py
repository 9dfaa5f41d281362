"""What an issued invoice's documents (its PDF and its e-invoice) both say of it, decided once."""
from __future__ import annotations

from decimal import Decimal

from ..accounts.models import Customer, TenantSettings
from .models import Invoice


def tax_treatment(invoice: Invoice) -> str:
    """The invoice's tax treatment as recorded at finalization; for an invoice finalized before
    treatments were recorded: exempt if its customer is tax-exempt and it charged no tax, else
    standard."""
    if invoice.tax_treatment:
        return invoice.tax_treatment
    return "exempt" if invoice.customer.tax_exempt and Decimal(invoice.tax_rate) == 0 else "standard"


def pays_by_card(settings: TenantSettings, customer: Customer) -> bool:
    """Charged on its due date: only when the tenant has Stripe in this mode and the customer a card."""
    return bool(settings.stripe_secret_key and customer.stripe_payment_method)
