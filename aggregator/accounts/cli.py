"""`flask --app wsgi tenants …`: operator commands for tenants."""
from __future__ import annotations

import json
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from ..errors import flatten_messages
from . import service
from .schemas import TenantSchema

tenants = AppGroup("tenants", help="Create and inspect tenants.")

#: TenantSchema field -> the option of `tenants create` that sets it
_OPTIONS = {"name": "--name", "legal_name": "--legal-name", "timezone": "--timezone",
            "default_currency": "--currency", "period_anchor_day": "--anchor-day",
            "charge_day": "--charge-day", "invoice_prefix": "--invoice-prefix"}


def _tenant_settings(values: dict[str, Any]) -> dict[str, Any]:
    """`values` checked by the API's own tenant schema (the rules of PATCH /v1/tenant); a usage
    error naming each option at fault otherwise."""
    try:
        return TenantSchema().load(values)
    except ValidationError as exc:
        problems = flatten_messages(exc.messages)
        raise click.UsageError("\n".join(
            f"Invalid value for '{_OPTIONS.get(field, field)}': {' '.join(messages)}"
            for field, messages in problems.items())) from None


@tenants.command("create")
@click.option("--name", required=True)
@click.option("--timezone", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--currency", default="USD", show_default=True, help="Default ISO 4217 currency.")
@click.option("--anchor-day", type=int, default=25, show_default=True,
              help="Day of the month (1-28) the invoicing period starts.")
@click.option("--charge-day", type=int, default=2, show_default=True, help="Day of the month (1-28).")
@click.option("--legal-name", default=None, help="Defaults to the name.")
@click.option("--invoice-prefix", default="INV", show_default=True,
              help="1-16 upper-case letters, digits or dashes.")
def create(name, timezone, currency, anchor_day, charge_day, legal_name, invoice_prefix):
    """Create a tenant and print as JSON its id, its admin keys (live and test, shown once) and
    their ids."""
    settings = _tenant_settings(dict(
        name=name, legal_name=legal_name or name, timezone=timezone, default_currency=currency,
        period_anchor_day=anchor_day, charge_day=charge_day, invoice_prefix=invoice_prefix,
    ))
    now = current_app.extensions["aggregator.adapters"].clocks.base.now()
    created = service.create_tenant(settings, now)
    click.echo(json.dumps({"id": created.tenant.id, "admin_keys": created.admin_keys,
                           "admin_key_ids": created.admin_key_ids}))
