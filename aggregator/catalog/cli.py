"""`aggregator plans|subscriptions|environments|meters …`: the catalog's use cases from the command
line, as the API's /v1/plans, /v1/subscriptions, /v1/environments and /v1/meters run them (same
services, same schemas, same shapes with --json).

Parent plans and environments are the tenant's: the operator acts as its admin. What a provider
owns (its plans, its subscriptions) is done with `--provider prov_…`: the operator acts as that
provider, as its API key would."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..commands import (
    AreaGroup,
    Day,
    Instant,
    acting_for,
    checked,
    json_option,
    list_options,
    now_for,
    pairs,
    print_json,
    print_record,
    print_rows,
    provider_option,
    say,
    tenant_scoped,
)
from ..errors import NotFound
from . import meters_service, plans_service, rating, subscriptions_service
from .meters_service import meter_document
from .models import ALL_PROVIDERS, PLATFORM
from .presenters import entitlement_document, plan_document, statement_document, subscription_document
from .schemas import (
    CancelArgs,
    EntitlementListSchema,
    EnvironmentInputSchema,
    EnvironmentsSchema,
    MeterInputSchema,
    MeterSchema,
    MeterUpdateSchema,
    PlanInputSchema,
    PlanSchema,
    PlanUpdateSchema,
    PlanVersionSchema,
    StatementListSchema,
    SubscriptionInputSchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
)

plans = AreaGroup("plans", help="Plans: parent plans granted to providers, and the providers' plans with their profit.")
subscriptions = AreaGroup("subscriptions", help="Subscriptions: a provider's customers on its plans, rated into "
                                                "bills at each close.")
environments = AreaGroup("environments", help="The tenant's environments (production, staging, …) plans and "
                                              "subscriptions name.")
meters = AreaGroup("meters", help="Meters: how each kind of usage event aggregates (count, sum, max, hourly_max, …).")

_TIMINGS = (rating.IN_ADVANCE, rating.IN_ARREARS)


def _principal(principal, provider_id: str | None):
    """The tenant's admin, or with --provider the operator acting as that provider."""
    return acting_for(principal, provider_id) if provider_id else principal


def _fees(ctx, param, given: tuple[str, ...]) -> list[dict[str, str]]:
    """--fee Hosting=150.00 --fee Support=30.00:in_arrears -> [{"name", "price", "timing"?}, …]."""
    fees = []
    for text in given:
        name, sep, rest = text.partition("=")
        price, _, timing = rest.partition(":")
        if not sep or not name.strip() or not price.strip():
            raise click.BadParameter(f"{text!r} is not NAME=PRICE[:TIMING] (Hosting=150.00:in_advance).")
        if timing and timing not in _TIMINGS:
            raise click.BadParameter(f"{text!r}: the timing is one of {', '.join(_TIMINGS)}.")
        fees.append({"name": name.strip(), "price": price.strip(), **({"timing": timing} if timing else {})})
    return fees


def _fees_json(ctx, param, given: str | None) -> list[dict[str, Any]] | None:
    """--fees-json '[{"name": …, "usage": [...]}]' or --fees-json @fees.json: the API's `fees`."""
    if given is None:
        return None
    text = given
    if given.startswith("@"):
        try:
            text = Path(given[1:]).read_text()
        except OSError as exc:
            raise click.BadParameter(f"cannot read {given[1:]!r}: {exc.strerror}.") from None
    try:
        fees = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}.") from None
    if not isinstance(fees, list) or not all(isinstance(fee, dict) for fee in fees):
        raise click.BadParameter("a JSON list of fees, as POST /v1/plans takes them ([{\"name\": …}, …]).")
    return fees


def _metadata_option(command):
    return click.option("--metadata", multiple=True, callback=pairs, metavar="KEY=VALUE",
                        help="Repeat: your own key=value pairs.")(command)


# --- plans ------------------------------------------------------------------------------------

