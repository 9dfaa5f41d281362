"""A benchmark's own PostgreSQL database, made afresh, with this process pointed at it."""
from __future__ import annotations

import os

from close import ROOT, log, recreate_database, urls


def fresh_database(url: str) -> tuple[str, str]:
    """Drop and create the database `url` names; AGGREGATOR_DATABASE_URL names it and the
    working directory is the repository. -> (SQLAlchemy URL, psycopg conninfo)"""
    app_url, conninfo, admin_conninfo, dbname = urls(url)
    log(f"recreating database {dbname!r}")
    recreate_database(admin_conninfo, dbname)
    os.environ["AGGREGATOR_DATABASE_URL"] = app_url
    os.chdir(ROOT)
    return app_url, conninfo
