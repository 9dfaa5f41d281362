"""Plans: a tenant's parent plans (its price list, granted to providers) and each provider's own
plans, built on a parent plan it was granted or standing alone; their versioned prices; the
tenant's environments. Each use case owns its transaction (docs/plans.md)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from .. import money
from ..accounts.keys import Principal
from ..accounts.models import Provider
from ..accounts.service import tenant_settings
from ..db import db, new_id
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..events.service import NewEvent, record_one
from ..pagination import Page, paginate
from ..periods import calendar as C
from ..periods.service import claim_open_period
from . import rating
from .models import (
    ALL_PROVIDERS,
    DEFAULT_ENVIRONMENTS,
    PLATFORM,
    Environment,
    FeePrice,
    Plan,
    PlanFee,
    PlanGrant,
    Subscription,
)
from .usage_prices import add_components, component_document


class PlanCodeTaken(Conflict):
    code = "plan_code_taken"


class PeriodClosed(Conflict):
    code = "period_closed"


class EnvironmentInUse(Conflict):
    code = "environment_in_use"



# --- environments ------------------------------------------------------------------------------

def environments(tenant_id: str, livemode: bool) -> list[str]:
    """The tenant's environments in this mode (the defaults until it names its own)."""
    e = Environment.__table__.c
    named = list(db.session.scalars(sa.select(e.name).where(e.tenant_id == tenant_id, e.livemode == livemode)
                                    .order_by(e.created_at, e.name)))
    return named or list(DEFAULT_ENVIRONMENTS)


def add_environment(principal: Principal, name: str, now: datetime) -> list[str]:
    """Name another environment (the first one named keeps the defaults beside it)."""
    current = environments(principal.tenant_id, principal.livemode)
    if name in current:
        raise Conflict.on("name", f"The environment {name!r} already exists.", "environment_exists")
    names = current + [name] if _named(principal) == [] else [name]
    for each in names:
        db.session.add(Environment(tenant_id=principal.tenant_id, livemode=principal.livemode, name=each,
                                   created_at=now))
    db.session.commit()
    return environments(principal.tenant_id, principal.livemode)


def remove_environment(principal: Principal, name: str, now: datetime) -> list[str]:
    """Remove an environment no plan or subscription uses."""
    current = environments(principal.tenant_id, principal.livemode)
    if name not in current:
        raise NotFound(f"No environment {name!r}.")
    used = db.session.scalars(sa.select(Subscription.id).where(
        Subscription.tenant_id == principal.tenant_id, Subscription.livemode == principal.livemode,
        Subscription.environment == name).limit(1)).first()
    plans = db.session.scalars(sa.select(Plan).where(Plan.tenant_id == principal.tenant_id,
                                                     Plan.livemode == principal.livemode)).all()
    if used or any(name in plan.environments for plan in plans):
        raise EnvironmentInUse(f"The environment {name!r} is used by a plan or a subscription.")
    if not _named(principal):
        for each in current:
            db.session.add(Environment(tenant_id=principal.tenant_id, livemode=principal.livemode, name=each,
                                       created_at=now))
        db.session.flush()
    db.session.execute(sa.delete(Environment.__table__).where(
        Environment.tenant_id == principal.tenant_id, Environment.livemode == principal.livemode,
        Environment.name == name))
    db.session.commit()
    return environments(principal.tenant_id, principal.livemode)


def _named(principal: Principal) -> list[str]:
    e = Environment.__table__.c
    return list(db.session.scalars(sa.select(e.name).where(e.tenant_id == principal.tenant_id,
                                                           e.livemode == principal.livemode)))


# --- reading -----------------------------------------------------------------------------------

def _visible(principal: Principal) -> sa.Select:
    """Plans the caller may read: an admin every plan of its tenant and mode; a provider its own
    and the parent plans granted to it."""
    query = sa.select(Plan).where(Plan.tenant_id == principal.tenant_id, Plan.livemode == principal.livemode)
    if principal.role == "provider":
        granted = sa.select(PlanGrant.plan_id).where(PlanGrant.grantee.in_([principal.provider_id, ALL_PROVIDERS]))
        query = query.where(sa.or_(Plan.owner == principal.provider_id, Plan.id.in_(granted)))
    return query


