"""Plans, subscriptions and environments API: provider keys manage their own plans and
subscriptions (and read the parent plans granted to them); admin keys manage parent plans and
environments and read everything."""
from __future__ import annotations

from flask.views import MethodView

from ..fields import ListArgs, page_schema
from ..pagination import Page
from ..web import Blueprint, clock_now, current, requires
from . import meters_service, plans_service, subscriptions_service
from .meters_service import meter_document
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
    PlanListArgs,
    PlanSchema,
    PlanUpdateSchema,
    PlanVersionSchema,
    StatementListSchema,
    SubscriptionInputSchema,
    SubscriptionListArgs,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
)

blp = Blueprint("catalog", __name__, url_prefix="/v1", description="Plans, subscriptions, environments")


@blp.route("/plans")
class PlansView(MethodView):
    @requires("admin", "provider")
    @blp.arguments(PlanInputSchema())
    @blp.response(201, PlanSchema)
    def post(self, fields):
        """A parent plan (admin key) or one of the provider's plans (its key)."""
        principal = current()
        now = clock_now(principal)
        return plan_document(plans_service.create_plan(principal, fields, now), now)

    @requires("admin", "provider")
    @blp.arguments(PlanListArgs(), location="query")
    @blp.response(200, page_schema(PlanSchema, "PlanPage"))
    def get(self, args):
        principal = current()
        page = plans_service.list_plans(principal, **args)
        return Page([plan_document(plan, clock_now(principal)) for plan in page.data], page.has_more)


@blp.route("/plans/<code>")
class PlanView(MethodView):
    @requires("admin", "provider")
    @blp.response(200, PlanSchema)
    def get(self, code):
        principal = current()
        return plan_document(plans_service.get_plan(principal, code), clock_now(principal))

    @requires("admin", "provider")
    @blp.arguments(PlanUpdateSchema())
    @blp.response(200, PlanSchema)
    def patch(self, changes, code):
        principal = current()
        now = clock_now(principal)
        return plan_document(plans_service.update_plan(principal, code, changes, now), now)


@blp.route("/plans/<code>/versions", methods=["POST"])
@requires("admin", "provider")
@blp.arguments(PlanVersionSchema())
@blp.response(201, PlanSchema)
def add_plan_version(version, code):
    """New prices from a period on (never a period closing or closed)."""
    principal = current()
    now = clock_now(principal)
    plan = plans_service.add_version(principal, code, version["effective_from"], version["prices"], now)
    return plan_document(plan, now)


@blp.route("/environments")
class EnvironmentsView(MethodView):
    @requires("admin", "provider")
    @blp.response(200, EnvironmentsSchema)
    def get(self):
        principal = current()
        return {"data": plans_service.environments(principal.tenant_id, principal.livemode)}

    @requires("admin")
    @blp.arguments(EnvironmentInputSchema())
    @blp.response(201, EnvironmentsSchema)
    def post(self, fields):
        principal = current()
        return {"data": plans_service.add_environment(principal, fields["name"], clock_now(principal))}


@blp.route("/environments/<name>", methods=["DELETE"])
@requires("admin")
@blp.response(200, EnvironmentsSchema)
def remove_environment(name):
    principal = current()
    return {"data": plans_service.remove_environment(principal, name, clock_now(principal))}


@blp.route("/subscriptions")
class SubscriptionsView(MethodView):
    @requires("provider")
    @blp.arguments(SubscriptionInputSchema())
    @blp.response(201, SubscriptionSchema)
    def post(self, fields):
        principal = current()
        now = clock_now(principal)
        return subscription_document(subscriptions_service.create_subscription(principal, fields, now), now)

    @requires("admin", "provider")
    @blp.arguments(SubscriptionListArgs(), location="query")
    @blp.response(200, page_schema(SubscriptionSchema, "SubscriptionPage"))
    def get(self, args):
        principal = current()
        page = subscriptions_service.list_subscriptions(principal, **args)
        now = clock_now(principal)
        return Page([subscription_document(s, now) for s in page.data], page.has_more)


@blp.route("/subscriptions/<ref>")
class SubscriptionView(MethodView):
    @requires("admin", "provider")
    @blp.response(200, SubscriptionSchema)
    def get(self, ref):
        principal = current()
        return subscription_document(subscriptions_service.get_subscription(principal, ref), clock_now(principal))

    @requires("provider")
    @blp.arguments(SubscriptionUpdateSchema())
    @blp.response(200, SubscriptionSchema)
    def patch(self, changes, ref):
        principal = current()
        now = clock_now(principal)
        return subscription_document(subscriptions_service.update_subscription(principal, ref, changes, now), now)

    @requires("provider")
    @blp.arguments(CancelArgs(), location="query")
    @blp.response(200, SubscriptionSchema)
    def delete(self, args, ref):
        """End it (the instance was deleted): at `at`, default now."""
        principal = current()
        now = clock_now(principal)
        return subscription_document(subscriptions_service.cancel_subscription(principal, ref, args.get("at"), now),
                                     now)


@blp.route("/subscriptions/<ref>/statements", methods=["GET"])
@requires("admin", "provider")
@blp.response(200, StatementListSchema)
def subscription_statements(ref):
    """What it was billed, per period (newest first)."""
    return {"data": [statement_document(s) for s in subscriptions_service.statements(current(), ref)]}


@blp.route("/customers/<customer>/entitlements", methods=["GET"])
@requires("provider")
@blp.response(200, EntitlementListSchema)
def customer_entitlements(customer):
    """Which of your plans the customer may start now, and why not."""
    principal = current()
    found = subscriptions_service.entitlements(principal, customer, clock_now(principal))
    return {"customer": customer, "data": [entitlement_document(e) for e in found]}


@blp.route("/meters")
class MetersView(MethodView):
    @requires("admin")
    @blp.arguments(MeterInputSchema())
    @blp.response(201, MeterSchema)
    def post(self, fields):
        """A meter: how one kind of usage event aggregates (admin key)."""
        principal = current()
        return meter_document(meters_service.create_meter(principal, fields, clock_now(principal)))

    @requires("admin", "provider")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, page_schema(MeterSchema, "MeterPage"))
    def get(self, args):
        page = meters_service.list_meters(current(), **args)
        return Page([meter_document(m) for m in page.data], page.has_more)


@blp.route("/meters/<code>")
class MeterView(MethodView):
    @requires("admin", "provider")
    @blp.response(200, MeterSchema)
    def get(self, code):
        return meter_document(meters_service.get_meter(current(), code))

    @requires("admin")
    @blp.arguments(MeterUpdateSchema())
    @blp.response(200, MeterSchema)
    def patch(self, changes, code):
        """Rename it; change how it aggregates while it has no usage events."""
        principal = current()
        return meter_document(meters_service.update_meter(principal, code, changes, clock_now(principal)))
