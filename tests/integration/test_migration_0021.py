"""Migration 0021 adds credit notes, their lines and sequences, refunds.credit_note_id and
credits.source_credit_note_id (an invoice's one-credit rule kept for the other kinds), and goes
down again to the schema before it."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings


def test_credit_notes_come_and_go_and_an_invoice_still_gives_one_credit_of_the_other_kinds(tmp_path: Path):
    import flask_migrate

    from aggregator.db import db

    app = create_app({"SETTINGS": Settings(database_url=f"sqlite:///{tmp_path / 'm.sqlite3'}",
                                           storage_dir=tmp_path), "TESTING": True})
    with app.app_context():
        flask_migrate.upgrade(revision="0021_credit_notes")
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert {"credit_notes", "credit_note_lines", "credit_note_sequences"} <= tables
            assert "credit_note_id" in {c["name"] for c in sa.inspect(conn).get_columns("refunds")}
        with db.engine.begin() as conn:
            conn.execute(sa.text("PRAGMA foreign_keys = OFF"))
            insert = ("INSERT INTO credits (id, tenant_id, livemode, customer_id, amount, currency, source_invoice_id, "
                      "kind, source_credit_note_id, created_at) VALUES (:id, 'ten_1', 0, 'cus_1', 100, 'AUD', 'inv_1', "
                      ":kind, :note, '2026-01-01')")
            conn.execute(sa.text(insert), [{"id": "cred_1", "kind": "carried", "note": None},
                                           {"id": "cred_2", "kind": "credit_note", "note": "cn_1"},
                                           {"id": "cred_3", "kind": "credit_note", "note": "cn_2"}])
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
            conn.execute(sa.text(insert), {"id": "cred_4", "kind": "overpayment", "note": None})
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM credits"))  # rows of no tenant: the migration checks foreign keys
        flask_migrate.downgrade(revision="0020")
        with db.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            assert not {"credit_notes", "credit_note_lines", "credit_note_sequences"} & tables
            assert "source_credit_note_id" not in {c["name"] for c in sa.inspect(conn).get_columns("credits")}
            assert "uq_credits_source_invoice_id" in {u["name"] for u in sa.inspect(conn).get_unique_constraints(
                "credits")}
        db.session.remove()
        db.engine.dispose()
