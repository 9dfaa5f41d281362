"""The database handle, shared column types and identifier generation."""
from __future__ import annotations

import threading
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import orjson
import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase
from ulid import ULID

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offsets)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def new_id(prefix: str) -> str:
    """A public identifier such as 'bill_01JD3…': unguessable and sortable by creation time."""
    return f"{prefix}_{str(ULID()).lower()}"


_last_ordered = 0
_ordered_lock = threading.Lock()


def new_ordered_id(prefix: str) -> str:
    """Like new_id, and strictly increasing within this process even within one millisecond
    (ULID's monotonic rule: the next value is the last plus one), so ids made one after another
    sort in the order they were made (events)."""
    global _last_ordered
    with _ordered_lock:
        value = int(ULID())
        if value <= _last_ordered:
            value = _last_ordered + 1
        _last_ordered = value
    return f"{prefix}_{str(ULID.from_int(value)).lower()}"


def id_column(prefix: str) -> sa.orm.MappedColumn:
    return sa.orm.mapped_column(sa.String(40), primary_key=True, default=lambda: new_id(prefix))


def is_postgres() -> bool:
    """Where a service has a statement of PostgreSQL's own (ingest's JSON rows)."""
    return db.engine.dialect.name == "postgresql"


# --- the dialects' differences, each named: the services call these, never test the dialect -----

def dialect_name() -> str:
    """The database's kind: "postgresql" or "sqlite" (read from the engine: no session is made).
    For statements built once per dialect (cached by it); everything else calls the functions
    below."""
    return db.engine.dialect.name


def serializes_writers() -> bool:
    """SQLite: no row locks, one writer at a time, so a transaction writes first (taking the
    database's write lock) before it reads what it relies on. PostgreSQL locks rows instead."""
    return dialect_name() == "sqlite"


def utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def dialect_insert(table, dialect: str | None = None):
    """INSERT with ON CONFLICT support (PostgreSQL in production, SQLite embedded), for the
    session's database or the `dialect` named (a statement built once per dialect; another engine's)."""
    from sqlalchemy.dialects import sqlite

    return postgresql.insert(table) if (dialect or dialect_name()) == "postgresql" else sqlite.insert(table)


def insert_rows(table: sa.Table, rows: Sequence[Mapping[str, Any]], conflict: Sequence[str] | None = None,
                returning: sa.Column | None = None) -> list:
    """INSERT many rows (dicts with the same keys) of `table`, each skipped if it conflicts on
    `conflict` (columns of a unique index; None: on any), in the session's transaction.
    -> the `returning` column's values of the rows inserted (or []).

    PostgreSQL gets one short statement whose rows are one JSON parameter (an array of arrays),
    as ingest does: the executemany alternative renders thousands of parameters per statement,
    which psycopg parses anew each time (about 0.4 ms a 20-column row, ten times the insert
    itself). Elsewhere the same INSERT, executemany."""
    if not rows:
        return []
    if dialect_name() != "postgresql":
        stmt = dialect_insert(table).on_conflict_do_nothing(index_elements=conflict)
        if returning is not None:
            return list(run(stmt.returning(returning), list(rows)).scalars())
        run(stmt, list(rows))
        return []
    names = list(rows[0])
    payload = json_rows(table, names, rows)
    sql = _insert_rows_sql(table, tuple(names), tuple(conflict or ()), returning.name if returning is not None else "")
    result = run(sql, {"rows": payload})
    return list(result.scalars()) if returning is not None else []


