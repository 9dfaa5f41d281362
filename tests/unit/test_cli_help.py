"""`aggregator --help` without building the app: every group listed, each with its own help's
first line, and nothing heavy imported to show it."""
from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from aggregator import cli, commands


@pytest.mark.parametrize("name", sorted(cli.GROUPS))
def test_the_top_help_shows_each_groups_own_first_line(name):
    assert cli.group(name).get_short_help_str(limit=cli.SHORT_HELP) == cli.GROUPS[name][2]
    assert cli.group(name).name == name


def test_the_top_help_lists_every_group_without_flasks_own_options():
    result = CliRunner().invoke(cli.main, ["--help"])
    assert result.exit_code == 0, result.output
    commands = result.output.split("Commands:")[1]
    for name in [*cli.GROUPS, *cli.SERVER_COMMANDS]:
        assert f"\n  {name} " in commands, name
    for noise in ("--version", "--debug", "--env-file", "--app"):
        assert noise not in result.output


def test_the_top_help_imports_no_area_and_builds_no_app():
    probe = ("import sys\nfrom click.testing import CliRunner\nfrom aggregator.cli import main\n"
             "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
             "heavy = [m for m in ('flask_smorest', 'flask_migrate', 'sqlalchemy', 'stripe', 'weasyprint',"
             " 'aggregator.accounts', 'aggregator.db') if m in sys.modules]\n"
             "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_a_date_option_names_the_format_in_words():
    @click.command()
    @click.option("--period", type=commands.Day())
    def command(period):
        click.echo(period.date().isoformat())

    runner = CliRunner()
    assert runner.invoke(command, ["--period", "2026-10-25"]).output == "2026-10-25\n"
    result = runner.invoke(command, ["--period", "25/10/2026"])
    assert result.exit_code == 2
    assert "'25/10/2026' is not a date written YYYY-MM-DD, such as 2026-11-01." in result.output
    assert "%Y" not in result.output
    assert "--period YYYY-MM-DD" in runner.invoke(command, ["--help"]).output