def list_plans(principal: Principal, limit: int, starting_after: str | None = None,
               owner: str | None = None) -> Page:
    query = _visible(principal)
    if owner:
        query = query.where(Plan.owner == owner)
    return paginate(query, Plan.id, limit, starting_after)


def get_plan(principal: Principal, code: str) -> Plan:
    """The plan whose id is `code`, else the caller's own plan with that code, else (a provider)
    the parent plan granted to it with that code."""
    mine = principal.provider_id if principal.role == "provider" else PLATFORM
    found = db.session.scalars(_visible(principal).where(sa.or_(Plan.id == code, Plan.code == code))
                               .order_by((Plan.id == code).desc(), (Plan.owner == mine).desc())).first()
    if found is None:
        raise NotFound(f"No plan {code!r} in {principal.mode} mode.")
    return found


def _own_plan(principal: Principal, code: str) -> Plan:
    plan = get_plan(principal, code)
    if plan.owner != (principal.provider_id if principal.role == "provider" else PLATFORM):
        raise NotFound(f"No plan {code!r} of yours in {principal.mode} mode (a parent plan is read-only).")
    return plan


def grants_of(plan: Plan) -> list[str]:
    return sorted(db.session.scalars(sa.select(PlanGrant.grantee).where(PlanGrant.plan_id == plan.id)))


@dataclass(frozen=True)
class FeeView:
    """A fee as the API shows it: its current price and, for a fee reselling a parent fee, the
    parent's price and the provider's profit (price − parent price), as platformOS's form does."""

    name: str
    timing: str
    revenue_share: bool
    price: int
    parent_fee: str | None
    parent_price: int | None
    profit: int | None
    prices: list[dict[str, Any]]
    usage: list[dict[str, Any]]


def fee_views(plan: Plan, now: datetime) -> list[FeeView]:
    settings = tenant_settings(plan.tenant_id, plan.livemode)
    current = C.period_containing(now, settings.period_anchor_day, settings.timezone).start
    parents = {fee.id: fee for fee in (plan.parent.fees if plan.parent else ())}
    views = []
    for fee in plan.fees:
        price = _price(fee, current, now)
        parent = parents.get(fee.parent_fee_id) if fee.parent_fee_id else None
        parent_price = _price(parent, current, now) if parent else None
        views.append(FeeView(fee.name, fee.timing, fee.revenue_share, price, parent.name if parent else None,
                             parent_price, price - parent_price if parent_price is not None else None,
                             [{"effective_from": None if p.effective_from == rating.ALWAYS else p.effective_from,
                               "amount": p.amount, "recorded_at": p.recorded_at} for p in fee.prices],
                             [component_document(c, plan.currency) for c in fee.components]))
    return views


def _price(fee: PlanFee, period_start: date, now: datetime) -> int:
    return rating.price_of([rating.Price(p.effective_from, p.recorded_at, p.amount) for p in fee.prices],
                           period_start, now) or 0


# --- writing -----------------------------------------------------------------------------------

