"""Bill intake use cases. Each owns its transaction."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

import orjson
import sqlalchemy as sa

from ..accounts.models import ApiKey, Customer, TenantSettings, Trial, TrialChange
from ..auth import Principal, verified
from ..db import db, dialect_insert, dialect_name, in_ids, is_postgres, locking, new_id, run, run_alone, write_lock
from ..errors import Conflict, DomainError, NotFound
from ..faults import crash_point
from ..pagination import Page, paginate
from ..periods import calendar as P
from ..periods.models import PeriodRecord
from ..periods.service import claim_open_period, period_status_locked
from . import transitions
from .bills import BillRequest, BillView
from .models import BILL_STATES, Bill


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class BillAlreadyInvoiced(Conflict):
    code = "bill_already_invoiced"


class PeriodClosed(Conflict):
    code = "period_closed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one submitted bill: created, replayed (already stored), or refused."""

    bill: BillView | None = None
    replayed: bool = False
    error: DomainError | None = None


def view(bill: Bill) -> BillView:
    return BillView(
        id=bill.id, status=bill.api_status, customer=bill.customer.external_id,
        provider=bill.provider_id, amount=bill.amount, currency=bill.currency,
        revenue_share=bill.revenue_share, description=bill.description,
        service_period=bill.service_period, metadata=bill.metadata_ or {},
        received_at=bill.received_at, livemode=bill.livemode, period=bill.period_start, source=bill.source,
        platform_fee=bill.platform_fee,
    )


def record_bill(principal: Principal, request: BillRequest, now: datetime) -> Outcome:
    """Store one bill once. The usual case, a new bill for a known customer while the period of
    `now` is open, is one statement, on a connection of its own; anything else (a replay, a
    conflict, a refusal, the first bill of a period, a period closing) is settled by record_bills.

    `principal` may be recalled from memory (auth.recall): the statement itself checks that its
    key is still valid and its tenant's calendar unchanged, and record_bills gets it verified."""
    period_start = P.period_containing(now, principal.period_anchor_day, principal.timezone).start
    row = _row(principal, request, None, period_start, now)
    if run_alone(_insert_if_open(dialect_name(), request.revenue_share),
                 {**row, "customer": request.customer, "key_id": principal.key_id,
                  "period_anchor_day": principal.period_anchor_day, "timezone": principal.timezone}) is None:
        return record_bills(verified(principal), [request], now)[0]
    crash_point("ingest.record.after_commit")
    return Outcome(bill=_view_of_row(row, request))


@functools.cache
def _insert_if_open(dialect: str, revenue_share: bool) -> sa.Insert:
    """INSERT the bill (parameters as _row makes them, plus the customer's external_id as
    `customer`, the principal's `key_id`, `period_anchor_day` and `timezone`) if the key is not
    revoked, is this provider's in this tenant and mode, and the tenant's calendar is the one
    given, its customer exists in the tenant and mode, is not in this provider's free trial (for a
    revenue-share bill), and its period row is open; nothing otherwise, nor when the idempotency
    key is already stored. On PostgreSQL the period row is share-locked until commit,
    as claim_open_period does, so the close cannot mark it closing while the bill goes in; SQLite
    takes its database write lock for the INSERT before it reads the period."""
    bills, customers, periods = Bill.__table__, Customer.__table__, PeriodRecord.__table__
    names = [c.name for c in bills.columns if c.name not in ("customer_id", "cancelled_at", "source", "platform_fee")]
    values = [customers.c.id if name == "customer_id" else sa.bindparam(name, type_=bills.c[name].type)
              for name in ["customer_id", *names]]
    query = sa.select(*values).select_from(customers.join(periods, sa.and_(
        periods.c.tenant_id == customers.c.tenant_id, periods.c.livemode == customers.c.livemode))).where(
        customers.c.tenant_id == sa.bindparam("tenant_id"), customers.c.livemode == sa.bindparam("livemode"),
        customers.c.external_id == sa.bindparam("customer"),
        periods.c.start == sa.bindparam("period_start"), periods.c.status == "open")
    keys, settings = ApiKey.__table__, TenantSettings.__table__
    query = query.where(sa.exists().where(
        keys.c.id == sa.bindparam("key_id"), keys.c.revoked_at.is_(None),
        keys.c.tenant_id == sa.bindparam("tenant_id"), keys.c.livemode == sa.bindparam("livemode"),
        keys.c.provider_id == sa.bindparam("provider_id"), settings.c.tenant_id == keys.c.tenant_id,
        settings.c.livemode == keys.c.livemode,
        settings.c.period_anchor_day == sa.bindparam("period_anchor_day"),
        settings.c.timezone == sa.bindparam("timezone")))
    if revenue_share:
        trials = Trial.__table__
        query = query.where(~sa.exists().where(
            trials.c.customer_id == customers.c.id, trials.c.provider_id == sa.bindparam("provider_id"),
            trials.c.ends_at > sa.bindparam("received_at")))
    query = locking(query, dialect, read=True, of=periods)
    return (dialect_insert(bills, dialect).from_select(["customer_id", *names], query)
            .on_conflict_do_nothing(index_elements=["provider_id", "idempotency_key"])
            .returning(bills.c.id))


