"""`aggregator usage …`: metering's use cases from the command line, as the API runs them (same
services, same rows)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..commands import AreaGroup, Day, acting_for, now_for, provider_option, say, tenant_scoped
from . import export_service

usage = AreaGroup("usage", help="Metered usage: a period's usage export (CSV or Parquet).")


@usage.command("export")
@tenant_scoped
@click.option("--period", type=Day(), required=True, help="The invoicing period's start date.")
@click.option("--format", "form", type=click.Choice(export_service.FORMATS), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write, atomically (default: standard output for csv; usage-PERIOD.parquet).")
@provider_option(False, "Only this provider's subscriptions (as its API key sees them).")
def export(principal, period, form, output, provider_id):
    """One row per (subscription, meter, dimension values, UTC hour) of a period, as
    GET /v1/usage_export writes it (a period still open: as of now)."""
    if provider_id:
        principal = acting_for(principal, provider_id)
    found = export_service.usage_export(principal, period.date(), now_for(principal))
    if output is None and form == "parquet":
        output = Path(f"{found.name}.parquet")
    if output is None or str(output) == "-":
        export_service.write(found, form, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            rows = export_service.write(found, form, handle)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    say(f"Wrote {output}: {rows:,} rows of {found.period.start.isoformat()} as of {found.as_of.isoformat()} "
        f"(period {found.status}).")
