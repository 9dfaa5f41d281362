"""The rate limits' counters in the service's own database: a storage for the `limits` library
(its fixed-window strategy), so every gunicorn worker and embedded worker, on one machine or
several, counts in one place without another server. Redis (AGGREGATOR_RATELIMIT_STORAGE_URI)
replaces it where counting every request is wanted (a key's request limit).

One row per counter: its key (the `limits` key: limit, scope and identifier), its hits and when
its window ends (epoch seconds, from the clock the storage is given: the app's clock, so tests
move windows by moving the clock). A hit is one atomic upsert that starts a new window when the
old one has ended; reads ignore ended windows, and ended rows are deleted now and then."""
from __future__ import annotations

import itertools
from typing import Callable

import sqlalchemy as sa
from limits.storage import Storage

from ..db import db, dialect_insert

RATE_LIMITS = sa.Table(
    "rate_limits", db.metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

#: Ended rows are deleted by one hit in this many (per process): a table of attackers' addresses
#: stays as small as the windows' worth of them.
PURGE_EVERY = 256


class DatabaseStorage(Storage):
    """`limits` storage over the rate_limits table. `engine` gives the SQLAlchemy engine (called
    on each use: Flask-SQLAlchemy's engine is the app context's); `now` gives epoch seconds."""

    STORAGE_SCHEME = ["aggregator+database"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, *,
                 engine: Callable[[], sa.Engine], now: Callable[[], float], **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._engine, self._now = engine, now
        self._hits = itertools.count(1)

    @property
    def base_exceptions(self) -> type[Exception]:
        return sa.exc.SQLAlchemyError

    def now(self) -> float:
        return self._now()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now, table = self._now(), RATE_LIMITS
        engine = self._engine()
        insert = dialect_insert(table, engine.dialect.name)
        ended = table.c.expires_at <= now
        statement = insert.values(key=key, hits=amount, expires_at=now + expiry).on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"hits": sa.case((ended, insert.excluded.hits), else_=table.c.hits + insert.excluded.hits),
                  "expires_at": sa.case((ended, insert.excluded.expires_at), else_=table.c.expires_at)},
        ).returning(table.c.hits)
        with engine.begin() as connection:
            hits = connection.execute(statement).scalar_one()
        if next(self._hits) % PURGE_EVERY == 0:
            self.purge()
        return hits

    def get(self, key: str) -> int:
        row = self._current(key)
        return row.hits if row else 0

    def get_expiry(self, key: str) -> float:
        row = self._current(key)
        return row.expires_at if row else self._now()

    def _current(self, key: str):
        table = RATE_LIMITS
        with self._engine().connect() as connection:
            return connection.execute(sa.select(table.c.hits, table.c.expires_at)
                                      .where(table.c.key == key, table.c.expires_at > self._now())).first()

    def check(self) -> bool:
        with self._engine().connect() as connection:
            connection.execute(sa.select(sa.func.count()).select_from(RATE_LIMITS).where(sa.false()))
        return True

    def reset(self) -> int | None:
        with self._engine().begin() as connection:
            return connection.execute(sa.delete(RATE_LIMITS)).rowcount

    def clear(self, key: str) -> None:
        with self._engine().begin() as connection:
            connection.execute(sa.delete(RATE_LIMITS).where(RATE_LIMITS.c.key == key))

    def purge(self) -> int:
        """Delete the rows whose window has ended (reads ignore them anyway)."""
        with self._engine().begin() as connection:
            return connection.execute(sa.delete(RATE_LIMITS).where(RATE_LIMITS.c.expires_at <= self._now())).rowcount
