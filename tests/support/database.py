"""The tests' database: which kind it is, and SQL run on it directly."""
from __future__ import annotations

import sqlalchemy as sa


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


def _sql(app, statement: str, **params):
    from aggregator.db import db

    with app.app_context():
        result = db.session.execute(sa.text(statement), params)
        rows = result.all() if result.returns_rows else None
        db.session.commit()
        return rows
