"""The command line in the tests: `cli(*args, exit_code=0)` runs `aggregator …` in-process (no
traceback allowed), and a tenant made with it, as the README does."""
from __future__ import annotations

import json

import click
import pytest

from tests.support.callers import Caller


@pytest.fixture
def cli(app):
    runner = app.test_cli_runner()

    def run(*args: str, exit_code: int = 0):
        result = runner.invoke(args=list(args))
        assert result.exit_code == exit_code, (args, result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    return run


@pytest.fixture
def cli_tenant(cli, client):
    """A tenant made with the command line, as the README does."""
    created = as_json(cli("tenants", "create", "--name", "Acme Marketplace", "--timezone", "Australia/Sydney",
                          "--currency", "AUD", "--json"))
    created["admin"] = Caller(client, created["admin_keys"]["test"])
    created["scope"] = ["--tenant", created["id"], "--mode", "test"]
    return created


def as_json(result) -> dict:
    return json.loads(result.stdout)


def commands_of(app, path: str) -> dict[str, click.Command]:
    """The commands of a group (`path`: "tenants keys")."""
    group = app.cli
    for name in path.split():
        group = group.get_command(None, name)
    assert isinstance(group, click.Group)
    return group.commands