#: PlanSchema's field -> the option that sets it
_PLAN_OPTIONS = {"code": "--code", "name": "--name", "description": "--description", "currency": "--currency",
                 "fees": "--fee", "parent_plan": "--parent", "environments": "--environment",
                 "unbilled": "--unbilled", "max_subscriptions_per_customer": "--max-per-customer",
                 "requires_payment_method": "--requires-payment-method", "granted_to": "--grant",
                 "metadata": "--metadata"}
_PLAN_COLUMNS = ["code", "name", "owner", "parent_plan", "currency", "fee", "timing", "price", "parent_price",
                 "profit"]
_FEE_COLUMNS = ["name", "timing", "price", "parent_fee", "parent_price", "profit", "revenue_share"]


def _plan_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """A plan as table rows, one per fee (the plan's own columns on its first)."""
    rows = []
    for n, fee in enumerate(document["fees"]):
        head = {key: document[key] for key in ("code", "name", "owner", "parent_plan", "currency")} if n == 0 \
            else {key: "" for key in ("code", "name", "owner", "parent_plan", "currency")}
        rows.append({**head, "fee": fee["name"], "timing": fee["timing"], "price": fee["price"],
                     "parent_price": fee["parent_price"], "profit": fee["profit"]})
    return rows


def _print_plan(plan, now, as_json: bool) -> None:
    data = PlanSchema().dump(plan_document(plan, now))
    if as_json:
        print_json(data)
        return
    fees = data.pop("fees")
    print_record(data, f"Plan {data['code']}")
    print_rows(fees, _FEE_COLUMNS, f"Fees ({data['currency']} per period; profit = price − parent price)")
    print_rows([{"fee": fee["name"], "effective_from": price["effective_from"] or "(from the start)",
                 "amount": price["amount"], "recorded_at": price["recorded_at"]}
                for fee in fees for price in fee["prices"]], ["fee", "effective_from", "amount", "recorded_at"],
               "Prices")
    usage = [{"fee": fee["name"], **component, "price": _usage_price(component)}
             for fee in fees for component in fee.get("usage") or []]
    if usage:
        print_rows(usage, ["fee", "name", "meter", "dimension", "model", "included_units", "price", "minimum",
                           "maximum", "thresholds"], "Usage prices (rated at each close)")


def _usage_price(component: dict[str, Any]) -> str:
    """A usage component's unit price or tiers in a cell: "0.05" or "≤ 1000: 0.05; above: 0.03"."""
    if not component.get("tiers"):
        size = component.get("package_size")
        return f"{component['unit_amount']}" + (f" per {size}" if size else "")
    return "; ".join(f"{'≤ ' + tier['up_to'] if tier['up_to'] else 'above'}: {tier['unit_amount']}"
                     + (f" + {tier['flat_amount']}" if tier.get("flat_amount") not in (None, "0") else "")
                     for tier in component["tiers"])


def _parent_timings(principal, parent: str) -> dict[str, str]:
    """The timings of the fees of the parent plan `parent` (nothing if the caller cannot read it:
    creating the plan then says why)."""
    try:
        return {fee.name: fee.timing for fee in plans_service.get_plan(principal, parent).fees}
    except NotFound:
        return {}


@plans.command("create")
@tenant_scoped
@provider_option(False, "A provider's plan, owned by this provider (default: a parent plan, the tenant's).")
@click.option("--code", required=True, help="Unique per owner: how the API and subscriptions name the plan.")
@click.option("--name", required=True)
@click.option("--currency", required=True, help="ISO 4217, e.g. USD.")
@click.option("--fee", "fees", multiple=True, callback=_fees, metavar="NAME=PRICE[:TIMING]",
              help="Repeat, one per fee: Hosting=150.00, Support=30.00:in_arrears (timing in_advance or "
                   "in_arrears; default: the parent fee's, else in_advance). Built on a parent plan (--parent), "
                   "each fee resells the parent fee of its name.")
@click.option("--fees-json", "fees_json", callback=_fees_json, default=None, metavar="JSON|@FILE",
              help="Instead of --fee: the fees as POST /v1/plans takes them, a JSON list (or @file holding it), "
                   "for fees with usage components (docs/metering.md). Timing and parent fee default as for --fee.")
