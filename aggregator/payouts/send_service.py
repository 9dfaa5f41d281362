"""Sending approved payouts by Stripe Connect: a queue (real time), any number of workers.

Exactly once. The idempotency key (`payout-<id>`) was saved with the payout when it was built.
A worker claims a payout (a lease in `send_after`) and counts the attempt (`requests`) in the
same committed UPDATE, before it calls Stripe: so a payout whose attempt may have reached Stripe
is never canceled, and the next attempt after a crash, a timeout or a 5xx (an unknown outcome)
first looks the transfer up (by its transfer group and payout id) and only creates it, with the
same key, when Stripe has no record of it: an unknown outcome is resolved by retrieval, never
by a second transfer. A definitive refusal fails the payout (its amount is brought into the
provider's next payout); a transfer Stripe made pays it, with its ledger journal.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa

from .. import due, money
from ..accounts.models import TenantSettings
from ..db import db
from ..due import Lane, Worked
from ..faults import crash_point
from ..payments.gateway import GatewayMisconfigured
from ..payments.transfers import TransferOutcome, TransferRequest, Transfers
from . import transitions
from .models import Payout

log = logging.getLogger(__name__)

SEND_BATCH = 20
SEND_LEASE = timedelta(seconds=60)
_payouts = Payout.__table__


def retry_delay(attempts: int) -> timedelta:
    """After an unknown outcome: 1 min, 2, 4, … at most 6 hours."""
    return min(timedelta(minutes=2 ** max(attempts - 1, 0)), timedelta(hours=6))


def claim_payouts(now: datetime, limit: int, lane: Lane | None = None) -> list[str]:
    """Claim approved Stripe payouts nobody holds, counting the attempt, and commit."""
    p = _payouts.c
    ready = (sa.select(p.id).where(p.status == "approved", p.method == "stripe",
                                   sa.or_(p.send_after.is_(None), p.send_after < now))
             .order_by(p.approved_at, p.id).limit(limit))
    return due.claim_ready(_payouts, ready, lane, send_after=now + due.lease(SEND_LEASE), requests=p.requests + 1)


def _request_of(payout: Payout) -> TransferRequest:
    return TransferRequest(
        payout_id=payout.id, idempotency_key=payout.idempotency_key,
        amount=money.to_stripe_amount(payout.amount, payout.currency), currency=payout.currency,
        destination=payout.stripe_account_id, transfer_group=payout.run_id,
        source_transaction=payout.source_transaction,
        metadata={"payout": payout.id, "provider": payout.provider_id, "tenant": payout.tenant_id,
                  "mode": "live" if payout.livemode else "test", "payout_date": payout.run.payout_date.isoformat(),
                  "period": payout.run.period_start.isoformat()})


def _send(request: TransferRequest, gateway: Transfers, attempt: int) -> TransferOutcome:
    """No transaction open: look an earlier attempt up, then create the transfer if none."""
    try:
        if attempt > 1:
            found = gateway.find_transfer(request)
            if found.status != "missing":
                return found
        return gateway.create_transfer(request)
    except GatewayMisconfigured as exc:
        log.error("payout %s: the gateway refused our settings: %s", request.payout_id, exc)
        return TransferOutcome("unknown", None, None, str(exc), 0)  # a failures.reason


def settle(payout: Payout, outcome: TransferOutcome, as_of: datetime, real_now: datetime) -> str:
    """Store the outcome, in the caller's transaction. -> what it was."""
    if outcome.status == "paid":
        transitions.mark_paid(payout, as_of, stripe_transfer_id=outcome.transfer_id, send_after=None,
                              failure_code=None, failure_message=None)
    elif outcome.status == "failed":
        transitions.mark_failed(payout, as_of, send_after=None, failure_code=outcome.failure_code,
                                failure_message=(outcome.failure_message or "Stripe refused the transfer.")[:1000])
    else:
        transitions.note(payout.id, send_after=real_now + retry_delay(payout.requests),
                         failure_message=(outcome.failure_message or "")[:1000] or None)
    return outcome.status


def send_batch(adapters, now: datetime, limit: int, lane: Lane | None = None) -> Worked:
    """The queue's batch: claim, send (or find) and settle. `now`: real time (leases); each
    payout is settled as of its tenant's clock."""
    ids = claim_payouts(now, limit, lane)
    if not ids:
        return Worked()
    payouts = db.session.scalars(sa.select(Payout).where(Payout.id.in_(ids)).order_by(Payout.id)).all()
    sends = []
    for payout in payouts:
        settings = db.session.get(TenantSettings, (payout.tenant_id, payout.livemode))
        gateway = adapters.payments.transfers_for(settings)
        sends.append((_request_of(payout), gateway, payout.requests))
    db.session.commit()  # no transaction stays open while Stripe is talked to
    crash_point("payout.send.after_claim")
    outcomes = [_send(request, gateway, attempt) for request, gateway, attempt in sends]
    crash_point("payout.send.after_stripe")
    worked = due.settle_each(payouts, outcomes, adapters,
                             lambda payout, outcome, as_of: settle(payout, outcome, as_of, now))
    crash_point("payout.send.after_commit")
    return worked


def backlog() -> tuple[int, datetime | None]:
    """Approved Stripe payouts not sent yet."""
    return due.waiting(_payouts, _payouts.c.status == "approved", _payouts.c.method == "stripe")
