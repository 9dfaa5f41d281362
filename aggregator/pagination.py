"""Cursor pagination, newest first, the way Stripe lists objects."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import sqlalchemy as sa

from .db import db
from .errors import NotFound

DEFAULT_LIMIT = 10
MAX_LIMIT = 100


@dataclass(frozen=True)
class Page:
    data: Sequence[Any]
    has_more: bool


def one(query: sa.Select, id_column, object_id: str, noun: str):
    """The one row of an already scoped `query` with this id, or NotFound ("No such <noun>")."""
    found = db.session.scalars(query.where(id_column == object_id)).first()
    if found is None:
        raise NotFound(f"No such {noun}: {object_id!r}.")
    return found


def paginate(query: sa.Select, id_column, limit: int, starting_after: str | None) -> Page:
    """`query` is already scoped; identifiers sort by creation time, so order by them."""
    if starting_after:
        query = query.where(id_column < starting_after)
    rows = db.session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).unique().all()
    return Page(rows[:limit], len(rows) > limit)
