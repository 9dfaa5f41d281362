"""`aggregator events …`: the outbox, as GET /v1/events shows it."""
from __future__ import annotations

import click

from ..commands import AreaGroup, json_option, list_options, print_object, print_page, tenant_scoped
from . import service
from .schemas import EVENT_TYPES, EventSchema

events = AreaGroup("events", help="What happened to a tenant's objects (the events webhooks deliver).")


@events.command("list")
@tenant_scoped
@list_options
@click.option("--type", "type_", default=None, metavar="TYPE",
              help=f"An event type or a prefix such as invoice.* ({', '.join(sorted(EVENT_TYPES))}).")
@json_option
def list_events(principal, limit, starting_after, type_, as_json):
    """The tenant's events in this mode, newest first."""
    page = service.list_events(principal, limit, starting_after, type_)
    print_page(page, EventSchema(), ["id", "type", "created", "provider"], f"Events ({principal.mode} mode)",
               as_json)


@events.command("show")
@tenant_scoped
@click.argument("event_id", metavar="EVENT")
@json_option
def show_event(principal, event_id, as_json):
    """One event, with the snapshot of its object."""
    print_object(service.get_event(principal, event_id), EventSchema(), "Event", as_json)
