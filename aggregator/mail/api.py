"""The tenant's email deliveries in the caller's mode (admin keys)."""
from __future__ import annotations

from ..fields import page_schema
from ..web import Blueprint, current, requires
from . import delivery_service
from .schemas import EmailDeliveryListArgs, EmailDeliverySchema

blp = Blueprint("mail", __name__, url_prefix="/v1", description="Email deliveries")


@blp.route("/email_deliveries", methods=["GET"])
@requires("admin")
@blp.arguments(EmailDeliveryListArgs(), location="query")
@blp.response(200, page_schema(EmailDeliverySchema, "EmailDeliveryPage"))
def list_email_deliveries(args):
    """Newest first; filters `status`, `event`, `invoice`, `recipient`."""
    return delivery_service.list_deliveries(current(), **args)


@blp.route("/email_deliveries/<delivery_id>", methods=["GET"])
@requires("admin")
@blp.response(200, EmailDeliverySchema)
def get_email_delivery(delivery_id):
    return delivery_service.get_delivery(current(), delivery_id)