def json_rows(table: sa.Table, names: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """`rows`' values of the columns `names` as one JSON array of arrays (PostgreSQL's JSON rows:
    read back by `json_select`)."""
    columns = [table.c[name] for name in names]
    encoded = [(i, f) for i, column in enumerate(columns) if (f := _json_value(column)) is not None]
    arrays = []
    for row in rows:
        values = [row[name] for name in names]
        for i, f in encoded:
            values[i] = f(values[i])
        arrays.append(values)
    return orjson.dumps(arrays).decode()


def json_select(table: sa.Table, names: Sequence[str]) -> str:
    """SELECT of the columns `names` (in order) from the JSON rows bound as :rows (`json_rows`)."""
    dialect = postgresql.dialect()
    values = []
    for i, name in enumerate(names):
        kind = table.c[name].type
        if isinstance(kind, sa.LargeBinary):
            values.append(f"decode(r->>{i}, 'hex')")
        else:
            values.append(f"CAST(r->>{i} AS {kind.compile(dialect=dialect)})")
    return f" SELECT {', '.join(values)} FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r"  # nosec B608


def _json_value(column: sa.Column) -> Callable[[Any], Any] | None:
    """How a column's value travels in the JSON rows: bytes as hex, JSON as its text (as the
    JSON type stores it), times made UTC (as UTCDateTime binds them); the rest (None) as orjson
    writes it."""
    kind = column.type
    if isinstance(kind, sa.LargeBinary):
        return lambda v: None if v is None else v.hex()
    if isinstance(kind, sa.JSON):
        import json
        return lambda v: None if v is None else "{}" if v == {} else json.dumps(v)
    if isinstance(kind, UTCDateTime):
        bind, dialect = kind.process_bind_param, postgresql.dialect()
        return lambda v: bind(v, dialect)
    return None


_INSERT_ROWS: dict[tuple, sa.TextClause] = {}


def _insert_rows_sql(table: sa.Table, names: tuple[str, ...], conflict: tuple[str, ...], returning: str):
    key = (table.name, names, conflict, returning)
    if key not in _INSERT_ROWS:
        target = f" ({', '.join(table.c[name].name for name in conflict)})" if conflict else ""
        # names of the table's own columns (table.c refuses any other), never input: no injection
        insert = f"INSERT INTO {table.name} ({', '.join(names)})"
        select = json_select(table, names)
        _INSERT_ROWS[key] = sa.text(insert + select + f" ON CONFLICT{target} DO NOTHING"
                                    + (f" RETURNING {returning}" if returning else ""))
    return _INSERT_ROWS[key]


def unnested(ids: Sequence, column: sa.Column, name: str) -> sa.TableValuedAlias:
    """PostgreSQL: `unnest(:name) AS …(id)`, the ids as rows to join a table to (an index look-up
    each), where `column = ANY(:ids)` of a thousand ids plans slowly: the planner estimates every
    element against the statistics (of every partition)."""
    return sa.func.unnest(sa.bindparam(name, list(ids), type_=postgresql.ARRAY(column.type))).table_valued(
        "id").render_derived()


def first_by(value: sa.ColumnElement, order: sa.ColumnElement) -> sa.ColumnElement:
    """PostgreSQL's aggregate: the group's `value` first in `order` ((array_agg(value ORDER BY
    order))[1])."""
    return sa.func.array_agg(postgresql.aggregate_order_by(value, order))[1]


def locking(query: sa.Select, dialect: str | None = None, **kwargs) -> sa.Select:
    """SELECT … FOR UPDATE (or FOR SHARE with read=True) on PostgreSQL (the session's database, or
    the `dialect` named). SQLite has no row locks; it serializes writers, and the code takes its
    write lock before reading what it relies on."""
    return query.with_for_update(**kwargs) if (dialect or dialect_name()) == "postgresql" else query


def skip_locked(query: sa.Select, **kwargs) -> sa.Select:
    """The rows a worker claims: FOR UPDATE SKIP LOCKED on PostgreSQL, so workers claiming at once
    get different rows; as it is on SQLite, which serializes writers."""
    return locking(query, skip_locked=True, **kwargs)


def advisory_locks(names: Sequence[str]) -> None:
    """Hold a lock of each name until the transaction ends: PostgreSQL's transaction-scoped
    advisory locks, taken in the order given (give them in a fixed order, so that two
    transactions never wait for each other); SQLite's database write lock."""
    if dialect_name() != "postgresql":
        write_lock()
        return
    for name in names:
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(name.encode())})