def create_plan(principal: Principal, fields: Mapping[str, Any], now: datetime) -> Plan:
    """A parent plan (admin key) or a provider's plan (its key), with its fees' first prices."""
    provider_id = principal.provider_id if principal.role == "provider" else None
    owner = provider_id or PLATFORM
    parent = None
    if fields.get("parent_plan"):
        if provider_id is None:
            raise Forbidden.on("parent_plan", "A parent plan is not built on another plan.", "parent_plan_of_parent")
        parent = _granted_parent(principal, fields["parent_plan"])
        if parent.currency != fields["currency"]:
            raise Conflict.on("currency", f"The parent plan {parent.code!r} is priced in {parent.currency}: "
                                          "a plan built on it must be too.", "currency_mismatch")
    envs = _check_environments(principal, fields.get("environments"), parent)
    plan = Plan(id=new_id("plan"), tenant_id=principal.tenant_id, livemode=principal.livemode, owner=owner,
                provider_id=provider_id, code=fields["code"], name=fields["name"],
                description=fields.get("description", ""), currency=fields["currency"],
                parent_plan_id=parent.id if parent else None, environments=envs,
                unbilled=fields.get("unbilled", False),
                max_subscriptions_per_customer=fields.get("max_subscriptions_per_customer"),
                requires_payment_method=fields.get("requires_payment_method", False),
                metadata_=fields.get("metadata") or {}, created_at=now, updated_at=now)
    plan.parent = parent
    db.session.add(plan)
    parent_fees = {fee.name: fee for fee in parent.fees} if parent else {}
    for position, fee in enumerate(fields["fees"]):
        parent_fee = None
        if parent is not None:
            parent_fee = parent_fees.get(fee.get("parent_fee") or "")
            if parent_fee is None:
                refusal = NotFound if fee.get("parent_fee") else InvalidInput
                raise refusal.on(f"fees.{position}.parent_fee",
                                 f"Each fee of a plan built on {parent.code!r} names the parent fee it resells, one of "
                                 f"{sorted(parent_fees)}.")
        elif fee.get("parent_fee"):
            raise InvalidInput.on(f"fees.{position}.parent_fee", "Only a plan built on a parent plan resells "
                                                                    "parent fees.")
        row = PlanFee(id=new_id("fee"), position=position, name=fee["name"],
                      timing=fee.get("timing", rating.IN_ADVANCE), revenue_share=fee.get("revenue_share", True),
                      parent_fee_id=parent_fee.id if parent_fee else None)
        row.prices.append(FeePrice(effective_from=rating.ALWAYS, recorded_at=now, amount=fee["price"]))
        add_components(row, fee.get("usage") or (), principal.tenant_id, principal.livemode, fields["currency"],
                       parent_fee, f"fees.{position}")
        plan.fees.append(row)
    try:  # the code's uniqueness, before anything else flushes the plan (the grants' queries, the event)
        db.session.flush()
    except sa.exc.IntegrityError:
        db.session.rollback()
        raise PlanCodeTaken.on("code", f"A plan with code {fields['code']!r} already exists.") from None
    if provider_id is None:
        _set_grants(plan, fields.get("granted_to") or [], now)
    elif fields.get("granted_to"):
        raise Forbidden.on("granted_to", "Only a parent plan (an admin's) is granted to providers.",
                           "parent_plans_only")
    _record(plan, "plan.created", now)
    db.session.commit()
    return plan


def update_plan(principal: Principal, code: str, changes: Mapping[str, Any], now: datetime) -> Plan:
    """Change what does not reprice a period: name, description, environments, quotas, grants,
    metadata. Prices change by a new version (`add_version`); whether a plan is billed at all
    (`unbilled`) is fixed when it is created, like its fees: rating as of a period's end must not
    read a flag changed since (move subscriptions to a billed plan by a plan change instead)."""
    plan = _own_plan(principal, code)
    if "environments" in changes:
        plan.environments = _check_environments(principal, changes["environments"], plan.parent)
    for name in ("name", "description", "max_subscriptions_per_customer", "requires_payment_method"):
        if name in changes:
            setattr(plan, name, changes[name])
    if "metadata" in changes:
        plan.metadata_ = changes["metadata"] or {}
    if "granted_to" in changes:
        if plan.owner != PLATFORM:
            raise Forbidden.on("granted_to", "Only a parent plan (an admin's) is granted to providers.",
                               "parent_plans_only")
        _set_grants(plan, changes["granted_to"] or [], now)
    plan.updated_at = now
    _record(plan, "plan.updated", now)
    db.session.commit()
    return plan


