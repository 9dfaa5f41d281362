"""Overdue invoices: an invoice still open (unpaid, or past due after its retries) at the end of
its due date in the tenant's time zone becomes overdue, once: `overdue_at` is set, `invoice.overdue`
is published (webhooks), and the customer is emailed (unless the tenant turned `payment_overdue`
off). Charges and their retries do not move it: overdue is about the due date alone.

Due work of the payments area (payments/due_work.py): a lane's next unit is its earliest due date
with open invoices not yet overdue, due at that day's end (periods.calendar.overdue_from), and
each unit marks all of them as of that instant, whenever it runs."""
from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa

from ..consolidate.models import Invoice
from ..db import db
from ..periods.calendar import overdue_from
from . import transitions


def next_overdue(tenant_id: str, livemode: bool, tz: str) -> tuple[date, datetime] | None:
    """The lane's earliest due date with open invoices not yet overdue, and the instant the first
    of them becomes overdue: the end of that day, or, for an invoice finalized after that (a draft
    finalized late without payment terms), its finalization (after its charge at that instant).
    Two index lookups (ix_invoices_overdue_due); None: nothing is open and not overdue."""
    waiting = (Invoice.tenant_id == tenant_id, Invoice.livemode == livemode, Invoice.status == "open",
               Invoice.overdue_at.is_(None))
    due = db.session.scalar(sa.select(sa.func.min(Invoice.due_date)).where(*waiting))
    if due is None:
        return None
    first = db.session.scalar(sa.select(sa.func.min(Invoice.finalized_at)).where(*waiting, Invoice.due_date == due))
    return due, max(overdue_from(due, tz), first)


#: Invoices marked overdue (and announced) per transaction.
CHUNK = 1000


def mark_overdue_due(tenant_id: str, livemode: bool, due_date: date, as_of: datetime,
                     chunk: int = CHUNK) -> list[str]:
    """Mark the lane's open invoices due on `due_date` (and finalized by `as_of`) overdue as of
    `as_of`, `chunk` invoices to a transaction (a crash keeps what was committed; the next run
    goes on). -> the invoices that became overdue here (none: another worker did it)."""
    marked: list[str] = []
    while True:
        try:
            ids = transitions.mark_overdue(tenant_id, livemode, due_date, as_of, chunk)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        marked += ids
        if not ids:
            return marked
