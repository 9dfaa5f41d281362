"""The guarded transitions of a bill: pending -> cancelled. The only code that writes a bill's
status (a bill is created pending: BILL_STATES.initial)."""
from __future__ import annotations

from datetime import datetime

from ..db import db, insert_rows
from ..states import guarded_update
from .models import BILL_STATES, Bill

_bills = Bill.__table__


def cancel(bill: Bill, now: datetime) -> bool:
    """pending -> cancelled, if the bill is still pending in the period it was read in (the
    caller holds that period's row lock: no close has started). -> whether it changed."""
    return bool(db.session.execute(guarded_update(
        BILL_STATES, _bills, "cancelled", _bills.c.id == bill.id, _bills.c.period_start == bill.period_start,
        cancelled_at=now)).rowcount)


def create_bills(rows: list[dict]) -> set[str]:
    """Store bills (rows of every column but status and cancelled_at) pending, each once: a row
    whose (provider, idempotency key) is already stored is skipped. -> the ids stored now."""
    initial = BILL_STATES.initial
    return set(insert_rows(_bills, [{**row, "status": initial} for row in rows],
                           conflict=["provider_id", "idempotency_key"], returning=_bills.c.id))
