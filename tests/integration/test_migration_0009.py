"""Migration 0009 builds the ledger's tables with their append-only triggers (and, on
PostgreSQL, the balance check), and takes them all away again."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings

LEDGER_TABLES = {"ledger_journals", "ledger_entries"}


def _triggers(conn) -> set[str]:
    if conn.dialect.name == "postgresql":
        return set(conn.execute(sa.text(
            "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'ledger%'")).scalars())
    return set(conn.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'ledger%'")).scalars())


def _up_and_down(app) -> None:
    import flask_migrate

    from aggregator.db import db

    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="0009")  # 0012 changes the checks (test_migration_0012.py)
        with db.engine.connect() as conn:
            assert LEDGER_TABLES <= set(sa.inspect(conn).get_table_names())
            expected = {f"{t}_{suffix}" for t in LEDGER_TABLES for suffix in (
                ("append_only", "no_truncate") if conn.dialect.name == "postgresql" else ("no_update", "no_delete"))}
            if conn.dialect.name == "postgresql":
                expected.add("ledger_entries_balanced")
            assert _triggers(conn) == expected
        flask_migrate.downgrade(revision="0008")
        with db.engine.connect() as conn:
            assert not LEDGER_TABLES & set(sa.inspect(conn).get_table_names())
            assert _triggers(conn) == set()
            if conn.dialect.name == "postgresql":
                assert conn.execute(sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'ledger%'")).scalar() == 0
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            assert LEDGER_TABLES <= set(sa.inspect(conn).get_table_names())
        db.session.remove()


def test_the_ledger_migration_goes_up_and_down_on_sqlite(tmp_path: Path):
    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                           storage_dir=tmp_path), "TESTING": True})
    _up_and_down(app)
    with app.app_context():
        from aggregator.db import db

        db.engine.dispose()


def test_the_ledger_migration_goes_up_and_down_on_postgresql(app, postgres_only):
    """On the session's own database: the ledger's tables come back empty, as they were."""
    _up_and_down(app)
