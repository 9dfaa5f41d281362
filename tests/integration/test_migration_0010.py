"""Migration 0010 records, for periods already closing or closed, their providers' rates as they
are now (the closest record there is), and goes down again."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings


def test_closed_periods_get_their_providers_rates_and_the_table_goes_away_down(tmp_path: Path):
    import flask_migrate

    from aggregator.db import db

    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                           storage_dir=tmp_path), "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(revision="0009")
        with db.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO tenants (id, created_at) VALUES ('ten_1', '2026-01-01')"))
            conn.execute(sa.text(
                "INSERT INTO providers (id, tenant_id, livemode, name, revenue_share_rate, created_at) VALUES "
                "('prov_a', 'ten_1', 0, 'A', '0.3', '2026-01-01'), ('prov_b', 'ten_1', 0, 'B', '0', '2026-01-01')"))
            conn.execute(sa.text(
                "INSERT INTO periods (tenant_id, livemode, start, \"end\", start_at, end_at, status) VALUES "
                "('ten_1', 0, '2026-09-25', '2026-10-24', '2026-09-25', '2026-10-25', 'closed'), "
                "('ten_1', 0, '2026-10-25', '2026-11-24', '2026-10-25', '2026-11-25', 'open')"))
        flask_migrate.upgrade(revision="0010")
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT period_start, provider_id, revenue_share_rate FROM period_rates "
                                        "ORDER BY provider_id")).all()
            assert [tuple(r) for r in rows] == [("2026-09-25", "prov_a", "0.3"), ("2026-09-25", "prov_b", "0")]
        flask_migrate.downgrade(revision="0009")
        with db.engine.connect() as conn:
            assert "period_rates" not in sa.inspect(conn).get_table_names()
        db.session.remove()
        db.engine.dispose()
