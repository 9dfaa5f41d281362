"""The only place that writes the status of payouts (see states.py), each change with its event
in the same transaction; a payout paid is published (`facts.py`: PayoutPaid), and the ledger
posts the journal of the money sent.

Payout: pending_review -> approved | canceled; approved -> paid | failed | canceled (canceled
only before it is sent: a Stripe payout whose transfer was requested cannot be canceled).
Events: `payout.created`, `payout.approved`, `payout.paid`, `payout.failed`, `payout.canceled`,
each about its provider (a provider's key sees its own)."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import sqlalchemy as sa

from .. import bus
from ..db import bulk_insert, db, in_ids
from ..events.service import NewEvent, record
from ..states import guarded_update, machine
from .facts import PayoutPaid
from .models import Payout
from .schemas import PayoutSchema

PAYOUT_STATES = machine("payout", {
    "pending_review": {"approved", "canceled"},
    "approved": {"paid", "failed", "canceled"},
    "paid": set(),
    "failed": set(),
    "canceled": set(),
})

_payouts = Payout.__table__
_schema = PayoutSchema()


def create_payouts(tenant_id: str, livemode: bool, rows: list[dict], as_of: datetime) -> list[Payout]:
    """Store payouts pending review, with `payout.created` each."""
    for row in rows:
        row["status"] = PAYOUT_STATES.initial
    bulk_insert(_payouts, rows)
    return _announce(tenant_id, livemode, "payout.created", [row["id"] for row in rows], as_of)


def approve(tenant_id: str, livemode: bool, payout_ids: Sequence[str], as_of: datetime, by: str) -> list[Payout]:
    """pending_review -> approved for those still awaiting review, with `payout.approved`.
    -> the payouts approved here (approving one twice approves, and so pays, it once)."""
    changed = _move(tenant_id, livemode, payout_ids, "approved", approved_at=as_of, approved_by=by)
    return _announce(tenant_id, livemode, "payout.approved", changed, as_of)


def cancel(tenant_id: str, livemode: bool, payout_id: str, as_of: datetime) -> bool:
    """pending_review | approved (not sent: no transfer requested yet) -> canceled."""
    changed = _move(tenant_id, livemode, [payout_id], "canceled", _payouts.c.requests == 0, canceled_at=as_of)
    _announce(tenant_id, livemode, "payout.canceled", changed, as_of)
    return bool(changed)


def note(payout_id: str, **values) -> bool:
    """Columns of an approved payout that are not its status (the key, requests made, when to
    look again). False: it was settled meanwhile."""
    return bool(db.session.execute(sa.update(_payouts).where(_payouts.c.id == payout_id,
                                                             _payouts.c.status == "approved")
                                   .values(**values).execution_options(synchronize_session=False)).rowcount)


def mark_paid(payout: Payout, as_of: datetime, **values) -> bool:
    """approved -> paid (Stripe created the transfer, or finance recorded the bank transfer), with
    its `payout_sent` journal and `payout.paid`. False: it was settled already."""
    changed = _move(payout.tenant_id, payout.livemode, [payout.id], "paid", paid_at=as_of, **values)
    if not changed:
        return False
    bus.publish(PayoutPaid(payout.tenant_id, payout.livemode, payout.id, payout.provider_id, payout.currency,
                           payout.amount, as_of))
    _announce(payout.tenant_id, payout.livemode, "payout.paid", changed, as_of)
    return True


def mark_failed(payout: Payout, as_of: datetime, **values) -> bool:
    """approved -> failed (Stripe refused the transfer), with `payout.failed`: nothing was sent,
    and the next payout of the provider and currency brings its amount forward."""
    changed = _move(payout.tenant_id, payout.livemode, [payout.id], "failed", failed_at=as_of, **values)
    _announce(payout.tenant_id, payout.livemode, "payout.failed", changed, as_of)
    return bool(changed)


def _move(tenant_id: str, livemode: bool, payout_ids: Sequence[str], target: str, *where, **values) -> list[str]:
    if not payout_ids:
        return []
    return list(db.session.execute(
        guarded_update(PAYOUT_STATES, _payouts, target, in_ids(_payouts.c.id, payout_ids),
                       _payouts.c.tenant_id == tenant_id, _payouts.c.livemode == livemode, *where)
        .values(**values).returning(_payouts.c.id).execution_options(synchronize_session=False)).scalars())


def _announce(tenant_id: str, livemode: bool, type_: str, payout_ids: Sequence[str], as_of: datetime) -> list[Payout]:
    if not payout_ids:
        return []
    payouts = db.session.execute(sa.select(Payout).where(in_ids(Payout.id, payout_ids))
                                 .order_by(Payout.id).execution_options(populate_existing=True)).scalars().all()
    record(tenant_id, livemode, as_of, [NewEvent(type_, p.id, {"object": _schema.dump(p)}, provider_id=p.provider_id)
                                        for p in payouts])
    return list(payouts)
