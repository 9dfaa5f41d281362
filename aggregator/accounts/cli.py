"""`flask --app wsgi tenants …`: operator commands for tenants."""
from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from .. import money
from ..fields import TimeZone
from . import service

tenants = AppGroup("tenants", help="Create and inspect tenants.")


def _check(kind, value, check):
    try:
        return check(value)
    except Exception as exc:  # click turns this into a usage error with the reason
        raise click.BadParameter(str(exc), param_hint=kind) from exc


@tenants.command("create")
@click.option("--name", required=True)
@click.option("--timezone", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--currency", default="USD", show_default=True, help="Default ISO 4217 currency.")
@click.option("--anchor-day", type=click.IntRange(1, 28), default=25, show_default=True,
              help="Day of the month the invoicing period starts.")
@click.option("--charge-day", type=click.IntRange(1, 28), default=2, show_default=True)
@click.option("--legal-name", default=None)
@click.option("--invoice-prefix", default="INV", show_default=True)
def create(name, timezone, currency, anchor_day, charge_day, legal_name, invoice_prefix):
    """Create a tenant and print as JSON its id, its admin keys (live and test, shown once) and
    their ids."""
    _check("--timezone", timezone, lambda v: TimeZone().deserialize(v))
    currency = _check("--currency", currency.upper(), money.check_currency)
    now = current_app.extensions["aggregator.clocks"].base.now()
    created = service.create_tenant(dict(
        name=name, legal_name=legal_name or name, timezone=timezone, default_currency=currency,
        period_anchor_day=anchor_day, charge_day=charge_day, invoice_prefix=invoice_prefix,
    ), now)
    click.echo(json.dumps({"id": created.tenant.id, "admin_keys": created.admin_keys,
                           "admin_key_ids": created.admin_key_ids}))
