"""Stripe's webhook endpoint of each tenant and mode. No API key: a request is authenticated by
its Stripe-Signature, made with the tenant's signing secret for that mode."""
from __future__ import annotations

from flask import request
from marshmallow import Schema, fields

from .. import adapters
from ..web import Blueprint
from . import stripe_events

blp = Blueprint("stripe_webhooks", __name__, url_prefix="/v1", description="Stripe's webhooks")


class StripeEventReceiptSchema(Schema):
    id = fields.String(metadata={"description": "The stored event (sevt_…)."})
    status = fields.String(metadata={"enum": ["pending", "handled", "ignored"], "description":
                                     "pending: about a payment or refund not found yet; retried later."})
    redelivery = fields.Boolean(metadata={"description": "Stripe had sent this event before: not handled again."})


@blp.route("/stripe/webhooks/<tenant_id>/<mode>", methods=["POST"])
@blp.doc(security=[], description="Set the endpoint up in Stripe's dashboard with this URL (mode `live` or "
                                  "`test`) and give its signing secret as the tenant's `stripe_webhook_secret` "
                                  "in that mode. 400 `signature_invalid`: not signed with it, or older than "
                                  "5 minutes; 404: no such tenant, or no signing secret in that mode.")
@blp.response(200, StripeEventReceiptSchema)
def receive(tenant_id: str, mode: str):
    """Receive an event from Stripe."""
    return stripe_events.receive_event(tenant_id, mode, request.get_data(cache=True),
                                       request.headers.get("Stripe-Signature"), adapters.current())
