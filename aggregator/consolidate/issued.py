"""What an issued invoice's documents (its PDF and its e-invoice) both say of how it is paid,
decided once. (Who issued it to whom and its tax treatment: parties.py.)"""
from __future__ import annotations

from ..accounts.models import Customer, TenantSettings


def has_card(customer: Customer) -> bool:
    """A Stripe customer with a payment method: what a charge run needs of a customer."""
    return bool(customer.stripe_customer_id and customer.stripe_payment_method)


def pays_by_card(settings: TenantSettings, customer: Customer) -> bool:
    """Charged on its due date: only when the tenant has Stripe in this mode and the customer a
    card (the charge run's rule: payments.gateway.charges_automatically)."""
    return bool(settings.stripe_secret_key) and has_card(customer)
