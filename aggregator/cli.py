"""The `aggregator` command, and what every area's command group shares.

`aggregator …` is `flask --app wsgi …` with the app factory built in: every group in `GROUPS`
appears under both, imported only when used (`--help` starts without building the app). Each
area's group is an `AreaGroup`, the one place where a domain error becomes one line on stderr and
exit status 1 (usage errors are click's: exit status 2).
Commands print for people (rich tables) by default and the API's JSON shapes with `--json`; long
runs show a progress bar on stderr and end with a summary.
"""
from __future__ import annotations

import copy
import functools
import importlib
import json
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Sequence

import click
from flask.cli import AppGroup, FlaskGroup


class AreaGroup(AppGroup):
    """An area's command group: a domain error raised by any of its commands (subgroups
    included) ends the run with its message on one line of stderr and exit status 1; so does a
    database that cannot be reached or is not migrated. Anything else is a defect, and shows
    its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import sqlalchemy as sa

        from .errors import DomainError

        require_usable_database(ctx)
        try:
            return super().invoke(ctx)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        except sa.exc.OperationalError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise click.ClickException(f"The database cannot be used: {detail} "
                                       "(is AGGREGATOR_DATABASE_URL right, and `aggregator db upgrade` run?)") from None


def require_usable_database(ctx: click.Context) -> None:
    """Before a command that uses the database: one line and exit status 1 if it does not exist or
    is not migrated (naming it and the fix), rather than `no such table` or an empty file made."""
    from flask.cli import ScriptInfo

    from . import readiness

    if ctx.meta.get("aggregator.database_checked"):  # a subgroup: checked by its parent
        return
    ctx.meta["aggregator.database_checked"] = True
    problem = readiness.ready(ctx.ensure_object(ScriptInfo).load_app())
    if problem is not None:
        raise click.ClickException(problem.message)


def _create_app():
    from . import create_app

    return create_app()


#: The command line's groups, imported only when used, so that `aggregator --help` and a group's
#: own `--help` start without building the app: name -> (module, attribute, the line the top help
#: shows: the group's help, to SHORT_HELP characters; tests/unit/test_cli_help.py holds them equal).
SHORT_HELP = 90
GROUPS: dict[str, tuple[str, str, str]] = {
    "tenants": ("aggregator.accounts.cli", "tenants",
                "Create, inspect and change tenants (the platforms), and their admin keys."),
    "providers": ("aggregator.accounts.cli", "providers", "A tenant's providers (the apps that send bills)."),
    "customers": ("aggregator.accounts.cli", "customers",
                  "A tenant's customers (who receive the consolidated invoices)."),
    "periods": ("aggregator.consolidate.cli", "periods",
                "Invoicing periods: list them, close them, move a tenant's test clock."),
    "invoices": ("aggregator.consolidate.cli", "invoices",
                 "Consolidated invoices: read, finalize, void, charge, render and save their PDFs."),
    "payments": ("aggregator.payments.cli", "payments",
                 "Payments: gateway attempts and money recorded outside Stripe."),
    "refunds": ("aggregator.payments.refunds_cli", "refunds",
                "Refunds: give back (part of) what a customer paid, through Stripe or manually."),
    "payouts": ("aggregator.payouts.cli", "payouts",
                "Provider payouts: build a payout day's, list, approve, record paid, report a period's."),
    "ledger": ("aggregator.ledger.cli", "ledger", "The double-entry ledger: balances, the trial balance, journals."),
    "events": ("aggregator.events.cli", "events", "What happened to a tenant's objects (the events webhooks deliver)."),
    "demo": ("aggregator.demo", "demo",
             "Run one month of consolidated billing on a new test-mode tenant and show what happened,..."),
    "worker": ("aggregator.worker", "worker",
               "The worker: due work (closes, finalizations) and queues (outbox, PDFs, deliveries)."),
}
#: The server's own commands (Flask's, Flask-Migrate's and flask-smorest's), listed without loading them.
SERVER_COMMANDS: dict[str, str] = {
    "db": "Perform database migrations.",
    "openapi": "OpenAPI commands.",
    "routes": "Show the routes for the app.",
    "run": "Run a development server.",
    "shell": "Run a shell in the app context.",
}


def group(name: str) -> click.Command:
    """One of GROUPS, imported now (`invoices` with its `charge`, a payments use case)."""
    module, attribute, _ = GROUPS[name]
    command = getattr(importlib.import_module(module), attribute)
    if name == "invoices":
        from .payments.cli import charge_invoices

        command.add_command(charge_invoices)
    return command


class _Main(FlaskGroup):
    """`aggregator`: Flask's command group with the app factory built in, whose own groups are
    imported when used (nothing heavy for `--help`), without Flask's `--version` and with its
    `--app`/`--env-file`/`--debug` hidden (they still work)."""

    def __init__(self, **extra: Any):
        super().__init__(create_app=_create_app, add_version_option=False, **extra)
        self.params = [_hidden(param) for param in self.params]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in GROUPS:
            return group(name)
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*GROUPS, *SERVER_COMMANDS])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        shown = {**{name: text for name, (_, _, text) in GROUPS.items()}, **SERVER_COMMANDS}
        with formatter.section("Commands"):
            formatter.write_dl(sorted(shown.items()))


def _hidden(param: click.Parameter) -> click.Parameter:
    if isinstance(param, click.Option) and param.name in ("env_file", "app", "debug"):
        param = copy.copy(param)
        param.hidden = True
    return param


main = _Main(name="aggregator", help=(
    "Operate the aggregator: each group below is an area's commands (tenants, providers, customers, "
    "periods, invoices, payments, refunds, payouts, ledger, events), the demo, the worker and the server's "
    "own (db, run, shell, routes, openapi). Errors print one line and exit with status 1; usage errors exit "
    "with status 2. `aggregator COMMAND --help` for more."))


# --- options shared by the areas' commands ------------------------------------------------------

def tenant_scoped(command: Callable) -> Callable:
    """Adds --tenant and --mode, and hands the command `principal`: the operator acting as that
    tenant's admin in that mode (an unknown tenant is an error before the command runs)."""

    @click.option("--tenant", "tenant_id", required=True, envvar="AGGREGATOR_TENANT", metavar="TENANT",
                  help="The tenant's id (ten_…); or set AGGREGATOR_TENANT.")
    @click.option("--mode", type=click.Choice(["live", "test"]), default="live", show_default=True,
                  envvar="AGGREGATOR_MODE", help="Which of the tenant's modes; or set AGGREGATOR_MODE.")
    @functools.wraps(command)
    def wrapped(tenant_id: str, mode: str, **kwargs):
        from .accounts.service import operator

        return command(principal=operator(tenant_id, mode == "live"), **kwargs)

    return wrapped


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON (the API's shapes) instead of a table: for scripts.")


def list_options(command: Callable) -> Callable:
    """--limit and --starting-after, as the API's lists take them."""
    command = click.option("--starting-after", default=None, metavar="ID",
                           help="Continue after this one (the last of the previous page).")(command)
    return click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True,
                        help="How many, newest first.")(command)


