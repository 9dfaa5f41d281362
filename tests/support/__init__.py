"""Helpers shared by test modules (no test module imports another's helpers from here on)."""
