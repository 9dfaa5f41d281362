"""The metering API's contract: usage events in (one, or a batch judged item by item), usage
and events out."""
from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..fields import CalendarDate, reasonable_instant, text
from ..ingest.schemas import refusal
from ..openapi import DATE_1970_2200
from .events_service import UsageEventRequest

_EVENT_ID = validate.Length(min=1, max=255)


class _Properties(fields.Dict):
    """Flat properties: at most 20, keys ≤ 100 characters, values strings, whole numbers or
    booleans (a value a meter reads is a decimal string or a whole number)."""

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        if len(out) > 20:
            raise ValidationError("At most 20 properties.")
        for key, item in out.items():
            if not 1 <= len(key) <= 100:
                raise ValidationError("Property names have 1 to 100 characters.")
            if isinstance(item, (dict, list)) or isinstance(item, float):
                raise ValidationError(f"{key}: a property is a string, a whole number or a boolean "
                                      "(a decimal as a string such as \"12.5\").")
            if isinstance(item, int) and not isinstance(item, bool) and not -2**63 <= item < 2**63:
                raise ValidationError(f"{key}: a whole number of at most 64 bits.")
            if isinstance(item, str) and len(item) > 255:
                raise ValidationError(f"{key}: at most 255 characters.")
        return out


class UsageEventInputSchema(Schema):
    id = fields.String(required=True, validate=_EVENT_ID, metadata={
        "description": "Your idempotency key for the event: a replay answers the stored event; another payload "
                       "under the same id is a 409."})
    subscription = text(255, required=True, metadata={
        "description": "The subscription's id or your external billing id for it."})
    meter = fields.String(required=True, validate=validate.Length(min=1, max=100), metadata={
        "description": "The meter's code."})
    value = fields.Raw(load_default=None, metadata={
        "type": ["string", "integer"], "example": "12.5",  # apispec adds "null" (allow_none)
        "description": "A whole number or a decimal string with at most the meter's decimals (never a JSON "
                       "fraction). Count meters may leave it out; a meter with a `field` reads that property."})
    timestamp = fields.AwareDateTime(load_default=None, validate=reasonable_instant, metadata={
        "description": "When the usage happened (default: now on the tenant's clock). It decides the period; "
                       "at most 5 minutes ahead."})
    properties = _Properties(load_default=dict, metadata={
        "maxProperties": 20, "propertyNames": {"minLength": 1, "maxLength": 100},
        "additionalProperties": {"type": ["string", "integer", "boolean"], "maxLength": 255,
                                 "minimum": -2**63, "maximum": 2**63 - 1}})


class UsageEventBatchSchema(Schema):
    events = fields.List(fields.Raw(allow_none=True), required=True, validate=validate.Length(min=1, max=1000),
                         metadata={
        "description": "Up to 1,000 events, each accepted or refused on its own."})


class UsageEventSchema(Schema):
    id = fields.String()
    object = fields.Constant("usage_event")
    subscription = fields.String()
    meter = fields.String()
    value = fields.String(allow_none=True)
    timestamp = fields.DateTime()
    properties = fields.Dict()
    period = fields.Date()
    received_at = fields.DateTime()
    livemode = fields.Boolean()


class UsageEventResultSchema(Schema):
    status = fields.Integer()
    replayed = fields.Boolean()
    event = fields.Nested(UsageEventSchema)
    error = fields.Dict()


class UsageEventBatchResultSchema(Schema):
    data = fields.List(fields.Nested(UsageEventResultSchema))


class ComponentUsageSchema(Schema):
    component = fields.String()
    name = fields.String()
    meter = fields.String()
    unit = fields.String()
    dimension = fields.Dict()
    aggregation = fields.String()
    quantity = fields.String()
    included_units = fields.String()
    percent_used = fields.String(allow_none=True)
    amount = fields.String(metadata={"description": "What the usage so far costs, as the close would rate it."})
    thresholds = fields.List(fields.Integer())


    # a closed period's (?period=): what its close rated, from the usage charges
    breakdown = fields.List(fields.Dict(), metadata={
        "description": "A closed period's: the tier breakdown billed (units, unit_amount, flat_amount, amount)."})
    platform_fee = fields.String(allow_none=True, metadata={
        "description": "A closed period's: the parent plan's price of the same quantity (the platform's share)."})
    bill = fields.String(metadata={"description": "A closed period's: the bill the usage was rated into."})
    description = fields.String(metadata={"description": "A closed period's: the invoice line."})


class SubscriptionUsageSchema(Schema):
    object = fields.Constant("subscription_usage")
    subscription = fields.String()
    period = fields.String()
    period_end = fields.DateTime()
    as_of = fields.DateTime()
    closed = fields.Boolean(metadata={"description": "true: a closed period's usage as its close rated it."})
    currency = fields.String()
    data = fields.List(fields.Nested(ComponentUsageSchema))


class SubscriptionUsageArgs(Schema):
    period = fields.Date(metadata={
        "description": "A closed (or closing) period's start date, e.g. 2026-10-25: the usage its close rated "
                       "into bills. Without it: the open period's usage so far."})


_EVENT = UsageEventInputSchema()


def load_event(body: Any, now) -> UsageEventRequest:
    """One event's body as a request, or InvalidInput naming the refused fields."""
    if not isinstance(body, dict):
        raise refusal("Invalid usage event", {"_schema": ["An event is a JSON object."]})
    try:
        data = _EVENT.load(body)
    except ValidationError as exc:
        raise refusal("Invalid usage event", exc.messages) from None
    return UsageEventRequest(data["id"], data["subscription"], data["meter"], data["timestamp"] or now,
                             data["value"], data["properties"], timestamp_sent=data["timestamp"] is not None)


class UsageExportArgs(Schema):
    period = CalendarDate(required=True, metadata={"description": "The invoicing period (its start date).",
                                                   "pattern": DATE_1970_2200})
    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "parquet"]),
                           metadata={"description": "csv (streamed) or parquet"})