@click.option("--parent", "parent_plan", default=None, metavar="CODE",
              help="With --provider: the parent plan (granted to it) the plan is built on.")
@click.option("--grant", "granted_to", multiple=True, metavar="PROVIDER",
              help="A parent plan: repeat, each a provider it is granted to, or '*' for all.")
@click.option("--environment", "environments", multiple=True, metavar="NAME",
              help="Repeat: where it may be used (default: every environment).")
@click.option("--description", default=None)
@click.option("--unbilled", is_flag=True, default=None, help="A staging plan: tracked, billed nothing.")
@click.option("--pass-through", is_flag=True,
              help="A provider's plan without a parent: its fees are passed through (no revenue share).")
@click.option("--max-per-customer", "max_subscriptions_per_customer", type=int, default=None,
              help="At most this many subscriptions to the plan per customer.")
@click.option("--requires-payment-method", is_flag=True, default=None,
              help="A customer needs a payment method on file to subscribe.")
@_metadata_option
@json_option
def create_plan(principal, provider_id, fees, fees_json, pass_through, as_json, **fields):
    """Create a parent plan (the tenant's price list, granted to providers) or, with --provider, a
    provider's plan, standing alone or built on a parent plan with --parent.

    Checked by the rules of POST /v1/plans: a malformed option is a usage error (exit status 2), a
    refusal (an unknown or ungranted parent, a code taken) exit status 1."""
    if bool(fees) == (fees_json is not None):
        raise click.UsageError("Give the fees with --fee (repeated) or with --fees-json, one of the two.")
    fees = list(fees) or fees_json
    principal = _principal(principal, provider_id)
    timings = _parent_timings(principal, fields["parent_plan"]) if fields["parent_plan"] else {}
    for fee in fees:
        name = fee.get("name") if isinstance(fee.get("name"), str) else ""
        fee.setdefault("timing", timings.get(name, rating.IN_ADVANCE))
        if fields["parent_plan"]:
            fee.setdefault("parent_fee", name)
        if pass_through:
            fee["revenue_share"] = False
    values = {key: value for key, value in {**fields, "fees": fees}.items() if value not in (None, ())}
    values = checked(PlanInputSchema(), values,
                     {**_PLAN_OPTIONS, "fees": "--fees-json"} if fees_json is not None else _PLAN_OPTIONS)
    now = now_for(principal)
    _print_plan(plans_service.create_plan(principal, values, now), now, as_json)


@plans.command("list")
@tenant_scoped
@provider_option(False, "What this provider sees: its own plans and the parent plans granted to it.")
@click.option("--owner", default=None, metavar="OWNER", help="Only the plans of 'platform' (the parent plans) or "
                                                             "of one provider (prov_…).")
@list_options
@json_option
def list_plans(principal, provider_id, owner, limit, starting_after, as_json):
    """The plans, a row per fee with its price, its parent fee's price and the profit between."""
    principal = _principal(principal, provider_id)
    page = plans_service.list_plans(principal, limit, starting_after, owner)
    now = now_for(principal)
    data = PlanSchema().dump([plan_document(plan, now) for plan in page.data], many=True)
    if as_json:
        print_json({"data": data, "has_more": page.has_more})
        return
    print_rows([row for document in data for row in _plan_rows(document)], _PLAN_COLUMNS,
               f"Plans ({principal.mode} mode)")
    if page.has_more:
        say(f"(more: --starting-after {data[-1]['id']})")


@plans.command("show")
@tenant_scoped
@provider_option(False, "As this provider reads it (a provider's plan code may equal a parent plan's).")
@click.argument("code", metavar="PLAN")
@json_option
def show_plan(principal, provider_id, code, as_json):
    """One plan, by code or id: its fees (price, parent price, profit), their price versions, its grants."""
    principal = _principal(principal, provider_id)
    _print_plan(plans_service.get_plan(principal, code), now_for(principal), as_json)


