"""Webhook endpoints of the caller's tenant and mode (a provider key: its own), their
deliveries, and sending an event again."""
from __future__ import annotations

from flask.views import MethodView

from .. import adapters
from ..fields import ListArgs, page_schema
from ..web import Blueprint, clock_now, current, requires, with_secret
from . import service
from .schemas import (
    DeliveryListArgs,
    ResendResultSchema,
    ResendSchema,
    WebhookDeliverySchema,
    WebhookEndpointSchema,
    WebhookEndpointWithSecretSchema,
)

blp = Blueprint("webhooks", __name__, url_prefix="/v1", description="Webhook endpoints and deliveries")


@blp.route("/webhook_endpoints")
class EndpointsView(MethodView):
    @requires("admin", "provider")
    @blp.arguments(WebhookEndpointSchema())
    @blp.response(201, WebhookEndpointWithSecretSchema)
    def post(self, fields):
        """Register an endpoint. Its signing `secret` is in this answer only."""
        principal = current()
        created = service.create_endpoint(principal, fields, adapters.current(), clock_now(principal))
        return with_secret(created.endpoint, secret=created.secret)

    @requires("admin", "provider")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, page_schema(WebhookEndpointSchema, "WebhookEndpointPage"))
    def get(self, args):
        return service.list_endpoints(current(), **args)


@blp.route("/webhook_endpoints/<endpoint_id>")
class EndpointView(MethodView):
    @requires("admin", "provider")
    @blp.response(200, WebhookEndpointSchema)
    def get(self, endpoint_id):
        return service.get_endpoint(current(), endpoint_id)

    @requires("admin", "provider")
    @blp.arguments(WebhookEndpointSchema(partial=True))
    @blp.response(200, WebhookEndpointSchema)
    def patch(self, changes, endpoint_id):
        """Change the URL, events, description, metadata; `status` enables or disables it."""
        return service.update_endpoint(current(), endpoint_id, changes, adapters.current())

    @requires("admin", "provider")
    @blp.response(200, WebhookEndpointSchema)
    def delete(self, endpoint_id):
        """Nothing more is sent to it."""
        principal = current()
        return service.delete_endpoint(principal, endpoint_id, clock_now(principal))


@blp.route("/webhook_endpoints/<endpoint_id>/rotate_secret", methods=["POST"])
@requires("admin", "provider")
@blp.response(200, WebhookEndpointWithSecretSchema)
def rotate_secret(endpoint_id):
    """A new signing secret, in this answer only; the previous one also signs for 24 hours."""
    rotated = service.rotate_secret(current(), endpoint_id, adapters.current())
    return with_secret(rotated.endpoint, secret=rotated.secret)


@blp.route("/webhook_endpoints/<endpoint_id>/deliveries", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(DeliveryListArgs(), location="query")
@blp.response(200, page_schema(WebhookDeliverySchema, "WebhookDeliveryPage"))
def list_deliveries(args, endpoint_id):
    """Newest first, each with its attempts (time, status code, duration, error)."""
    return service.list_deliveries(current(), endpoint_id, **args)


@blp.route("/events/<event_id>/resend", methods=["POST"])
@requires("admin", "provider")
@blp.arguments(ResendSchema(), required=False)
@blp.response(201, ResendResultSchema)
def resend_event(body, event_id):
    """Deliver the event again to every enabled endpoint of yours that takes it (or to `endpoint`)."""
    deliveries = service.resend_event(current(), event_id, (body or {}).get("endpoint"),
                                      adapters.current().clocks.base.now())
    return {"data": deliveries}
