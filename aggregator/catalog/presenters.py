"""Plans, subscriptions and statements as the API, the CLI and the events show them: plain
dicts with amounts as decimal strings in their currency."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import money
from ..accounts.models import Customer
from ..db import db
from .models import Plan, Subscription
from .plans_service import fee_views, grants_of
from .subscriptions_service import Entitlement, Statement, phases_now


def plan_document(plan: Plan, now: datetime) -> dict[str, Any]:
    c = plan.currency

    def amount(minor: int | None) -> str | None:
        return None if minor is None else money.format_amount(minor, c)

    return {
        "id": plan.id, "code": plan.code, "name": plan.name, "description": plan.description, "currency": c,
        "owner": plan.owner, "parent_plan": plan.parent.code if plan.parent else None,
        "environments": list(plan.environments), "unbilled": plan.unbilled,
        "max_subscriptions_per_customer": plan.max_subscriptions_per_customer,
        "requires_payment_method": plan.requires_payment_method,
        "granted_to": grants_of(plan) if plan.owner == "platform" else None,
        "fees": [{"name": f.name, "timing": f.timing, "revenue_share": f.revenue_share, "price": amount(f.price),
                  "parent_fee": f.parent_fee, "parent_price": amount(f.parent_price), "profit": amount(f.profit),
                  "prices": [{"effective_from": p["effective_from"] and p["effective_from"].isoformat(),
                              "amount": amount(p["amount"]), "recorded_at": p["recorded_at"].isoformat()}
                             for p in f.prices], "usage": f.usage}
                 for f in fee_views(plan, now)],
        "metadata": plan.metadata_ or {}, "livemode": plan.livemode, "created_at": plan.created_at,
        "updated_at": plan.updated_at,
    }


def subscription_document(subscription: Subscription, now: datetime) -> dict[str, Any]:
    customer = db.session.get(Customer, subscription.customer_id)
    codes = {subscription.plan_id: subscription.plan.code}
    phases = []
    for phase in phases_now(subscription):
        if phase.plan_id not in codes:
            codes[phase.plan_id] = db.session.get(Plan, phase.plan_id).code
        phases.append({"plan": codes[phase.plan_id], "quantity": phase.quantity, "starts_at": phase.starts_at,
                       "ends_at": phase.ends_at})
    return {
        "id": subscription.id, "provider": subscription.provider_id, "customer": customer.external_id,
        "plan": subscription.plan.code, "environment": subscription.environment,
        "external_billing_id": subscription.external_billing_id, "quantity": subscription.quantity,
        "status": subscription.status(now), "starts_at": subscription.starts_at, "ends_at": subscription.ends_at,
        "phases": phases, "metadata": subscription.metadata_ or {}, "livemode": subscription.livemode,
        "created_at": subscription.created_at, "updated_at": subscription.updated_at,
    }


def statement_document(statement: Statement) -> dict[str, Any]:
    c = statement.currency

    def amount(minor: int | None) -> str | None:
        return None if minor is None else money.format_amount(minor, c)

    return {"period": statement.period, "currency": c, "amount": amount(statement.amount), "charges": [
        {**charge, "amount": amount(charge["amount"]), "platform_fee": amount(charge["platform_fee"]),
         "profit": amount(None if charge["platform_fee"] is None else charge["amount"] - charge["platform_fee"]),
         "covered": {"start": charge["covered"]["start"].isoformat(), "end": charge["covered"]["end"].isoformat()}}
        for charge in statement.charges]}


def entitlement_document(entitlement: Entitlement) -> dict[str, Any]:
    return {"plan": entitlement.plan.code, "name": entitlement.plan.name, "allowed": entitlement.allowed,
            "reasons": entitlement.reasons}