def record_bills(principal: Principal, requests: Sequence[BillRequest], now: datetime) -> list[Outcome]:
    """Store each bill once. A request whose idempotency key is already stored for this
    provider is a replay when its content is the same and a conflict when it is not."""
    outcomes: list[Outcome | None] = [None] * len(requests)
    period = claim_open_period(principal.tenant_id, principal.livemode, now,
                               principal.period_anchor_day, principal.timezone)
    customers, trial_ends = _customers_and_trials(principal, {r.customer for r in requests},
                                                  any(r.revenue_share for r in requests), now)

    first_by_key: dict[str, int] = {}
    rows: list[dict] = []
    for i, request in enumerate(requests):
        customer_id = customers.get(request.customer)
        if customer_id is None:
            # a reference to a customer that does not exist (yet): not found, as an unknown id in a URL
            outcomes[i] = Outcome(error=_on(NotFound, "customer", f"No customer with external_id {request.customer!r}.",
                                            "unknown_customer"))
        elif request.revenue_share and customer_id in trial_ends:
            # valid input that the customer's state refuses for now: a conflict
            outcomes[i] = Outcome(error=_on(
                Conflict, "revenue_share",
                f"The customer is in a free trial of this app until "
                f"{trial_ends[customer_id].isoformat()}; subscription bills are refused until then.",
                "in_free_trial"))
        elif request.idempotency_key in first_by_key:
            continue  # settled below against the first request with this key
        else:
            first_by_key[request.idempotency_key] = i
            rows.append(_row(principal, request, customer_id, period.start, now))

    created: set[str] = set()
    if rows:
        rows.sort(key=lambda row: row["idempotency_key"])  # one lock order across workers
        created = _insert_new(rows)

    by_key = {row["idempotency_key"]: row for row in rows}
    # A key already stored decides, even for a request refused above: a retry of a stored bill
    # is a replay though its customer has since entered a free trial (as with Stripe's keys).
    refused = [r.idempotency_key for r, o in zip(requests, outcomes) if o is not None]
    stored = _stored_bills(principal, [k for k in by_key if k not in created] + refused)
    for i, request in enumerate(requests):
        key = request.idempotency_key
        existing = stored.get(key)
        if outcomes[i] is not None:
            # In order: a key that only a later item of this batch stored was not taken yet.
            if existing is not None and not (key in created and first_by_key[key] > i):
                outcomes[i] = _replay_or_conflict(existing.fingerprint, view(existing), request)
            continue
        if key in created and first_by_key[key] == i:
            outcomes[i] = Outcome(bill=_view_of_row(by_key[key], request))
        elif existing is None:  # a later duplicate of a key first created in this batch
            first = requests[first_by_key[key]]
            outcomes[i] = _replay_or_conflict(by_key[key]["fingerprint"], _view_of_row(by_key[key], first),
                                              request)
        else:
            outcomes[i] = _replay_or_conflict(existing.fingerprint, view(existing), request)
    crash_point("ingest.record.before_commit")
    db.session.commit()
    crash_point("ingest.record.after_commit")
    return outcomes  # type: ignore[return-value]


