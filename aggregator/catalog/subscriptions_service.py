"""Subscriptions: a provider subscribes one of its customers to one of its plans, in an
environment; changes its plan or quantity at an instant; ends it at an instant. Each change is
appended to the subscription's history (rated at each close as of the period's end: rating.py).
A change takes effect no earlier than the open period (never in a period that has ended, is
closing or closed), which the period row's share lock holds open until the change commits.
Each use case owns its transaction (docs/plans.md)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..accounts.keys import Principal
from ..accounts.models import Customer, TenantSettings
from ..accounts.service import get_customer, tenant_settings
from ..db import db, locking, new_id, write_lock
from ..errors import Conflict, DomainError, InvalidInput, NotFound
from ..events.service import NewEvent, record_one
from ..ingest.models import Bill
from ..pagination import Page, paginate
from ..periods import calendar as C
from ..periods.service import claim_open_period
from . import rating
from .models import PLATFORM, Plan, Subscription, SubscriptionChange, SubscriptionCharge
from .plans_service import PeriodClosed, environments, get_plan


class QuotaExceeded(Conflict):
    code = "quota_exceeded"


class PaymentMethodRequired(Conflict):
    code = "payment_method_required"


class SubscriptionCanceled(Conflict):
    code = "subscription_canceled"


class ExternalBillingIdTaken(Conflict):
    code = "external_billing_id_taken"


# --- reading -----------------------------------------------------------------------------------

def _scoped(principal: Principal) -> sa.Select:
    query = sa.select(Subscription).where(Subscription.tenant_id == principal.tenant_id,
                                          Subscription.livemode == principal.livemode)
    if principal.role == "provider":  # a provider sees its own subscriptions and nothing else
        query = query.where(Subscription.provider_id == principal.provider_id)
    return query


def get_subscription(principal: Principal, ref: str) -> Subscription:
    """The subscription whose id is `ref`, else (a provider's) the one with that external
    billing id."""
    query = _scoped(principal)
    if principal.role == "provider":
        query = query.where(sa.or_(Subscription.id == ref, Subscription.external_billing_id == ref))
    else:
        query = query.where(Subscription.id == ref)
    found = db.session.scalars(query.order_by((Subscription.id == ref).desc())).first()
    if found is None:
        raise NotFound(f"No subscription {ref!r} in {principal.mode} mode.")
    return found


def list_subscriptions(principal: Principal, limit: int, starting_after: str | None = None,
                       customer: str | None = None, plan: str | None = None) -> Page:
    query = _scoped(principal)
    if customer:
        query = query.where(Subscription.customer_id == get_customer(principal, customer).id)
    if plan:
        query = query.where(Subscription.plan_id == get_plan(principal, plan).id)
    return paginate(query, Subscription.id, limit, starting_after)


def phases_now(subscription: Subscription) -> list[rating.Phase]:
    """Its phases as now recorded (every change, whatever its instant)."""
    changes = [_change(c) for c in subscription.changes]
    return rating.phases(changes, max((c.recorded_at for c in changes), default=subscription.created_at))


def _change(row: SubscriptionChange) -> rating.Change:
    return rating.Change(row.kind, row.at, row.recorded_at, row.plan_id, row.quantity)


# --- writing -----------------------------------------------------------------------------------

def create_subscription(principal: Principal, fields: Mapping[str, Any], now: datetime) -> Subscription:
    """Subscribe a customer of the tenant to one of the provider's plans, from `starts_at`
    (default now; in the past back to the open period's start, never before the customer
    existed; in the future: scheduled)."""
    settings = tenant_settings(principal.tenant_id, principal.livemode)
    open_period = _open_period(settings, now)  # first: the close locks the period row, then customers'
    customer = _locked_customer(principal, fields["customer"])
    plan = _own_plan(principal, fields["plan"])
    environment = fields.get("environment") or _default_environment(plan)
    _check_environment(principal, plan, environment)
    starts_at = fields.get("starts_at") or now
    if starts_at < customer.created_at:
        raise InvalidInput.on("starts_at", f"The customer {customer.external_id!r} was created at "
                                           f"{customer.created_at.isoformat()}: a subscription cannot start "
                                           "before it existed.", "before_customer")
    _check_not_closed("starts_at", starts_at, open_period)
    _check_quotas(plan, customer, now)
    subscription = Subscription(
        id=new_id("sub"), tenant_id=principal.tenant_id, livemode=principal.livemode,
        provider_id=principal.provider_id, customer_id=customer.id, plan_id=plan.id, environment=environment,
        external_billing_id=fields.get("external_billing_id"), quantity=fields.get("quantity", 1),
        starts_at=starts_at, ends_at=None, metadata_=fields.get("metadata") or {}, created_at=now,
        updated_at=now, version=1)
    subscription.plan = plan
    subscription.changes.append(SubscriptionChange(seq=1, kind=rating.START, at=starts_at, recorded_at=now,
                                                   plan_id=plan.id, quantity=subscription.quantity))
    db.session.add(subscription)
    try:
        db.session.flush()
    except sa.exc.IntegrityError:
        db.session.rollback()
        taken = fields.get("external_billing_id")
        raise ExternalBillingIdTaken.on("external_billing_id", f"A subscription with external_billing_id "
                                                               f"{taken!r} already exists for this provider.") from None
    _record(subscription, "subscription.created", now, customer)
    db.session.commit()
    return subscription


def update_subscription(principal: Principal, ref: str, changes: Mapping[str, Any], now: datetime) -> Subscription:
    """Change the plan and/or the quantity from `at` (default now), or the metadata. Refused for
    an ended subscription, and for an instant before the open period or the last change."""
    subscription = _locked(principal, ref, now)
    if subscription.ends_at is not None:
        raise SubscriptionCanceled.on("plan" if "plan" in changes else "quantity",
                                      f"The subscription {subscription.id!r} was ended at "
                                      f"{subscription.ends_at.isoformat()}; it can no longer change.")
    if "metadata" in changes:
        subscription.metadata_ = changes["metadata"] or {}
    plan, quantity = subscription.plan, changes.get("quantity", subscription.quantity)
    if "plan" in changes:
        plan = _own_plan(principal, changes["plan"])
        _check_environment(principal, plan, subscription.environment)
    if plan.id != subscription.plan_id or quantity != subscription.quantity:
        at = _change_instant(subscription, changes.get("at") or now, now)
        if plan.id != subscription.plan_id:
            # the customer's row lock, as creating takes it: two changes at once take turns at a quota
            customer = db.session.scalars(locking(sa.select(Customer).where(
                Customer.id == subscription.customer_id), of=Customer)).one()
            _check_quotas(plan, customer, now)
        subscription.version += 1
        subscription.changes.append(SubscriptionChange(seq=subscription.version, kind=rating.CHANGE, at=at,
                                                       recorded_at=now, plan_id=plan.id, quantity=quantity))
        subscription.plan_id, subscription.quantity = plan.id, quantity
        subscription.plan = plan
    subscription.updated_at = now
    _record(subscription, "subscription.updated", now)
    db.session.commit()
    return subscription


def cancel_subscription(principal: Principal, ref: str, at: datetime | None, now: datetime) -> Subscription:
    """End the subscription at `at` (default now): the instance was deleted. Days after it are
    not billed; a fee billed in advance is credited for them at the next close. Ending an ended
    subscription changes nothing."""
    subscription = _locked(principal, ref, now)
    if subscription.ends_at is not None:
        db.session.rollback()
        return subscription
    # a subscription deleted before it starts ends as it starts (nothing of it is billed)
    ends_at = _change_instant(subscription, max(at or now, subscription.starts_at), now)
    subscription.version += 1
    subscription.changes.append(SubscriptionChange(seq=subscription.version, kind=rating.END, at=ends_at,
                                                   recorded_at=now))
    subscription.ends_at = ends_at
    subscription.updated_at = now
    _record(subscription, "subscription.canceled", now)
    db.session.commit()
    return subscription


# --- checks ------------------------------------------------------------------------------------

def _locked(principal: Principal, ref: str, now: datetime) -> Subscription:
    """The subscription, row-locked until commit (SQLite: the write lock), read afresh. The open
    period's row is share-locked first, in the order the close takes them (the period row, then
    the subscriptions its rated charges reference): the other order deadlocks with a close."""
    write_lock()
    _open_period(tenant_settings(principal.tenant_id, principal.livemode), now)
    found = get_subscription(principal, ref)
    if principal.role != "provider" or found.provider_id != principal.provider_id:
        raise NotFound(f"No subscription {ref!r} of yours in {principal.mode} mode.")
    return db.session.scalars(locking(sa.select(Subscription).where(Subscription.id == found.id), of=Subscription)
                              .execution_options(populate_existing=True)).one()


def _locked_customer(principal: Principal, ref: str) -> Customer:
    """The customer, row-locked until commit: two subscriptions created at once for one customer
    take turns at its quotas."""
    write_lock()
    try:
        customer = get_customer(principal, ref)
    except NotFound as exc:
        raise NotFound.on("customer", str(exc), "unknown_customer") from None
    return db.session.scalars(locking(sa.select(Customer).where(Customer.id == customer.id), of=Customer)).one()


def _own_plan(principal: Principal, ref: str) -> Plan:
    try:
        plan = get_plan(principal, ref)
    except NotFound as exc:
        raise NotFound.on("plan", str(exc), "unknown_plan") from None
    if plan.owner == PLATFORM:
        raise InvalidInput.on("plan", f"{plan.code!r} is a parent plan: subscribe customers to a plan of your own "
                                      "built on it.", "parent_plan")
    return plan


def _default_environment(plan: Plan) -> str:
    return "production" if "production" in plan.environments else plan.environments[0]


def _check_environment(principal: Principal, plan: Plan, environment: str) -> None:
    if environment not in environments(principal.tenant_id, principal.livemode):
        raise InvalidInput.on("environment", f"Unknown environment {environment!r}.", "unknown_environment")
    if environment not in plan.environments:
        raise InvalidInput.on("environment", f"The plan {plan.code!r} may be used in {plan.environments}, "
                                             f"not {environment!r}.", "environment_not_allowed")


def _open_period(settings: TenantSettings, now: datetime) -> C.Period:
    """The open period (share-locked until commit: its close waits for this change)."""
    return claim_open_period(settings.tenant_id, settings.livemode, now, settings.period_anchor_day,
                             settings.timezone)


def _check_not_closed(field: str, at: datetime, open_period: C.Period) -> None:
    if at < open_period.start_at:
        raise PeriodClosed.on(field, f"{at.isoformat()} is in a period that has ended or is being closed: "
                                     f"changes take effect from {open_period.start_at.isoformat()} on.")


def _change_instant(subscription: Subscription, at: datetime, now: datetime) -> datetime:
    settings = tenant_settings(subscription.tenant_id, subscription.livemode)
    _check_not_closed("at", at, _open_period(settings, now))
    last = max(c.at for c in subscription.changes)
    if at < last:
        raise InvalidInput.on("at", f"The subscription's last change takes effect at {last.isoformat()}: a "
                                    "change cannot take effect before it.", "before_last_change")
    return at


def refusals(plan: Plan, customer: Customer, now: datetime) -> list[DomainError]:
    """Why `customer` may not start `plan` now (nothing: it may): its quotas."""
    out: list[DomainError] = []
    if plan.requires_payment_method and not customer.stripe_payment_method:
        out.append(PaymentMethodRequired.on("customer", f"The plan {plan.code!r} requires a payment method, and "
                                                        f"customer {customer.external_id!r} has none."))
    if plan.max_subscriptions_per_customer is not None:
        count = db.session.scalar(sa.select(sa.func.count()).select_from(Subscription).where(
            Subscription.customer_id == customer.id, Subscription.plan_id == plan.id,
            sa.or_(Subscription.ends_at.is_(None), Subscription.ends_at > now)))
        if count >= plan.max_subscriptions_per_customer:
            out.append(QuotaExceeded.on("plan", f"The plan {plan.code!r} allows "
                                                f"{plan.max_subscriptions_per_customer} subscription(s) per "
                                                f"customer (max_subscriptions_per_customer); customer "
                                                f"{customer.external_id!r} has {count}."))
    return out


def _check_quotas(plan: Plan, customer: Customer, now: datetime) -> None:
    refused = refusals(plan, customer, now)
    if refused:
        raise refused[0]


@dataclass(frozen=True)
class Entitlement:
    plan: Plan
    allowed: bool
    reasons: list[dict[str, str]]


def entitlements(principal: Principal, customer_ref: str, now: datetime) -> list[Entitlement]:
    """Which of the provider's plans the customer may start now, and why not."""
    customer = get_customer(principal, customer_ref)
    plans = db.session.scalars(sa.select(Plan).where(
        Plan.tenant_id == principal.tenant_id, Plan.livemode == principal.livemode,
        Plan.owner == (principal.provider_id or PLATFORM)).order_by(Plan.code)).all()
    out = []
    for plan in plans:
        refused = refusals(plan, customer, now)
        out.append(Entitlement(plan, not refused, [{"code": r.code or "", "message": str(r)} for r in refused]))
    return out