@plans.command("update")
@tenant_scoped
@provider_option(False, "A plan of this provider (default: a parent plan).")
@click.argument("code", metavar="PLAN")
@click.option("--name", default=None)
@click.option("--description", default=None)
@click.option("--environment", "environments", multiple=True, metavar="NAME", help="Repeat: where it may be used.")
@click.option("--max-per-customer", "max_subscriptions_per_customer", type=int, default=None)
@click.option("--requires-payment-method/--no-payment-method-required", "requires_payment_method", default=None)
@_metadata_option
@json_option
def update_plan(principal, provider_id, code, as_json, **fields):
    """Change what does not reprice a period (name, environments, quotas, metadata), by the rules of
    PATCH /v1/plans/{code}. Prices change with `plans version`; grants with `plans grant`."""
    principal = _principal(principal, provider_id)
    changes = checked(PlanUpdateSchema(), {k: v for k, v in fields.items() if v not in (None, ())}, _PLAN_OPTIONS)
    if not changes:
        raise click.UsageError("Nothing to change: give at least one option.")
    now = now_for(principal)
    _print_plan(plans_service.update_plan(principal, code, changes, now), now, as_json)


def _regrant(principal, code: str, providers: tuple[str, ...], grant: bool, as_json: bool) -> None:
    plan = plans_service.get_plan(principal, code)
    if plan.owner != PLATFORM:
        raise click.ClickException(f"{plan.code!r} is a provider's plan: only a parent plan is granted.")
    granted = set(plans_service.grants_of(plan))
    granted = granted | set(providers) if grant else granted - set(providers)
    now = now_for(principal)
    plan = plans_service.update_plan(principal, plan.id, {"granted_to": sorted(granted)}, now)
    if as_json:
        _print_plan(plan, now, True)
    else:
        shown = plans_service.grants_of(plan)
        say(f"{plan.code} is granted to: " + (", ".join("every provider" if g == ALL_PROVIDERS else g for g in shown)
                                             or "no provider") + ".")


@plans.command("grant")
@tenant_scoped
@click.argument("code", metavar="PLAN")
@click.argument("providers", metavar="PROVIDER…", nargs=-1, required=True)
@json_option
def grant(principal, code, providers, as_json):
    """Grant a parent plan to providers (ids, or '*' for every provider): they may build plans on it."""
    _regrant(principal, code, providers, True, as_json)


@plans.command("revoke")
@tenant_scoped
@click.argument("code", metavar="PLAN")
@click.argument("providers", metavar="PROVIDER…", nargs=-1, required=True)
@json_option
def revoke(principal, code, providers, as_json):
    """Take a parent plan's grant back from providers (ids, or '*'); plans built on it stay."""
    _regrant(principal, code, providers, False, as_json)


@plans.command("version")
@tenant_scoped
@provider_option(False, "A plan of this provider (default: a parent plan).")
@click.argument("code", metavar="PLAN")
@click.option("--price", "prices", multiple=True, required=True, callback=pairs, metavar="FEE=PRICE",
              help="Repeat: a fee's new price, e.g. Hosting=99.00.")
@click.option("--from", "effective_from", type=Day(), default=None,
              help="The start of the first period it applies to (default: the open period).")
@json_option
def add_version(principal, provider_id, code, prices, effective_from, as_json):
    """New prices for some fees from a period on, by the rules of POST /v1/plans/{code}/versions:
    never for a period that has ended, is closing or closed."""
    principal = _principal(principal, provider_id)
    version = checked(PlanVersionSchema(), {"prices": prices, **(
        {"effective_from": effective_from.date().isoformat()} if effective_from else {})},
        {"prices": "--price", "effective_from": "--from"})
    now = now_for(principal)
    plan = plans_service.add_version(principal, code, version["effective_from"], version["prices"], now)
    _print_plan(plan, now, as_json)


# --- environments -------------------------------------------------------------------------------

def _print_environments(names: list[str], as_json: bool) -> None:
    if as_json:
        print_json(EnvironmentsSchema().dump({"data": names}))
    else:
        print_rows([{"environment": name} for name in names], ["environment"], "Environments")


@environments.command("list")
@tenant_scoped
@json_option
def list_environments(principal, as_json):
    """The tenant's environments in this mode."""
    _print_environments(plans_service.environments(principal.tenant_id, principal.livemode), as_json)


