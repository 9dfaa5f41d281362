"""A database that does not exist or is not migrated is said so, with the fix, by every command
and by the served app (503 in the one error shape, /readyz not ready), never created by mistake
nor left to fail with `no such table`."""
from __future__ import annotations

import uuid
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy as sa

from aggregator import create_app
from aggregator.config import Settings
from tests.support.database import is_postgres

FIX = "run bin/start or `flask --app wsgi db upgrade`"


def _app(url: str, tmp_path: Path, var_dir: Path | None = None):
    settings = Settings(database_url=url, storage_dir=tmp_path / "storage", secret_key_file=tmp_path / "secret.key",
                        var_dir=var_dir or tmp_path / "var")
    return create_app({"SETTINGS": settings, "TESTING": True})


@pytest.fixture
def empty_database(database_url, tmp_path):
    """A database of the suite's kind holding nothing: a new SQLite file, or a new PostgreSQL
    schema (the session's database is left alone)."""
    if not is_postgres(database_url):
        path = tmp_path / "empty.sqlite3"
        sa.create_engine(f"sqlite:///{path}").connect().close()
        yield f"sqlite:///{path}"
        return
    schema = f"empty_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield sa.engine.make_url(database_url).update_query_dict({"options": f"-csearch_path={schema}"}) \
        .render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def _dispose(app) -> None:
    with app.app_context():
        from aggregator.db import db

        db.engine.dispose()


def test_a_command_on_a_missing_sqlite_file_says_so_and_creates_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.sqlite3'}"
    app = _app(url, tmp_path)
    for args in (["tenants", "list"], ["invoices", "list", "--tenant", "ten_x"], ["worker", "run", "--once"]):
        result = app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            f"Error: The database {url} does not exist: {FIX} (AGGREGATOR_DATABASE_URL names the database)."]
    assert not (tmp_path / "nonexistent").exists()  # neither the folders nor the file were made


def test_migrating_a_mistyped_path_is_refused_and_creates_no_folders(tmp_path):
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.sqlite3'}"
    result = _app(url, tmp_path).test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 1
    assert f"The folder {tmp_path / 'nonexistent' / 'dir'} of the database {url} does not exist" in result.output
    assert not (tmp_path / "nonexistent").exists()


def test_migrating_the_default_creates_its_folder_and_then_commands_work(tmp_path):
    var = tmp_path / "var"
    app = _app(f"sqlite:///{var / 'aggregator.sqlite3'}", tmp_path, var_dir=var)
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    result = app.test_cli_runner().invoke(args=["tenants", "list", "--json"])
    assert result.exit_code == 0, result.output
    _dispose(app)


def test_a_command_on_an_unmigrated_database_says_so(empty_database, tmp_path):
    app = _app(empty_database, tmp_path)
    result = app.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 1
    shown = sa.engine.make_url(empty_database).render_as_string(hide_password=True)
    assert result.output.strip() == (f"Error: The database {shown} is not migrated (it has no schema): {FIX} "
                                     "(AGGREGATOR_DATABASE_URL names the database).")
    _dispose(app)


def test_a_database_behind_the_code_is_not_migrated_to_this_version(empty_database, tmp_path):
    app = _app(empty_database, tmp_path)
    with app.app_context():
        flask_migrate.upgrade(revision="0011")
    result = app.test_cli_runner().invoke(args=["tenants", "list"])
    assert result.exit_code == 1
    assert "is not migrated to this version (it is at 0011, this code needs" in result.output and FIX in result.output
    response = app.test_client().get("/readyz")
    assert response.status_code == 503 and "it is at 0011" in response.get_json()["error"]["message"]
    _dispose(app)


def test_the_served_app_answers_503_until_migrated_and_ready_after(empty_database, tmp_path):
    app = _app(empty_database, tmp_path)
    client = app.test_client()
    assert client.get("/healthz").status_code == 200  # the process answers
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["error"]["code"] == "database_not_ready"
    assert "is not migrated (it has no schema)" in ready.get_json()["error"]["message"]
    for method, path in (("GET", "/v1/tenant"), ("POST", "/v1/tenants"), ("GET", "/finance/")):
        response = client.open(path, method=method, json={} if method == "POST" else None,
                                headers={"Authorization": "Bearer agg_admin_test_x"})
        assert response.status_code == 503, (path, response.data)
        error = response.get_json()["error"]
        assert error["type"] == "api_error" and error["code"] == "database_not_ready" and FIX in error["message"]
    assert client.get("/metrics").status_code == 200  # the process's own metrics still
    with app.app_context():
        flask_migrate.upgrade()
    assert client.get("/readyz").status_code == 200
    assert client.get("/v1/tenant", headers={"Authorization": "Bearer agg_admin_test_x"}).status_code == 401
    _dispose(app)


def test_the_served_app_on_a_missing_sqlite_file_creates_none(tmp_path):
    path = tmp_path / "missing" / "x.sqlite3"
    client = _app(f"sqlite:///{path}", tmp_path).test_client()
    assert client.get("/v1/tenant", headers={"Authorization": "Bearer agg_admin_test_x"}).status_code == 503
    message = client.get("/readyz").get_json()["error"]["message"]
    # clients are told why and the fix, not where the database is (the command line names it)
    assert message == f"The database does not exist: {FIX} (AGGREGATOR_DATABASE_URL names the database)."
    assert not path.parent.exists()


def test_a_worker_process_waits_for_a_missing_database_and_never_creates_it(tmp_path, caplog):
    import threading

    from aggregator import worker

    path = tmp_path / "x.sqlite3"  # its folder exists: SQLite would make an empty file there
    settings = Settings(database_url=f"sqlite:///{path}", storage_dir=tmp_path / "storage",
                        secret_key_file=tmp_path / "secret.key", var_dir=tmp_path / "var", tick_seconds=0.05)
    app = create_app({"SETTINGS": settings, "TESTING": True})
    assert worker.run_process(app, once=True, stopping=threading.Event()) == 1
    stopping = threading.Event()
    threading.Timer(0.5, stopping.set).start()
    assert worker.run_process(app, stopping=stopping) == 0  # waited until stopped
    assert not path.exists()
    assert f"The database sqlite:///{path} does not exist: {FIX}" in caplog.text
