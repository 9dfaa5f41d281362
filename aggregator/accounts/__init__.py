"""Tenants, their providers and customers, and the API keys that act for them."""
