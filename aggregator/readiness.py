"""Whether the app's database can be used: it exists and its schema is at the migrations' head.

A command or a request facing a database that does not exist (a wrong SQLite path) or is not
migrated answers that, and how to fix it, instead of failing deep inside with `no such table`
(and SQLite is never left to create an empty file, or its folders, on the way). Only a migration
(`flask --app wsgi db upgrade`, which bin/start runs) creates the database, and the folder of the
embedded default (var/)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask

from .config import PROJECT_ROOT
from .db import db

FIX = "run bin/start or `flask --app wsgi db upgrade` (AGGREGATOR_DATABASE_URL names the database)"


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL names, or None (another database, in memory, a `file:` URI)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:") \
            or parsed.query.get("uri"):
        return None
    return Path(parsed.database)


def shown(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class NotReady:
    """Why the database cannot be used: `code` database_not_ready (missing, not migrated: the
    operator's fix is named) or database_unavailable (it does not answer)."""

    code: str
    database: str  # its URL, without a password
    state: str  # "does not exist: run …"
    detail: str = ""  # the driver's words (the operator's only)

    @property
    def message(self) -> str:
        """For the operator (the command line, logs): which database, and the driver's words."""
        return f"The database {self.database} {self.state}{': ' + self.detail if self.detail else ''}."

    @property
    def public(self) -> str:
        """For API clients: the same without the database's address nor the driver's words."""
        return f"The database {self.state}."


def problem(app: Flask) -> NotReady | None:
    """Why `app`'s database cannot be used, in one sentence naming it and the fix; None if it can.
    Looks without creating anything (a missing SQLite file is not opened)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    path = sqlite_file(url)
    if path is not None and not path.is_file():
        return NotReady("database_not_ready", shown(url), f"does not exist: {FIX}")
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    try:
        with app.app_context(), db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.OperationalError as exc:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return NotReady("database_unavailable", shown(url), "is unreachable", detail)
    heads = set(ScriptDirectory(str(PROJECT_ROOT / "migrations")).get_heads())
    if not current:
        return NotReady("database_not_ready", shown(url), f"is not migrated (it has no schema): {FIX}")
    if current != heads:
        return NotReady("database_not_ready", shown(url),
                        f"is not migrated to this version (it is at {', '.join(sorted(current))}, this code "
                        f"needs {', '.join(sorted(heads))}): {FIX}")
    return None


def ready(app: Flask) -> NotReady | None:
    """problem(app) until the database has once been found usable, then None without looking
    again (a schema does not go back; an unreachable server is each request's own error)."""
    if app.extensions.get("aggregator.database_ready"):
        return None
    found = problem(app)
    if found is None:
        app.extensions["aggregator.database_ready"] = True
    return found


class NoSuchFolder(click.ClickException):
    pass


def create_default_folder(app: Flask) -> None:
    """Before a migration: the embedded default's folder (var/, or AGGREGATOR_VAR_DIR) is made if
    missing; any other SQLite path must be in a folder that exists (a typo is not created)."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    path = sqlite_file(url)
    if path is None or path.parent.is_dir():
        return
    settings = app.config.get("AGGREGATOR_SETTINGS")
    if settings is not None and path.parent == settings.var_dir:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    raise NoSuchFolder(f"The folder {path.parent} of the database {shown(url)} does not exist: create it, or "
                       "correct AGGREGATOR_DATABASE_URL.")