def _insert_new(rows: list[dict]) -> set[str]:
    """INSERT the rows (as _row makes them, of one tenant, mode, provider, time and period) whose
    idempotency key is not stored yet, in the given order; -> the keys inserted. PostgreSQL gets
    one short statement with the bills as one JSON parameter, an array of arrays (as a
    17,000-parameter INSERT, or as 11 arrays, 1,000 bills cost more to convert in psycopg than
    to store). SQLite gets the same INSERT, one row at a time."""
    if not is_postgres():
        table = Bill.__table__
        stmt = (dialect_insert(table)
                .on_conflict_do_nothing(index_elements=["provider_id", "idempotency_key"])
                .returning(table.c.idempotency_key))
        return set(run(stmt, rows).scalars().all())
    first = rows[0]
    params = {name: first[name] for name in _SAME_FOR_ALL}
    params["bills"] = orjson.dumps([
        [row["id"], row["customer_id"], row["idempotency_key"], row["fingerprint"].hex(), row["amount"],
         row["currency"], row["revenue_share"], row["description"],
         row["service_period_start"] and row["service_period_start"].isoformat(),
         row["service_period_end"] and row["service_period_end"].isoformat(),
         json.dumps(row["metadata"]) if row["metadata"] else "{}"]  # as the JSON column type stores it
        for row in rows]).decode()
    return set(run(_INSERT_JSON, params).scalars().all())


_SAME_FOR_ALL = ("tenant_id", "livemode", "provider_id", "status", "received_at", "period_start")
_INSERT_JSON = sa.text(
    "INSERT INTO bills (tenant_id, livemode, provider_id, status, received_at, period_start, id, customer_id, "
    "idempotency_key, fingerprint, amount, currency, revenue_share, description, service_period_start, "
    "service_period_end, metadata) "
    "SELECT CAST(:tenant_id AS varchar), CAST(:livemode AS boolean), CAST(:provider_id AS varchar), "
    "CAST(:status AS varchar), CAST(:received_at AS timestamptz), CAST(:period_start AS date), "
    "b->>0, b->>1, b->>2, decode(b->>3, 'hex'), CAST(b->>4 AS bigint), b->>5, CAST(b->>6 AS boolean), b->>7, "
    "CAST(b->>8 AS date), CAST(b->>9 AS date), CAST(b->>10 AS json) "
    "FROM jsonb_array_elements(CAST(:bills AS jsonb)) AS b "
    "ON CONFLICT (provider_id, idempotency_key) DO NOTHING RETURNING idempotency_key")


def _replay_or_conflict(stored_fingerprint: bytes, stored: BillView, request: BillRequest) -> Outcome:
    if stored_fingerprint == request.fingerprint():
        return Outcome(bill=stored, replayed=True)
    return Outcome(error=IdempotencyKeyReused(
        f"Idempotency key {request.idempotency_key!r} was already used for a different bill."))


def _row(principal: Principal, request: BillRequest, customer_id: str, period_start: date,
         now: datetime) -> dict:
    start, end = request.service_period or (None, None)
    return {
        "id": new_id("bill"), "tenant_id": principal.tenant_id, "livemode": principal.livemode,
        "provider_id": principal.provider_id, "customer_id": customer_id,
        "idempotency_key": request.idempotency_key, "fingerprint": request.fingerprint(),
        "amount": request.amount, "currency": request.currency,
        "revenue_share": request.revenue_share, "description": request.description,
        "service_period_start": start, "service_period_end": end,
        "metadata": request.metadata, "status": BILL_STATES.initial, "received_at": now,
        "period_start": period_start,
    }


