"""`aggregator payouts …`: what the API's /v1/payouts does, for operators and finance."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .. import adapters as edge
from ..commands import AreaGroup, Day, json_option, list_options, now_for, print_object, print_page, say, tenant_scoped
from ..plurals import counted
from . import build_service, report_service, service
from .schemas import PAYOUT_STATUSES, PayoutSchema

payouts = AreaGroup("payouts", help="Provider payouts: build a payout day's, list, approve, record paid, "
                                    "report a period's.")
_columns = ["id", "provider", "currency", "status", "net", "brought_forward", "amount", "method", "period"]


@payouts.command("list")
@tenant_scoped
@list_options
@click.option("--period", type=Day(), default=None, help="The period's start date.")
@click.option("--provider", default=None)
@click.option("--status", type=click.Choice(PAYOUT_STATUSES), default=None)
@json_option
def list_payouts(principal, limit, starting_after, period, provider, status, as_json):
    """Payouts, newest first."""
    page = service.list_payouts(principal, limit, starting_after, period.date() if period else None, provider, status)
    print_page(page, PayoutSchema(), _columns, f"Payouts ({principal.mode} mode)", as_json)


@payouts.command("build")
@tenant_scoped
@click.argument("payout_date", type=Day())
def build(principal, payout_date):
    """Build the payouts of a payout day now (the scheduler does it at the day's midnight):
    what was collected up to then and not paid out yet."""
    report = build_service.build_payouts(principal.tenant_id, principal.livemode, payout_date.date())
    if report.run_id is None:
        say(f"Payout day {report.payout_date} was built before: nothing to do.")
    else:
        say(f"Payout day {report.payout_date}: {counted(report.sources, 'new collection', 'new collections')}, "
            f"{counted(len(report.payouts), 'payout', 'payouts')}.")


@payouts.command("approve")
@tenant_scoped
@click.argument("payout_id", required=False)
@click.option("--period", type=Day(), default=None,
              help="Approve every payout of this period pending review.")
@json_option
def approve(principal, payout_id, period, as_json):
    """Approve one payout, or a whole period's (--period)."""
    if bool(payout_id) == bool(period):
        raise click.UsageError("Give a payout id or --period, not both.")
    if payout_id:
        print_object(service.approve_payout(principal, payout_id, now_for(principal)), PayoutSchema(), "Payout",
                     as_json)
    else:
        approved = service.approve_period(principal, period.date(), now_for(principal))
        say(f"Approved {counted(len(approved), 'payout', 'payouts')}.")


@payouts.command("mark-paid")
@tenant_scoped
@click.argument("payout_id")
@click.option("--reference", required=True, help="The bank transfer's reference.")
@json_option
def mark_paid(principal, payout_id, reference, as_json):
    """Record an approved bank-transfer payout paid."""
    print_object(service.record_bank_transfer(principal, payout_id, reference, now_for(principal)),
                 PayoutSchema(), "Payout",
                 as_json)


@payouts.command("report")
@tenant_scoped
@click.option("--period", type=Day(), required=True, help="The invoicing period's start date.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "pdf"]), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write (default: standard output; for pdf, payouts-PERIOD.pdf; '-': standard output).")
def report(principal, period, fmt, output):
    """Finance's payout report of a period: per provider, totals, and the reconciliation with
    what was collected (as GET /v1/reports/payouts)."""
    from .reports_api import PayoutReportSchema

    found = report_service.payout_report(principal, period.date())
    if fmt == "pdf":
        document = report_service.report_pdf(found, edge.current().renderer)
        output = output or Path(f"payouts-{found.period_start.isoformat()}.pdf")
    else:
        text = (report_service.report_csv(found) if fmt == "csv"
                else json.dumps(PayoutReportSchema().dump(found), ensure_ascii=False, default=str) + "\n")
        document = text.encode()
    if output is None or str(output) == "-":
        click.echo(document, nl=False)
        return
    output.write_bytes(document)
    say(f"Wrote {output} ({len(document):,} bytes).")
