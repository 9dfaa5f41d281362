"""Admin API for the tenant, its providers, customers and keys."""
from __future__ import annotations

from flask.views import MethodView

from .. import adapters as edge
from ..fields import ListArgs, page_schema
from ..web import Blueprint, clock_now, current, requires, with_secret
from . import notifications, service
from .schemas import (
    ApiKeySchema,
    CreatedProviderSchema,
    CustomerListArgs,
    CustomerSchema,
    IssuedKeySchema,
    KeyListArgs,
    NotificationSettingsSchema,
    ProviderSchema,
    TenantSchema,
)

blp = Blueprint("accounts", __name__, url_prefix="/v1", description="Tenant, providers, customers, keys")


@blp.route("/tenant")
class TenantView(MethodView):
    @requires("admin")
    @blp.response(200, TenantSchema)
    def get(self):
        return service.get_tenant(current())

    @requires("admin")
    @blp.arguments(TenantSchema(partial=True))
    @blp.response(200, TenantSchema)
    def patch(self, changes):
        adapters = edge.current()
        return service.update_tenant(current(), changes, adapters.vault, adapters.payments.check_tenant_api_base)


@blp.route("/notification_settings")
class NotificationSettingsView(MethodView):
    @requires("admin")
    @blp.response(200, NotificationSettingsSchema)
    def get(self):
        """Which emails customers are sent in the key's mode (webhooks follow their endpoints)."""
        return notifications.get_notification_settings(current())

    @requires("admin")
    @blp.arguments(NotificationSettingsSchema(partial=True))
    @blp.response(200, NotificationSettingsSchema)
    def patch(self, changes):
        """Turn customer emails on or off in the key's mode only."""
        return notifications.update_notification_settings(current(), changes)


@blp.route("/tenant/keys", methods=["POST"])
@requires("admin")
@blp.response(201, IssuedKeySchema)
def issue_admin_key():
    """Issue another admin key for this mode (to rotate one: issue, then revoke the old one)."""
    principal = current()
    issued = service.issue_admin_key(principal, clock_now(principal))
    return with_secret(issued.key, secret=issued.plaintext)


@blp.route("/providers")
class ProvidersView(MethodView):
    @requires("admin")
    @blp.arguments(ProviderSchema())
    @blp.response(201, CreatedProviderSchema)
    def post(self, fields):
        principal = current()
        created = service.create_provider(principal, fields, clock_now(principal))
        return with_secret(created.provider, api_key=created.api_key, api_key_id=created.api_key_id)

    @requires("admin")
    @blp.arguments(ListArgs(), location="query")
    @blp.response(200, page_schema(ProviderSchema, "ProviderPage"))
    def get(self, args):
        return service.list_providers(current(), **args)


@blp.route("/providers/<provider_id>")
class ProviderView(MethodView):
    @requires("admin")
    @blp.response(200, ProviderSchema)
    def get(self, provider_id):
        return service.get_provider(current(), provider_id)

    @requires("admin")
    @blp.arguments(ProviderSchema(partial=True))
    @blp.response(200, ProviderSchema)
    def patch(self, changes, provider_id):
        return service.update_provider(current(), provider_id, changes)


@blp.route("/providers/<provider_id>/keys", methods=["POST"])
@requires("admin")
@blp.response(201, IssuedKeySchema)
def issue_provider_key(provider_id):
    principal = current()
    issued = service.issue_provider_key(principal, provider_id, clock_now(principal))
    return with_secret(issued.key, secret=issued.plaintext)


@blp.route("/keys", methods=["GET"])
@requires("admin")
@blp.arguments(KeyListArgs(), location="query")
@blp.response(200, page_schema(ApiKeySchema, "ApiKeyPage"))
def list_keys(args):
    """The keys of this tenant and mode, newest first, revoked ones included (never a secret)."""
    return service.list_keys(current(), **args)


@blp.route("/keys/<key_id>")
class KeyView(MethodView):
    @requires("admin")
    @blp.response(200, ApiKeySchema)
    def get(self, key_id):
        return service.get_key(current(), key_id)

    @requires("admin")
    @blp.response(200, ApiKeySchema)
    def delete(self, key_id):
        """Revoke a key. The mode's last unrevoked admin key cannot be revoked (409 last_admin_key)."""
        principal = current()
        return service.revoke_key(principal, key_id, clock_now(principal))


@blp.route("/customers")
class CustomersView(MethodView):
    @requires("admin")
    @blp.arguments(CustomerSchema())
    @blp.response(201, CustomerSchema)
    def post(self, fields):
        principal = current()
        return service.create_customer(principal, fields, clock_now(principal))

    @requires("admin")
    @blp.arguments(CustomerListArgs(), location="query")
    @blp.response(200, page_schema(CustomerSchema, "CustomerPage"))
    def get(self, args):
        return service.list_customers(current(), **args)


@blp.route("/customers/<path:customer_id>")
class CustomerView(MethodView):
    """`customer_id` is the customer's id (cus_…) or its external_id."""

    @requires("admin")
    @blp.response(200, CustomerSchema)
    def get(self, customer_id):
        return service.with_credit_balance(service.get_customer(current(), customer_id))

    @requires("admin")
    @blp.arguments(CustomerSchema(partial=True))
    @blp.response(200, CustomerSchema)
    def patch(self, changes, customer_id):
        principal = current()
        return service.with_credit_balance(
            service.update_customer(principal, customer_id, changes, clock_now(principal)))