def _view_of_row(row: dict, request: BillRequest) -> BillView:
    start, end = row["service_period_start"], row["service_period_end"]
    return BillView(
        id=row["id"], status=row["status"], customer=request.customer, provider=row["provider_id"],
        amount=row["amount"], currency=row["currency"], revenue_share=row["revenue_share"],
        description=row["description"], service_period={"start": start, "end": end} if start else None,
        metadata=row["metadata"], received_at=row["received_at"], livemode=row["livemode"],
        period=row["period_start"],
    )


def _stored_bills(principal: Principal, keys: list[str]) -> dict[str, Bill]:
    if not keys:
        return {}
    bills = db.session.scalars(sa.select(Bill).where(
        Bill.provider_id == principal.provider_id, Bill.idempotency_key.in_(keys))).all()
    return {bill.idempotency_key: bill for bill in bills}


def _customers_and_trials(principal: Principal, external_ids: set[str], with_trials: bool,
                          now: datetime) -> tuple[dict[str, str], dict[str, datetime]]:
    """external_id -> customer id for this tenant and mode, and customer id -> end of this
    provider's free trial, for trials still running at `now` (one query)."""
    c, t = Customer.__table__.c, Trial.__table__.c
    if with_trials:
        query = (sa.select(c.external_id, c.id, t.ends_at)
                 .select_from(Customer.__table__.outerjoin(Trial.__table__, sa.and_(
                     t.customer_id == c.id, t.provider_id == principal.provider_id, t.ends_at > now))))
    else:
        query = sa.select(c.external_id, c.id, sa.null())
    rows = run(query.where(c.tenant_id == principal.tenant_id, c.livemode == principal.livemode,
                           in_ids(c.external_id, external_ids))).all()  # one array parameter, not 1,000
    return {r[0]: r[1] for r in rows}, {r[1]: r[2] for r in rows if r[2] is not None}


# --- reading and cancelling --------------------------------------------------------------

def _scoped_bills(principal: Principal) -> sa.Select:
    query = sa.select(Bill).where(Bill.tenant_id == principal.tenant_id,
                                  Bill.livemode == principal.livemode)
    if principal.role == "provider":  # a provider sees its own bills and nothing else
        query = query.where(Bill.provider_id == principal.provider_id)
    return query


def get_bill(principal: Principal, bill_id: str) -> BillView:
    bill = db.session.scalars(_scoped_bills(principal).where(Bill.id == bill_id)).first()
    if bill is None:
        raise NotFound(f"No such bill: {bill_id!r}.")
    return view(bill)


def list_bills(principal: Principal, limit: int, starting_after: str | None = None,
               status: str | None = None, customer: str | None = None,
               provider: str | None = None) -> Page:
    query = _scoped_bills(principal)
    if status == "cancelled":
        query = query.where(Bill.status == "cancelled")
    elif status:  # pending or invoiced: derived from the invoice of the bill's customer and period
        query = query.where(Bill.status == "pending", Bill.invoiced if status == "invoiced" else ~Bill.invoiced)
    if customer:
        query = query.join(Bill.customer).where(Customer.external_id == customer)
    if provider:
        query = query.where(Bill.provider_id == provider)
    page = paginate(query, Bill.id, limit, starting_after)
    return Page([view(b) for b in page.data], page.has_more)