# --- statements ----------------------------------------------------------------------------------

@dataclass
class Statement:
    """What the subscription was billed at one period's close."""

    period: str
    currency: str
    amount: int
    charges: list[dict[str, Any]]


def statements(principal: Principal, ref: str) -> list[Statement]:
    """Per billing period, newest first: the charges rated from the subscription and their sum."""
    subscription = get_subscription(principal, ref)
    c, b = SubscriptionCharge.__table__.c, Bill.__table__.c
    rows = db.session.execute(
        sa.select(c.period_start, c.bill_id, c.fee_id, c.plan_id, c.covered_start, c.covered_end, c.kind, c.days,
                  c.period_days, c.quantity, c.amount, c.platform_fee, b.currency, b.description, b.status)
        .join_from(SubscriptionCharge.__table__, Bill.__table__, b.id == c.bill_id)
        .where(c.subscription_id == subscription.id)
        .order_by(c.period_start.desc(), c.covered_start, c.fee_id)).all()
    out: list[Statement] = []
    for row in rows:
        if not out or out[-1].period != row.period_start.isoformat():
            out.append(Statement(row.period_start.isoformat(), row.currency, 0, []))
        if row.status != "cancelled":
            out[-1].amount += row.amount
        out[-1].charges.append({
            "bill": row.bill_id, "description": row.description, "kind": row.kind,
            "covered": {"start": row.covered_start, "end": row.covered_end}, "days": row.days,
            "period_days": row.period_days, "quantity": row.quantity, "amount": row.amount,
            "platform_fee": row.platform_fee, "cancelled": row.status == "cancelled"})
    return out


# --- events --------------------------------------------------------------------------------------

def _record(subscription: Subscription, kind: str, now: datetime, customer: Customer | None = None) -> None:
    db.session.flush()
    customer = customer or db.session.get(Customer, subscription.customer_id)
    record_one(subscription.tenant_id, subscription.livemode, now, NewEvent(
        kind, subscription.id, {"object": event_object(subscription, customer.external_id, now)},
        provider_id=subscription.provider_id))


def event_object(subscription: Subscription, customer_external_id: str, now: datetime) -> dict[str, Any]:
    return {"object": "subscription", "id": subscription.id, "provider": subscription.provider_id,
            "customer": customer_external_id, "plan": subscription.plan.code, "environment": subscription.environment,
            "external_billing_id": subscription.external_billing_id, "quantity": subscription.quantity,
            "status": subscription.status(now), "starts_at": subscription.starts_at.isoformat(),
            "ends_at": subscription.ends_at.isoformat() if subscription.ends_at else None,
            "livemode": subscription.livemode, "metadata": subscription.metadata_ or {}}