class Day(click.DateTime):
    """A calendar date written YYYY-MM-DD (2026-11-01): -> a datetime at midnight, as click.DateTime
    gives, with an error in words rather than strptime's '%Y-%m-%d'."""

    name = "date"

    def __init__(self) -> None:
        super().__init__(["%Y-%m-%d"])

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "YYYY-MM-DD"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            return datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            self.fail(f"{value!r} is not a date written YYYY-MM-DD, such as 2026-11-01.", param, ctx)


class Instant(click.ParamType):
    """An ISO 8601 instant with its offset (2026-11-25T00:00:00+11:00, or …Z)."""

    name = "instant"

    def convert(self, value, param, ctx):
        if isinstance(value, datetime):
            return value
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 instant such as 2026-11-25T00:00:00+11:00.", param, ctx)
        if parsed.tzinfo is None:
            self.fail(f"{value!r} has no offset: add one (+11:00) or Z.", param, ctx)
        return parsed


def now_for(principal) -> datetime:
    """The principal's time: real time in live mode, the tenant's test clock in test mode."""
    from .adapters import current

    return current().clocks.for_principal(principal).now()


# --- output -----------------------------------------------------------------------------------

def _console(stderr: bool = False):
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal:  # a file or a pipe: no width to fit, so do not fold ids and dates
        console.width = 200
    return console


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, default=str))


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and len(value) > 19 and value[10:11] == "T":  # an instant, to the second
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            return value
        return instant.strftime("%Y-%m-%d %H:%M:%S") + ("Z" if instant.utcoffset().total_seconds() == 0
                                                        else instant.strftime("%z"))
    return str(value)


def print_record(record: Mapping[str, Any], title: str | None = None) -> None:
    """One object, a field per row."""
    from rich.table import Table

    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in record.items():
        table.add_row(name, _cell(value))
    _console().print(table)


def print_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], title: str | None = None,
               has_more: bool = False) -> None:
    """Objects, one per row, showing `columns` (fields of their JSON shape)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "id")
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    console = _console()
    console.print(table)
    if has_more:
        console.print(f"(more: --starting-after {rows[-1].get('id', '')})")


def print_page(page, schema, columns: Sequence[str], title: str, as_json: bool) -> None:
    """A page of a list, as the API answers it (--json) or as a table."""
    data = schema.dump(page.data, many=True)
    if as_json:
        print_json({"data": data, "has_more": page.has_more})
    else:
        print_rows(data, columns, title, page.has_more)


def print_object(obj: Any, schema, title: str, as_json: bool) -> None:
    data = schema.dump(obj)
    if as_json:
        print_json(data)
    else:
        print_record(data, title)


def say(text: str) -> None:
    """A line for people (e.g. a secret shown once), never wrapped."""
    _console().print(text, soft_wrap=True, markup=False)


@contextmanager
def progress(description: str, total: float | None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr (shown on a terminal only, so output piped to a file or a
    script stays clean). Yields `update(completed, description=None)`."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn)

    console = _console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def update(completed: float, description: str | None = None) -> None:
            bar.update(task, completed=completed, **({"description": description} if description else {}))

        yield update


if __name__ == "__main__":  # `python -m aggregator.cli`: run as aggregator.cli, not as a second copy
    from aggregator.cli import main as _main

    _main()
