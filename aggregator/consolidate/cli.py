"""`flask --app wsgi periods …`: operator commands for closing periods and rendering PDFs."""
from __future__ import annotations

import json
import os

import click
from flask.cli import AppGroup

from .. import adapters as edge
from . import close_service, pdf_service

periods = AppGroup("periods", help="Close invoicing periods and render invoice PDFs.")

_mode = click.option("--mode", type=click.Choice(["live", "test"]), default="live", show_default=True)


@periods.command("close")
@click.option("--tenant", "tenant_id", required=True)
@_mode
@click.option("--period", "start", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="The period's start date, e.g. 2026-10-25.")
@click.option("--chunk", default=close_service.CHUNK_CUSTOMERS, show_default=True,
              help="Customers invoiced per transaction.")
@click.option("--no-pdf", is_flag=True, help="Close only; render PDFs later.")
@click.option("--render-processes", default=os.cpu_count() or 1, show_default=True,
              help="Worker processes rendering PDFs (one document at a time each).")
def close(tenant_id, mode, start, chunk, no_pdf, render_processes):
    """Close one ended period (idempotent: safe to run again), then render its PDFs."""
    adapters, livemode = edge.current(), mode == "live"
    clock = adapters.clocks.for_tenant(tenant_id, livemode)
    report = close_service.close_period(tenant_id, livemode, start.date(), clock.now(), chunk=chunk)
    if not no_pdf:
        report.pdfs = pdf_service.render_pending(adapters, tenant_id=tenant_id, livemode=livemode,
                                                 processes=render_processes, retry_now=True)
    click.echo(json.dumps({"period": report.period, "status": report.status,
                           "invoices_created": report.invoices_created,
                           "customers_waiting": report.customers_waiting,
                           "missing_fx_rates": sorted(report.missing_fx_rates), "errors": report.errors,
                           "pdfs_rendered": report.pdfs.rendered if report.pdfs else 0,
                           "pdfs_failed": report.pdfs.failed if report.pdfs else 0}))
