"""What an issued invoice's documents (its PDF and its e-invoice) both say of how it is paid,
decided once. (Who issued it to whom and its tax treatment: parties.py.)"""
from __future__ import annotations

from ..accounts.models import Customer, TenantSettings


def pays_by_card(settings: TenantSettings, customer: Customer) -> bool:
    """Charged on its due date: only when the tenant has Stripe in this mode and the customer a card."""
    return bool(settings.stripe_secret_key and customer.stripe_payment_method)
