"""Invoicing periods, the period close and consolidated invoices."""