def add_version(principal: Principal, code: str, effective_from: date | None, prices: Mapping[str, str],
                now: datetime) -> Plan:
    """New prices for some of the plan's fees from the period starting `effective_from` on
    (default: the open period). Refused for a period already closing or closed: a price change
    never rewrites what has been invoiced."""
    plan = _own_plan(principal, code)
    settings = tenant_settings(plan.tenant_id, plan.livemode)
    open_period = claim_open_period(plan.tenant_id, plan.livemode, now, settings.period_anchor_day,
                                    settings.timezone)
    start = effective_from or open_period.start
    if start.day != settings.period_anchor_day:
        raise Conflict.on("effective_from", f"{start.isoformat()} is not a period's start (the tenant's periods "
                                            f"start on day {settings.period_anchor_day}).", "not_a_period_start")
    if start < open_period.start:
        raise PeriodClosed.on("effective_from", f"The period {start.isoformat()} has ended or is being closed: "
                                                f"prices can change from {open_period.start.isoformat()} on.")
    by_name = {fee.name: fee for fee in plan.fees}
    unknown = sorted(set(prices) - set(by_name))
    if unknown:  # a fee the plan does not have (409: the plan exists, 404 would say it does not)
        raise Conflict.on("prices", f"Give new prices by fee name, among {sorted(by_name)}; unknown: {unknown}.",
                          "unknown_fee")
    if not prices:
        raise InvalidInput.on("prices", f"Give new prices by fee name, among {sorted(by_name)}.")
    for name, text in prices.items():
        try:
            amount = money.parse_amount(text, plan.currency)
        except money.MoneyError as exc:
            raise InvalidInput.on(f"prices.{name}", str(exc)) from None
        if amount < 0:
            raise InvalidInput.on(f"prices.{name}", "A price is not negative.")
        same = next((p for p in by_name[name].prices if p.effective_from == start and p.recorded_at == now), None)
        if same is not None:  # two versions at one instant (a test clock standing still): the last one holds
            same.amount = amount
        else:
            by_name[name].prices.append(FeePrice(effective_from=start, recorded_at=now, amount=amount))
    plan.updated_at = now
    _record(plan, "plan.updated", now)
    db.session.commit()
    return plan


def _granted_parent(principal: Principal, code: str) -> Plan:
    parent = db.session.scalars(_visible(principal).where(
        sa.or_(Plan.id == code, Plan.code == code), Plan.owner == PLATFORM)).first()
    if parent is None:
        raise NotFound.on("parent_plan", f"No parent plan {code!r} granted to you.", "plan_not_granted")
    return parent


def _check_environments(principal: Principal, names: Sequence[str] | None, parent: Plan | None) -> list[str]:
    known = environments(principal.tenant_id, principal.livemode)
    names = list(dict.fromkeys(names or known))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Conflict.on("environments", f"Unknown environments {unknown}: the tenant has {known}.",
                          "unknown_environment")
    if parent is not None and not set(names) <= set(parent.environments):
        raise Conflict.on("environments", f"The parent plan {parent.code!r} may be used in "
                                          f"{parent.environments} only.", "environment_not_allowed")
    return names


def _set_grants(plan: Plan, grantees: Sequence[str], now: datetime) -> None:
    grantees = sorted(set(grantees))
    providers = set(db.session.scalars(sa.select(Provider.id).where(
        Provider.tenant_id == plan.tenant_id, Provider.livemode == plan.livemode, Provider.id.in_(grantees))))
    unknown = [g for g in grantees if g != ALL_PROVIDERS and g not in providers]
    if unknown:
        raise Conflict.on("granted_to", f"No providers {unknown} (give provider ids, or \"*\" for all).",
                          "unknown_provider")
    db.session.execute(sa.delete(PlanGrant.__table__).where(PlanGrant.plan_id == plan.id))
    for grantee in grantees:
        db.session.add(PlanGrant(plan_id=plan.id, grantee=grantee, created_at=now))


def _record(plan: Plan, kind: str, now: datetime) -> None:
    db.session.flush()
    record_one(plan.tenant_id, plan.livemode, now, NewEvent(kind, plan.id, {"object": plan_event_object(plan)},
                                                            provider_id=plan.provider_id))


def plan_event_object(plan: Plan) -> dict[str, Any]:
    """The plan as its events carry it (a snapshot; the API's GET shows more)."""
    return {"object": "plan", "id": plan.id, "code": plan.code, "name": plan.name, "currency": plan.currency,
            "owner": plan.owner, "parent_plan": plan.parent.code if plan.parent else None,
            "environments": plan.environments, "unbilled": plan.unbilled, "livemode": plan.livemode,
            "fees": [{"name": f.name, "timing": f.timing,
                      "prices": [{"effective_from": None if p.effective_from == rating.ALWAYS
                                  else p.effective_from.isoformat(),
                                  "amount": money.format_amount(p.amount, plan.currency)} for p in f.prices]}
                     for f in plan.fees]}
