"""What every area's command group shares (the groups themselves are listed and started by
`aggregator.cli`, the `aggregator` command).

Each area's group is an `AreaGroup`, the one place where a domain error becomes one line on stderr
and exit status 1 (usage errors are click's: exit status 2). Commands print for people (rich
tables) by default and the API's JSON shapes with `--json`; long runs show a progress bar on
stderr and end with a summary.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Sequence

import click
from flask.cli import AppGroup, ScriptInfo
from marshmallow import ValidationError

from . import readiness
from .accounts.keys import Principal
from .accounts.service import get_provider, operator
from .adapters import current
from .errors import DomainError, flatten_messages


class AreaGroup(AppGroup):
    """An area's command group: a domain error raised by any of its commands (subgroups
    included) ends the run with its message on one line of stderr and exit status 1; so does a
    database that cannot be reached or is not migrated. Anything else is a defect, and shows
    its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        import sqlalchemy as sa

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
    if ctx.meta.get("aggregator.database_checked"):  # a subgroup: checked by its parent
        return
    ctx.meta["aggregator.database_checked"] = True
    problem = readiness.ready(ctx.ensure_object(ScriptInfo).load_app())
    if problem is not None:
        raise click.ClickException(problem.message)


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
        return command(principal=operator(tenant_id, mode == "live"), **kwargs)

    return wrapped


def acting_for(principal: Principal, provider_id: str) -> Principal:
    """The operator acting as one of the tenant's providers (what that provider's API key may
    do), for what a provider owns: its plans, its subscriptions. NotFound if it has no such
    provider in this mode."""
    provider = get_provider(principal, provider_id)
    return dataclasses.replace(principal, role="provider", provider_id=provider.id)


def provider_option(required: bool, help: str) -> Callable:
    """--provider prov_…: the command acts as that provider (`acting_for`)."""
    return click.option("--provider", "provider_id", required=required, default=None, metavar="PROVIDER",
                        help=help)


def checked(schema, values: dict[str, Any], options: Mapping[str, str]) -> dict[str, Any]:
    """`values` checked by the API's own schema (the rules of its endpoint); a usage error
    naming each option at fault otherwise (`options`: field -> the option that sets it)."""
    try:
        return schema.load(values)
    except ValidationError as exc:
        problems = flatten_messages(exc.messages)
        raise click.UsageError("\n".join(
            f"Invalid value for '{options.get(field.split('.')[0], field)}': {' '.join(messages)}"
            for field, messages in problems.items())) from None


def pairs(ctx, param, given: tuple[str, ...]) -> dict[str, str] | None:
    """A repeated KEY=VALUE option (--metadata team=ops --metadata tier=gold) -> a dict."""
    if not given:
        return None
    out = {}
    for pair in given:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE.")
        out[key.strip()] = value
    return out


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = _console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(description, total=total)

        def update(completed: float, description: str | None = None) -> None:
            bar.update(task, completed=completed, **({"description": description} if description else {}))

        yield update
