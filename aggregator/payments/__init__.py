"""Collecting invoices: charges through a payment gateway (Stripe) on the charge day, retries,
manual payments, refunds, credit balances, and Stripe's webhooks."""
