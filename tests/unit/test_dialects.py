"""SQLite and PostgreSQL differ in one module: aggregator/db.py names each difference
(`skip_locked`, `locking`, `advisory_locks`, `serializes_writers`, `greatest`, `analyze`,
`dialect_insert`, `bulk_insert`, …) and the services call those, never asking which database they
run on."""
from __future__ import annotations

import re

from aggregator.config import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "aggregator"
#: modules that read the database URL before any engine exists, and why
URL_READERS = {
    "config.py": "the engine's pool options for a PostgreSQL URL; the default SQLite URL",
    "readiness.py": "the SQLite file a URL names, checked before connecting",
}
ASKING = re.compile(r"dialect\.name\s*[!=]=|[!=]=\s*[\"'](postgresql|sqlite)[\"']|from sqlalchemy\.dialects|"
                    r"startswith\([\"'](postgresql|sqlite)")


def test_only_db_py_tells_the_databases_apart():
    asked = [f"{path.relative_to(PROJECT_ROOT)}:{n}: {line.strip()}"
             for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "db.py"
             and str(path.relative_to(PACKAGE)) not in URL_READERS
             for n, line in enumerate(path.read_text().splitlines(), 1) if ASKING.search(line)]
    assert asked == []