@environments.command("add")
@tenant_scoped
@click.argument("name", metavar="NAME")
@json_option
def add_environment(principal, name, as_json):
    """Name another environment (lower-case letters, digits, '_' or '-')."""
    name = checked(EnvironmentInputSchema(), {"name": name}, {"name": "NAME"})["name"]
    _print_environments(plans_service.add_environment(principal, name, now_for(principal)), as_json)


@environments.command("remove")
@tenant_scoped
@click.argument("name", metavar="NAME")
@json_option
def remove_environment(principal, name, as_json):
    """Remove an environment no plan or subscription uses."""
    _print_environments(plans_service.remove_environment(principal, name, now_for(principal)), as_json)


# --- subscriptions ------------------------------------------------------------------------------

_SUBSCRIPTION_COLUMNS = ["id", "provider", "customer", "plan", "environment", "external_billing_id", "quantity",
                         "status", "starts_at", "ends_at"]
_SUBSCRIPTION_OPTIONS = {"customer": "--customer", "plan": "--plan", "environment": "--environment",
                         "external_billing_id": "--external-billing-id", "starts_at": "--starts-at",
                         "quantity": "--quantity", "metadata": "--metadata", "at": "--at"}
_own = provider_option(True, "The provider whose subscription it is (the operator acts as it).")


def _print_subscription(subscription, now, as_json: bool) -> None:
    data = SubscriptionSchema().dump(subscription_document(subscription, now))
    if as_json:
        print_json(data)
        return
    phases = data.pop("phases")
    print_record(data, f"Subscription {data['id']}")
    print_rows(phases, ["plan", "quantity", "starts_at", "ends_at"], "Phases")


def _instant(value) -> str | None:
    return value.isoformat() if value is not None else None


@subscriptions.command("create")
@tenant_scoped
@_own
@click.option("--customer", required=True, help="The customer's id or external id.")
@click.option("--plan", required=True, help="The code (or id) of one of the provider's plans.")
@click.option("--environment", default=None, help="Default: production.")
@click.option("--external-billing-id", default=None, help="The provider's id of the instance, unique per provider.")
@click.option("--starts-at", type=Instant(), default=None,
              help="Default now; in the past (back to the open period's start, not before the customer existed) "
                   "it is billed retroactively; in the future it is scheduled.")
@click.option("--quantity", type=int, default=None, help="Default 1.")
@_metadata_option
@json_option
def create_subscription(principal, provider_id, starts_at, as_json, **fields):
    """Subscribe one of the tenant's customers to one of the provider's plans, by the rules of POST
    /v1/subscriptions."""
    values = {k: v for k, v in {**fields, "starts_at": _instant(starts_at)}.items() if v is not None}
    values = checked(SubscriptionInputSchema(), values, _SUBSCRIPTION_OPTIONS)
    principal = acting_for(principal, provider_id)
    now = now_for(principal)
    _print_subscription(subscriptions_service.create_subscription(principal, values, now), now, as_json)


@subscriptions.command("list")
@tenant_scoped
@provider_option(False, "Only this provider's (and --plan names its plans).")
@click.option("--customer", default=None, help="A customer's id or external id.")
@click.option("--plan", default=None, help="A plan's code or id.")
@list_options
@json_option
def list_subscriptions(principal, provider_id, customer, plan, limit, starting_after, as_json):
    """The subscriptions, newest first."""
    principal = _principal(principal, provider_id)
    page = subscriptions_service.list_subscriptions(principal, limit, starting_after, customer, plan)
    now = now_for(principal)
    data = SubscriptionSchema().dump([subscription_document(s, now) for s in page.data], many=True)
    if as_json:
        print_json({"data": data, "has_more": page.has_more})
    else:
        print_rows(data, _SUBSCRIPTION_COLUMNS, f"Subscriptions ({principal.mode} mode)", page.has_more)