def greatest(*values) -> sa.ColumnElement:
    """The largest of `values` in SQL (SQLite's max of several arguments)."""
    return (sa.func.greatest if dialect_name() == "postgresql" else sa.func.max)(*values)


def least(*values) -> sa.ColumnElement:
    """The smallest of `values` in SQL (SQLite's min of several arguments)."""
    return (sa.func.least if dialect_name() == "postgresql" else sa.func.min)(*values)


def analyze(table: sa.Table) -> None:
    """Refresh the planner's statistics of `table` now (PostgreSQL: after a bulk write that a
    later statement of the transaction joins; SQLite plans without them)."""
    if dialect_name() == "postgresql":
        db.session.execute(sa.text(f'ANALYZE "{table.name}"'))


def json_for_bulk_insert() -> Callable[[Mapping[str, Any]], Any]:
    """How a JSON column's value is given to bulk_insert: as text for PostgreSQL's COPY, as the
    dict elsewhere (the column type encodes it)."""
    if dialect_name() == "postgresql":
        return lambda value: orjson.dumps(value).decode()
    return dict


def in_ids(column, ids) -> sa.ColumnElement[bool]:
    """`column IN ids`: on PostgreSQL one array parameter (`= ANY(:ids)`), so a batch's statement
    is the same text whatever its size (parsed and planned once; an IN list of 200 parameters
    is rendered, sent and parsed anew each time); elsewhere a plain IN list."""
    ids = list(ids)
    if dialect_name() == "postgresql":
        return column == sa.any_(sa.bindparam(None, ids, type_=postgresql.ARRAY(column.type)))
    return column.in_(ids)


def run(statement, params=None):
    """Execute a Core statement on the session's connection (same transaction), skipping the
    ORM's statement processing: for the hot paths, where that overhead dominates."""
    return db.session.connection().execute(statement, params)


_PREPARED: dict[tuple[int, str], tuple[object, sa.engine.Compiled]] = {}


def _prepared(statement, dialect, params: dict) -> tuple[str, list | dict]:
    """The SQL of a Core statement built once, compiled once per dialect, and its parameters as
    the driver takes them, converted by SQLAlchemy's own bind processors (without its
    per-execution machinery: about 0.1 ms a statement)."""
    key = (id(statement), dialect.name)
    if key not in _PREPARED:  # the statement is kept with its compiled form, so its id stays its own
        _PREPARED[key] = (statement, statement.compile(dialect=dialect))
    compiled = _PREPARED[key][1]
    values = compiled.construct_params(params)
    for name, process in compiled._bind_processors.items():
        values[name] = process(values[name])
    return compiled.string, [values[name] for name in compiled.positiontup] if compiled.positional else values


def run_prepared(statement, params: dict, *, whole: bool = False):
    """Execute a Core statement that is built once (the hot paths') on the session's DBAPI
    connection, in its transaction (see _prepared). -> the driver's cursor; rows are plain
    tuples, not converted by column types.

    `whole=True` says the statement is a whole transaction by itself (a read, or a write to be
    committed at once). On PostgreSQL, when no transaction is open on the connection yet, it
    then runs as its own transaction (the driver's autocommit): the BEGIN and COMMIT round trips
    are saved and the session's later commit has nothing left to do. Otherwise it runs in the
    session's transaction, as on SQLite."""
    connection = db.session.connection()
    sql, values = _prepared(statement, connection.dialect, params)
    driver = connection.connection.driver_connection
    alone = whole and connection.dialect.name == "postgresql" and driver.info.transaction_status == 0  # IDLE
    if alone:
        driver.autocommit = True
    try:
        cursor = driver.cursor()
        cursor.execute(sql, values)
    finally:
        if alone:
            driver.autocommit = False
    return cursor


