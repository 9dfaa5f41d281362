"""Migration 0005 gives each mode the tenant's settings and schedules the lanes that have periods."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings

NOW = "2026-11-25 00:00:00.000000"


def test_each_mode_starts_with_the_tenants_settings_and_lanes_with_periods_are_looked_at(tmp_path: Path):
    import flask_migrate

    from aggregator.db import db

    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                           storage_dir=tmp_path), "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(revision="0004")
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO tenants (id, name, legal_name, timezone, default_currency, period_anchor_day, charge_day,"
                " default_tax_rate, invoice_prefix, invoice_review, auto_finalize_after_days, locale, created_at)"
                " VALUES ('ten_1', 'Shop', 'Shop Ltd', 'Australia/Sydney', 'AUD', 25, 3, '0.1', 'SHOP', 'manual', 4,"
                " 'en_AU', :now)"), {"now": NOW})
            conn.execute(sa.text(
                "INSERT INTO periods (tenant_id, livemode, start, \"end\", start_at, end_at, status)"
                " VALUES ('ten_1', 0, '2026-10-25', '2026-11-24', :now, :now, 'open')"), {"now": NOW})
        flask_migrate.upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT livemode, name, legal_name, timezone, default_currency, period_anchor_day, charge_day,"
                " default_tax_rate, invoice_prefix, invoice_review, auto_finalize_after_days, locale"
                " FROM tenant_settings ORDER BY livemode")).all()
            assert [tuple(r)[1:] for r in rows] == [("Shop", "Shop Ltd", "Australia/Sydney", "AUD", 25, 3, "0.1",
                                                    "SHOP", "manual", 4, "en_AU")] * 2
            assert [bool(r[0]) for r in rows] == [False, True]
            assert {c["name"] for c in sa.inspect(conn).get_columns("tenants")} == {"id", "created_at"}
            lanes = conn.execute(sa.text("SELECT tenant_id, livemode, wake_at FROM due_lanes")).all()
            assert [(line[0], bool(line[1])) for line in lanes] == [("ten_1", False)] and lanes[0][2] is not None
        flask_migrate.downgrade(revision="0004")
        with db.engine.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT name, invoice_prefix, auto_finalize_after_days FROM tenants")).all() == [
                ("Shop", "SHOP", 4)]
        db.engine.dispose()