@subscriptions.command("show")
@tenant_scoped
@provider_option(False, "As this provider reads it (then SUBSCRIPTION may be its external billing id).")
@click.argument("ref", metavar="SUBSCRIPTION")
@json_option
def show_subscription(principal, provider_id, ref, as_json):
    """One subscription (its id; with --provider also its external billing id), with its phases."""
    principal = _principal(principal, provider_id)
    _print_subscription(subscriptions_service.get_subscription(principal, ref), now_for(principal), as_json)


@subscriptions.command("change")
@tenant_scoped
@_own
@click.argument("ref", metavar="SUBSCRIPTION")
@click.option("--plan", default=None, help="Another of the provider's plans.")
@click.option("--quantity", type=int, default=None)
@click.option("--at", type=Instant(), default=None,
              help="When it takes effect (default now; not before the open period or the last change).")
@_metadata_option
@json_option
def change_subscription(principal, provider_id, ref, at, as_json, **fields):
    """Change a subscription's plan or quantity from an instant (each plan is billed for its days),
    by the rules of PATCH /v1/subscriptions/{id}."""
    values = {k: v for k, v in {**fields, "at": _instant(at)}.items() if v is not None}
    changes = checked(SubscriptionUpdateSchema(), values, _SUBSCRIPTION_OPTIONS)
    if not changes.keys() - {"at"}:
        raise click.UsageError("Nothing to change: give --plan, --quantity or --metadata.")
    principal = acting_for(principal, provider_id)
    now = now_for(principal)
    _print_subscription(subscriptions_service.update_subscription(principal, ref, changes, now), now, as_json)


@subscriptions.command("cancel")
@tenant_scoped
@_own
@click.argument("ref", metavar="SUBSCRIPTION")
@click.option("--at", type=Instant(), default=None, help="When it ends (default now; not before the open period).")
@json_option
def cancel_subscription(principal, provider_id, ref, at, as_json):
    """End a subscription (the instance was deleted): days after it are not billed, and a fee billed
    in advance is credited for them at the next close. Ending it again changes nothing."""
    args = checked(CancelArgs(), {"at": _instant(at)} if at else {}, _SUBSCRIPTION_OPTIONS)
    principal = acting_for(principal, provider_id)
    now = now_for(principal)
    _print_subscription(subscriptions_service.cancel_subscription(principal, ref, args.get("at"), now), now,
                        as_json)


@subscriptions.command("statements")
@tenant_scoped
@provider_option(False, "As this provider reads it (then SUBSCRIPTION may be its external billing id).")
@click.argument("ref", metavar="SUBSCRIPTION")
@json_option
def statements(principal, provider_id, ref, as_json):
    """What a subscription was billed at each close, newest period first: each charge with its days,
    the platform's fee and the provider's profit."""
    principal = _principal(principal, provider_id)
    found = [statement_document(s) for s in subscriptions_service.statements(principal, ref)]
    if as_json:
        print_json(StatementListSchema().dump({"data": found}))
        return
    rows = [{"period": statement["period"], **charge, "days": f"{charge['days']} of {charge['period_days']}",
             "currency": statement["currency"]}
            for statement in found for charge in statement["charges"]]
    print_rows(rows, ["period", "description", "kind", "days", "quantity", "amount", "platform_fee", "profit",
                      "currency", "bill"], f"Statements of {ref}")
    for statement in found:
        say(f"{statement['period']}: {statement['amount']} {statement['currency']}")


@subscriptions.command("entitlements")
@tenant_scoped
@_own
@click.argument("customer", metavar="CUSTOMER")
@json_option
def entitlements(principal, provider_id, customer, as_json):
    """Which of the provider's plans a customer may start now, and why not (its quotas)."""
    principal = acting_for(principal, provider_id)
    found = subscriptions_service.entitlements(principal, customer, now_for(principal))
    data = EntitlementListSchema().dump({"customer": customer, "data": [entitlement_document(e) for e in found]})
    if as_json:
        print_json(data)
        return
    print_rows([{**e, "reasons": "; ".join(r["message"] for r in e["reasons"]) or None} for e in data["data"]],
               ["plan", "name", "allowed", "reasons"], f"Entitlements of {customer}")


# --- meters -------------------------------------------------------------------------------------

