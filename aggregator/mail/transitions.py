"""The guarded transitions of email deliveries: recorded (pending; or failed at once when there
is nobody to send to), pending -> sent, pending -> failed, and a pending delivery put back to
wait for its next attempt. The only code that writes a delivery's status."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import sqlalchemy as sa

from ..db import db, dialect_insert, new_ordered_id, run
from ..states import guarded_update
from .models import EMAIL_DELIVERY_STATES, EmailDelivery

_deliveries = EmailDelivery.__table__


def record(rows: Sequence[dict], now: datetime) -> int:
    """Record deliveries (dicts of tenant_id, livemode, event_id, kind, recipient, invoice_id and,
    for one that cannot be sent, `unsendable`: why), in the caller's transaction; those of an
    (event, kind, recipient) already recorded are skipped. -> how many are new."""
    if not rows:
        return 0
    values = []
    for row in rows:
        unsendable = row.get("unsendable")
        values.append({
            "id": new_ordered_id("edl"), "tenant_id": row["tenant_id"], "livemode": row["livemode"],
            "event_id": row["event_id"], "kind": row["kind"], "recipient": row["recipient"],
            "invoice_id": row.get("invoice_id"), "attempts": 0, "next_attempt_at": now, "created_at": now,
            "status": "failed" if unsendable else EMAIL_DELIVERY_STATES.initial, "last_error": unsendable})
    return db.session.execute(dialect_insert(_deliveries).values(values).on_conflict_do_nothing(
        index_elements=["event_id", "kind", "recipient"])).rowcount


def _where_claimed():
    return (_deliveries.c.id == sa.bindparam("delivery"), _deliveries.c.locked_by == sa.bindparam("token"))


def sent(token: str, sent: Sequence[tuple[str, str]], now: datetime) -> None:
    """pending -> sent, for deliveries this claim (`token`) holds: (id, message id) each."""
    if sent:
        run(guarded_update(EMAIL_DELIVERY_STATES, _deliveries, "sent", *_where_claimed())
            .values(sent_at=now, message_id=sa.bindparam("message_id"), attempts=_deliveries.c.attempts + 1,
                    last_error=None, locked_by=None, locked_until=None),
            [{"delivery": d, "token": token, "message_id": m} for d, m in sent])


def failed(token: str, failures: Sequence[tuple[str, str, bool]]) -> None:
    """pending -> failed (given up: refused for good, retried for too long, or no longer to be
    sent): (id, error, whether it was attempted) each."""
    if failures:
        run(guarded_update(EMAIL_DELIVERY_STATES, _deliveries, "failed", *_where_claimed())
            .values(last_error=sa.bindparam("error"), attempts=_deliveries.c.attempts + sa.bindparam("tried"),
                    locked_by=None, locked_until=None),
            [{"delivery": d, "token": token, "error": e[:1000], "tried": int(t)} for d, e, t in failures])


def retry_later(token: str, retries: Sequence[tuple[str, str | None, datetime, bool]]) -> None:
    """A pending delivery stays pending until its next attempt: (id, error, when, whether it was
    attempted) each (not attempted: the batch ran out of time before it)."""
    if retries:
        run(sa.update(_deliveries).where(*_where_claimed(), _deliveries.c.status == "pending")
            .values(last_error=sa.func.coalesce(sa.bindparam("error"), _deliveries.c.last_error),
                    next_attempt_at=sa.bindparam("at"), attempts=_deliveries.c.attempts + sa.bindparam("tried"),
                    locked_by=None, locked_until=None),
            [{"delivery": d, "token": token, "error": e and e[:1000], "at": at, "tried": int(t)}
             for d, e, at, t in retries])
