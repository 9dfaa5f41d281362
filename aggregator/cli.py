"""The `aggregator` command: `flask --app wsgi …` with the app factory built in (the composition
root's command line). Every group in `GROUPS` appears under both; each is imported only when
used, so `--help` starts without building the app. What the areas' groups share (AreaGroup,
options, output) is `aggregator.commands`.
"""
from __future__ import annotations

import copy
import importlib
from typing import Any

import click
from flask.cli import AppGroup, FlaskGroup


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
    "notifications": ("aggregator.accounts.cli", "notifications",
                      "Which emails a tenant's customers are sent, in each mode."),
    "environments": ("aggregator.catalog.cli", "environments",
                     "The tenant's environments (production, staging, …) plans and subscriptions name."),
    "plans": ("aggregator.catalog.cli", "plans",
              "Plans: parent plans granted to providers, and the providers' plans with their profit."),
    "subscriptions": ("aggregator.catalog.cli", "subscriptions",
                      "Subscriptions: a provider's customers on its plans, rated into bills at each close."),
    "meters": ("aggregator.catalog.cli", "meters",
               "Meters: how each kind of usage event aggregates (count, sum, max, hourly_max, …)."),
    "usage": ("aggregator.metering.cli", "usage",
              "Usage events sent, a subscription's current usage, a period's usage export (CSV, Parquet)."),
    "periods": ("aggregator.consolidate.cli", "periods",
                "Invoicing periods: list them, close them, move a tenant's test clock."),
    "invoices": ("aggregator.consolidate.cli", "invoices",
                 "Consolidated invoices: read, finalize, void, charge, render and save their PDFs."),
    "payments": ("aggregator.payments.cli", "payments",
                 "Payments: gateway attempts and money recorded outside Stripe."),
    "refunds": ("aggregator.payments.refunds_cli", "refunds",
                "Refunds: give back (part of) what a customer paid, through Stripe or manually."),
    "credit-notes": ("aggregator.payments.credit_notes_cli", "credit_notes",
                     "Credit notes: correct a finalized invoice, refunding, crediting the customer's balance..."),
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


class AppCommands(AppGroup):
    """The app's own command group (`app.cli`, what `flask --app wsgi` adds to Flask's): GROUPS
    are imported when one is asked for, not when the app is made. The app is made by every
    server and worker process, which need none of them (the demo's alone imports the Stripe SDK
    and localstripe's client: about half a second of each process's start)."""

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in GROUPS and name not in self.commands:
            self.add_command(group(name))
        return super().get_command(ctx, name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *GROUPS})


def app_commands(app_cli: AppGroup) -> AppCommands:
    """`app_cli`'s commands (those extensions added) in an AppCommands group of the same name."""
    commands = AppCommands(app_cli.name)
    for command in app_cli.commands.values():
        commands.add_command(command)
    return commands


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
    "plans, subscriptions, environments, meters, usage, periods, invoices, payments, refunds, payouts, ledger, "
    "events), the demo, the worker and the server's own (db, run, shell, routes, openapi). Errors print one "
    "line and exit with status 1; usage errors exit with status 2. `aggregator COMMAND --help` for more."))


if __name__ == "__main__":  # `python -m aggregator.cli`: run as aggregator.cli, not as a second copy
    from aggregator.cli import main as _main

    _main()