_METER_COLUMNS = ["code", "name", "unit", "aggregation", "field", "reset", "decimals", "dimensions", "in_use"]
_METER_OPTIONS = {"code": "--code", "name": "--name", "unit": "--unit", "field": "--field",
                  "aggregation": "--aggregation", "reset": "--reset", "decimals": "--decimals",
                  "dimensions": "--dimension"}
_AGGREGATIONS = click.Choice(meters_service.AGGREGATIONS)


def _print_meter(meter, as_json: bool) -> None:
    data = MeterSchema().dump(meter_document(meter))
    if as_json:
        print_json(data)
    else:
        print_record(data, f"Meter {data['code']}")


@meters.command("create")
@tenant_scoped
@click.option("--code", required=True, help="Unique in the tenant and mode: how events and plans name it.")
@click.option("--name", required=True)
@click.option("--aggregation", required=True, type=_AGGREGATIONS,
              help="count, sum, max, latest, unique_count (of --field), time_weighted (value × hours held) or "
                   "hourly_max (per hour the largest sample, summed over the hours).")
@click.option("--unit", default=None, help='What a unit is: "GB", "call", "core" (default: unit).')
@click.option("--field", default=None, metavar="PROPERTY",
              help="The event property holding the value (default: the event's value); for unique_count, the "
                   "property whose distinct values count.")
@click.option("--reset", type=click.Choice(["period", "never"]), default=None,
              help="period (default): usage starts again each period; never: carried across periods (seats).")
@click.option("--decimals", type=int, default=None, help="Decimal places a value may have (default 0).")
@click.option("--dimension", "dimensions", multiple=True, metavar="PROPERTY",
              help="Repeat: an event property that groups the usage (cloud, region, resource); at most 5.")
@json_option
def create_meter(principal, as_json, **fields):
    """Create a meter, by the rules of POST /v1/meters: what one kind of usage event measures and
    how its events aggregate over a period."""
    values = checked(MeterInputSchema(), {k: v for k, v in fields.items() if v not in (None, ())}, _METER_OPTIONS)
    _print_meter(meters_service.create_meter(principal, values, now_for(principal)), as_json)


@meters.command("list")
@tenant_scoped
@list_options
@json_option
def list_meters(principal, limit, starting_after, as_json):
    """The tenant's meters in this mode."""
    page = meters_service.list_meters(principal, limit, starting_after)
    data = MeterSchema().dump([meter_document(m) for m in page.data], many=True)
    if as_json:
        print_json({"data": data, "has_more": page.has_more})
    else:
        print_rows(data, _METER_COLUMNS, f"Meters ({principal.mode} mode)")
        if page.has_more:
            say(f"(more: --starting-after {data[-1]['id']})")


@meters.command("show")
@tenant_scoped
@click.argument("code", metavar="METER")
@json_option
def show_meter(principal, code, as_json):
    """One meter, by code or id (in_use: it has usage events, so how it aggregates is fixed)."""
    _print_meter(meters_service.get_meter(principal, code), as_json)


@meters.command("update")
@tenant_scoped
@click.argument("code", metavar="METER")
@click.option("--name", default=None)
@click.option("--unit", default=None)
@click.option("--aggregation", type=_AGGREGATIONS, default=None)
@click.option("--field", default=None, metavar="PROPERTY")
@click.option("--reset", type=click.Choice(["period", "never"]), default=None)
@click.option("--decimals", type=int, default=None)
@click.option("--dimension", "dimensions", multiple=True, metavar="PROPERTY", help="Repeat: the new dimensions.")
@json_option
def update_meter(principal, code, as_json, **fields):
    """Rename a meter or change its unit; how it aggregates (aggregation, field, reset, decimals,
    dimensions) only while it has no usage events, by the rules of PATCH /v1/meters/{code}."""
    changes = checked(MeterUpdateSchema(), {k: v for k, v in fields.items() if v not in (None, ())}, _METER_OPTIONS)
    if not changes:
        raise click.UsageError("Nothing to change: give at least one option.")
    _print_meter(meters_service.update_meter(principal, code, changes, now_for(principal)), as_json)
