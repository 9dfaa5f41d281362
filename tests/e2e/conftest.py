"""The command line's fixtures, for every test of this folder that runs `aggregator …`."""
from tests.support.cli import cli, cli_tenant  # noqa: F401  (fixtures)
