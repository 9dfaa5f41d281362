"""Outbound HTTP: where the service's own requests (webhooks, a tenant's own Stripe API address)
may go, and how they name themselves. Below every area: the webhook sender and the Stripe
adapter both connect through `connections`, so one guard holds for both."""
from __future__ import annotations

from importlib import metadata


def _version() -> str:
    try:
        return metadata.version("aggregator")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


#: The service's version, as its outbound requests' User-Agent gives it.
VERSION = _version()