def cancel_bill(principal: Principal, bill_id: str, now: datetime) -> BillView:
    """pending -> cancelled; cancelling a cancelled bill is a no-op. Refused (409) once the
    bill's period is closing or closed: an invoice's bills never change after the close has
    started. The close marks the period closing under the period row lock taken here."""
    mine = _scoped_bills(principal).where(Bill.id == bill_id, Bill.provider_id == principal.provider_id)
    while True:
        write_lock()
        bill = db.session.scalars(mine.execution_options(populate_existing=True)).first()
        if bill is None:
            raise NotFound(f"No such bill: {bill_id!r}.")
        if bill.status == "cancelled":
            shown = view(bill)
            db.session.rollback()
            return shown
        period = period_status_locked(bill.tenant_id, bill.livemode, bill.period_start)
        if period not in ("open", None):  # None: no period row yet, so no close has started
            refusal = (BillAlreadyInvoiced(f"Bill {bill_id!r} has been invoiced and can no longer be cancelled.")
                       if bill.invoiced else
                       PeriodClosed(f"Bill {bill_id!r} belongs to the period {bill.period_start.isoformat()}, "
                                    "which is being closed; it can no longer be cancelled."))
            db.session.rollback()
            raise refusal
        updated = transitions.cancel(bill, now)
        crash_point("ingest.cancel.before_commit")
        db.session.commit()
        crash_point("ingest.cancel.after_commit")
        if updated:
            return get_bill(principal, bill_id)
        # changed meanwhile (a concurrent cancel won): look again


# --- free trials -------------------------------------------------------------------------

def _customer_by_external_id(principal: Principal, external_id: str) -> Customer:
    customer = db.session.scalars(sa.select(Customer).where(
        Customer.tenant_id == principal.tenant_id, Customer.livemode == principal.livemode,
        Customer.external_id == external_id)).first()
    if customer is None:
        raise NotFound(f"No customer with external_id {external_id!r}.")
    return customer


def set_trial(principal: Principal, external_id: str, ends_at: datetime, now: datetime) -> Trial:
    """Declare (or move) the end of this provider's free trial for the customer. The open period's
    row is share-locked until commit (as intake does): a close cannot start meanwhile, so a trial
    recorded before a period's end is one that period's close sees (catalog rates trials as
    recorded by the period's end)."""
    customer = _customer_by_external_id(principal, external_id)
    claim_open_period(principal.tenant_id, principal.livemode, now, principal.period_anchor_day, principal.timezone)
    db.session.execute(  # an upsert: two concurrent declarations cannot collide
        dialect_insert(Trial.__table__)
        .values(provider_id=principal.provider_id, customer_id=customer.id, ends_at=ends_at, updated_at=now)
        .on_conflict_do_update(index_elements=["provider_id", "customer_id"],
                               set_={"ends_at": ends_at, "updated_at": now}))
    db.session.add(TrialChange(provider_id=principal.provider_id, customer_id=customer.id, ends_at=ends_at,
                               recorded_at=now))
    db.session.commit()
    return db.session.get(Trial, (principal.provider_id, customer.id), populate_existing=True)


def get_trial(principal: Principal, external_id: str) -> Trial:
    customer = _customer_by_external_id(principal, external_id)
    trial = db.session.get(Trial, (principal.provider_id, customer.id))
    if trial is None:
        raise NotFound(f"No free trial is declared for customer {external_id!r}.")
    return trial


def end_trial(principal: Principal, external_id: str, now: datetime) -> Trial:
    """End the trial now: subscription bills are accepted from this moment on (under the open
    period's share lock, as set_trial)."""
    claim_open_period(principal.tenant_id, principal.livemode, now, principal.period_anchor_day, principal.timezone)
    trial = db.session.get(Trial, (principal.provider_id, _customer_by_external_id(principal, external_id).id),
                           populate_existing=True, with_for_update=True if is_postgres() else None)
    if trial is None:
        raise NotFound(f"No free trial is declared for customer {external_id!r}.")
    trial.ends_at = min(trial.ends_at, now)
    trial.updated_at = now
    db.session.add(TrialChange(provider_id=trial.provider_id, customer_id=trial.customer_id, ends_at=trial.ends_at,
                               recorded_at=now))
    db.session.commit()
    return trial


def _on(category: type[DomainError], field: str, message: str, code: str) -> DomainError:
    return category(message, code=code, fields={field: [message]})
