"""`aggregator ledger …`: the books, as GET /v1/ledger/accounts, /v1/ledger/journals and
/v1/ledger/export show them."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..commands import (
    AreaGroup,
    Day,
    json_option,
    list_options,
    print_json,
    print_page,
    print_rows,
    say,
    tenant_scoped,
)
from . import export_service, service
from .export import FORMATS
from .journal import KINDS
from .schemas import JournalSchema, TrialBalanceSchema

ledger = AreaGroup("ledger", help="The double-entry ledger: balances, the trial balance, journals.")


@ledger.command("trial-balance")
@tenant_scoped
@json_option
def trial_balance(principal, as_json):
    """Every account's debits, credits and balance per currency, and each currency's totals
    (its debits equal its credits when the books balance)."""
    report = service.trial_balance(principal)
    data = TrialBalanceSchema().dump({"livemode": principal.livemode, "balanced": report.balanced,
                                      "accounts": report.accounts, "totals": report.totals})
    if as_json:
        print_json(data)
        return
    columns = ["account", "currency", "debits", "credits", "balance"]
    print_rows(data["accounts"], columns, f"Trial balance ({principal.mode} mode)")
    print_rows([{"account": "total", **total} for total in data["totals"]], columns)
    say("Balanced." if report.balanced else "NOT BALANCED: a currency's debits differ from its credits.")


@ledger.command("journals")
@tenant_scoped
@list_options
@click.option("--kind", type=click.Choice(sorted(KINDS)), default=None)
@click.option("--object", "object_id", default=None, metavar="ID", help="The object they record (inv_…, pay_…).")
@click.option("--account", default=None, help="With an entry on this account (or any account of this code).")
@json_option
def list_journals(principal, limit, starting_after, kind, object_id, account, as_json):
    """The tenant's journals in this mode, newest first (--json: with their entries)."""
    page = service.list_journals(principal, limit, starting_after, kind, object_id, account)
    print_page(page, JournalSchema(), ["id", "kind", "object_id", "posted_at", "memo"],
               f"Journals ({principal.mode} mode)", as_json)


@ledger.command("export")
@tenant_scoped
@click.option("--format", "form", type=click.Choice(FORMATS), default="beancount", show_default=True)
@click.option("--from", "start", type=Day(), default=None, help="The first day (the tenant's time zone), included.")
@click.option("--to", "end", type=Day(), default=None, help="The last day (the tenant's time zone), included.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write, atomically (default: standard output).")
def export(principal, form, start, end, output):
    """Every journal of a range of days, as GET /v1/ledger/export writes it: Beancount text
    (bean-check accepts it) or a CSV row per entry."""
    found = export_service.ledger_export(principal, start.date() if start else None, end.date() if end else None)
    if output is None or str(output) == "-":
        for chunk in export_service.chunks(found, form):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    tmp = output.with_name(f".{output.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            for chunk in export_service.chunks(found, form):
                handle.write(chunk)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    say(f"Wrote {output}: {found.title}.")
