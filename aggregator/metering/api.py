"""Metering API: providers send usage events; providers and admins read a subscription's usage
and export a period's."""
from __future__ import annotations

from flask import Response, current_app, stream_with_context

from ..web import Blueprint, clock_now, current, documents, json_body, requires
from . import events_service, export_service, usage_service
from .batch import judge_batch
from .schemas import (
    SubscriptionUsageArgs,
    SubscriptionUsageSchema,
    UsageEventBatchResultSchema,
    UsageEventBatchSchema,
    UsageEventInputSchema,
    UsageEventSchema,
    UsageExportArgs,
    load_event,
)

blp = Blueprint("metering", __name__, url_prefix="/v1", description="Usage events and usage")


@blp.route("/usage_events", methods=["POST"])
@requires("provider")
@documents(blp.arguments(UsageEventInputSchema()))
@blp.response(201, UsageEventSchema)
def create_usage_event():
    principal = current()
    now = clock_now(principal)
    outcome = events_service.record_usage_events(principal, [load_event(json_body(), now)], now)[0]
    if outcome.error:
        raise outcome.error
    response = current_app.json.response(events_service.event_document(outcome.event))
    response.status_code = 201
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@blp.route("/usage_events/batch", methods=["POST"])
@requires("provider")
@blp.arguments(UsageEventBatchSchema())
@blp.response(200, UsageEventBatchResultSchema)
def create_usage_events(body):
    """Up to 1,000 events, each accepted or refused on its own (as bills are)."""
    principal = current()
    now = clock_now(principal)
    results = judge_batch(principal, body["events"], now)
    return current_app.json.response({"data": results})


@blp.route("/subscriptions/<ref>/usage", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(SubscriptionUsageArgs(), location="query")
@blp.response(200, SubscriptionUsageSchema)
def subscription_usage(args, ref):
    """Per usage component: the quantity so far this period, included units, % used, amount so far;
    or, with `period`, what a closed period's close rated (quantity, breakdown, amount, bill)."""
    principal = current()
    if "period" in args:
        return usage_service.rated_usage_of(principal, ref, args["period"])
    return usage_service.current_usage(principal, ref, clock_now(principal))


@blp.route("/usage_export", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(UsageExportArgs(), location="query")
@blp.doc(responses={"200": {
    "description": "One row per (subscription, meter, dimension values, UTC hour)",
    "headers": {"Usage-As-Of": {"description": "The instant the quantities run to (now, or the period's end)",
                                "schema": {"type": "string", "format": "date-time"}},
                "Period-Status": {"description": "The period's status",
                                  "schema": {"type": "string", "enum": ["open", "closing", "closed"]}}},
    "content": {"text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}}})
def usage_export(args):
    """A period's usage, hour by hour (docs/metering.md, Usage export): an admin key the
    tenant's in its mode, a provider key its own subscriptions'. `format=csv` (the default) is
    streamed; `format=parquet` is written in row groups. A period still open is exported as of
    now (`Usage-As-Of`; `Period-Status` says whether it is closed)."""
    principal = current()
    export = export_service.usage_export(principal, args["period"], clock_now(principal))
    form = args["format"]
    body = (export_service.csv_chunks(export) if form == "csv"
            else export_service.parquet_chunks(export))
    return Response(stream_with_context(body), mimetype=export_service.MEDIA_TYPES[form], headers={
        "Content-Disposition": f'attachment; filename="{export.name}.{form}"',
        "Usage-As-Of": export.as_of.isoformat(), "Period-Status": export.status})
