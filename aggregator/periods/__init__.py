"""Invoicing periods: the calendar (pure), the period records intake and the close lock."""