def run_alone(statement, params: dict) -> tuple | None:
    """Execute a Core statement built once that is a whole transaction by itself, and commit it.
    -> its first row (a plain tuple), or None.

    On PostgreSQL, when the session holds no connection yet, it runs on a pooled connection of
    its own in the driver's autocommit: no BEGIN or COMMIT round trip, and none of the session's
    work (about 0.05 ms a request on the intake hot path). Otherwise (a session already in use
    must not wait for a second connection; SQLite) it runs on the session's connection: alone
    if no transaction is open there (see run_prepared), and the session is then committed."""
    engine = db.engine
    if engine.dialect.name != "postgresql" or (db.session.registry.has() and db.session.registry().in_transaction()):
        row = run_prepared(statement, params, whole=True).fetchone()
        db.session.commit()
        return row
    sql, values = _prepared(statement, engine.dialect, params)
    pooled = engine.raw_connection()
    try:
        driver = pooled.driver_connection
        driver.autocommit = True
        try:
            return driver.execute(sql, values).fetchone()
        except Exception as exc:
            if driver.closed:  # lost: never handed out again
                pooled.invalidate(exc)
            raise
        finally:
            if not driver.closed:
                driver.autocommit = False
    finally:
        pooled.close()  # back to the pool


def bulk_insert(table: sa.Table, rows: list, columns: Sequence[str] | None = None) -> None:
    """Insert many rows in the session's transaction: COPY on PostgreSQL (several times faster
    than INSERT for the close's invoice lines), executemany elsewhere. Rows are plain values;
    no column here needs a Python-side type conversion. Rows are dicts, or, with `columns`,
    tuples of those columns' values (a million ledger entries need no dict each)."""
    if not rows:
        return
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(sa.insert(table), rows if columns is None else [dict(zip(columns, r)) for r in rows])
        return
    names = ", ".join(f'"{name}"' for name in (columns or rows[0]))
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        if columns is not None:
            for row in rows:
                copy.write_row(row)
        else:
            keys = list(rows[0])
            for row in rows:
                copy.write_row([row[name] for name in keys])


def write_lock() -> None:
    """Take SQLite's database write lock now, before reading rows the transaction relies on
    (SQLite has no row locks). On PostgreSQL row locks are taken by the reads themselves."""
    if dialect_name() == "sqlite":
        db.session.execute(sa.text("UPDATE invoice_sequences SET next_number = next_number WHERE 0"))


#: A pooled PostgreSQL connection idle for this long (seconds) is checked before it is lent: a
#: restarted server closed it unseen. Busy connections are lent unchecked, so a request pays no
#: extra round trip (pool_pre_ping would, on every checkout).
IDLE_PING_SECONDS = 1.0


def _checked_in(dbapi_connection, record) -> None:
    record.info["idle_since"] = time.monotonic()


def _checked_out(dbapi_connection, record, proxy) -> None:
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < IDLE_PING_SECONDS \
            or not type(dbapi_connection).__module__.startswith("psycopg"):
        return
    try:
        dbapi_connection.execute("SELECT 1")
        dbapi_connection.rollback()  # lent idle, as the pool's reset left it
    except Exception as exc:  # noqa: BLE001 - any failure: the pool drops it and connects anew
        raise sa.exc.DisconnectionError(f"an idle pooled connection was lost: {exc}") from exc


def prepare(app) -> None:
    """The engine's options and hooks for the app's database, before db.init_app. SQLite, the
    embedded default (a file under var/, created by the migrations: bin/start): waits up to 30 s
    for the write lock, WAL for concurrent readers, foreign keys on. PostgreSQL: every pool checks
    a connection that sat idle before lending it (it reconnects by itself after a restart)."""
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        ping_idle_connections()
        return
    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {}).setdefault("timeout", 30)

    @sa.event.listens_for(sa.engine.Engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()


def ping_idle_connections() -> None:
    """Have every pool check a connection that sat idle before lending it (once per process)."""
    if not sa.event.contains(sa.pool.Pool, "checkout", _checked_out):
        sa.event.listen(sa.pool.Pool, "checkin", _checked_in)
        sa.event.listen(sa.pool.Pool, "checkout", _checked_out)
