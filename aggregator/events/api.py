"""The events of the caller's tenant and mode (a provider key: those about that provider)."""
from __future__ import annotations

from ..fields import page_schema
from ..web import Blueprint, current, requires
from . import service
from .schemas import EventListArgs, EventSchema

blp = Blueprint("events", __name__, url_prefix="/v1", description="Events")


@blp.route("/events", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(EventListArgs(), location="query")
@blp.response(200, page_schema(EventSchema, "EventPage"))
def list_events(args):
    """Newest first; filter `type` (an event type, or a prefix such as `invoice.*`)."""
    return service.list_events(current(), **args)


@blp.route("/events/<event_id>", methods=["GET"])
@requires("admin", "provider")
@blp.response(200, EventSchema)
def get_event(event_id):
    return service.get_event(current(), event_id)
