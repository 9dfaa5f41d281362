from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from ..events.schemas import EVENT_TYPES
from ..fields import ListArgs, Metadata, optional_text
from ..outbound.addresses import MAX_URL_LENGTH
from .transitions import ENDPOINT_DISABLED

#: Every event type an endpoint may subscribe to (the webhooks' own among them).
WEBHOOK_EVENT_TYPES = EVENT_TYPES
if ENDPOINT_DISABLED not in WEBHOOK_EVENT_TYPES:  # checked even under python -O
    raise RuntimeError(f"{ENDPOINT_DISABLED} must be an event type endpoints can subscribe to")


#: What addresses.check_url takes, less the literal addresses it refuses: a scheme, a host, no
#: user or password, a port from 1, no fragment, no space or control character.
_NOT_SPACE = r"\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace, controls
URL_PATTERN = (rf"^https?://[^{_NOT_SPACE}/?#@:\[\]]+"
               r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
               rf"([/?][^{_NOT_SPACE}#]*)?$")


class WebhookEndpointSchema(Schema):
    """A URL the events of this tenant and mode (a provider key: about that provider) are sent to."""

    id = fields.String(dump_only=True, metadata={"description": "we_…"})
    object = fields.Constant("webhook_endpoint", dump_only=True)
    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_LENGTH), metadata={
        "description": "https:// (or http://); never a loopback, private or link-local address.",
        "pattern": URL_PATTERN})
    enabled_events = fields.List(
        fields.String(metadata={"enum": ["*", *sorted(WEBHOOK_EVENT_TYPES)]}), required=True,
        validate=validate.Length(min=1, max=100), metadata={
            "description": "Event types to send, or [\"*\"] for every one.",
            "anyOf": [{"items": {"not": {"enum": ["*"]}}}, {"maxItems": 1}]})  # "*" stands alone
    description = optional_text(500)
    status = fields.String(validate=validate.OneOf(["enabled", "disabled"]), metadata={
        "description": "A disabled endpoint is sent nothing; the service disables one whose deliveries "
                       "failed for about three days."})
    disabled_reason = fields.String(dump_only=True, allow_none=True)
    metadata = Metadata(attribute="metadata_")
    livemode = fields.Boolean(dump_only=True)
    provider = fields.String(attribute="provider_id", dump_only=True, allow_none=True, metadata={
        "description": "The provider whose endpoint this is (it receives only events about that provider)."})
    created = fields.DateTime(attribute="created_at", dump_only=True)
    previous_secret_expires_at = fields.DateTime(dump_only=True, allow_none=True, metadata={
        "description": "After a rotation, the previous secret signs too until then."})

    @validates("enabled_events")
    def _known_types(self, value, **kwargs):
        unknown = sorted(set(value) - set(WEBHOOK_EVENT_TYPES) - {"*"})
        if unknown:
            raise ValidationError(f"Unknown event types: {', '.join(unknown)}. Known: "
                                  f"{', '.join(sorted(WEBHOOK_EVENT_TYPES))}, or \"*\" for all.")
        if "*" in value and len(value) > 1:
            raise ValidationError('"*" (every event) stands alone.')


class WebhookEndpointWithSecretSchema(WebhookEndpointSchema):
    secret = fields.String(dump_only=True, metadata={
        "description": "whsec_…: verifies the deliveries' signatures. Shown only now: store it."})


class WebhookAttemptSchema(Schema):
    attempted_at = fields.DateTime()
    status_code = fields.Integer(allow_none=True, metadata={"description": "None: no answer (see error)."})
    duration_ms = fields.Integer()
    error = fields.String(allow_none=True)


class WebhookDeliverySchema(Schema):
    """One event sent (or to be sent) to one endpoint, with every attempt."""

    id = fields.String()
    object = fields.Constant("webhook_delivery")
    endpoint = fields.String(attribute="endpoint_id")
    event = fields.String(attribute="event_id")
    event_type = fields.String()
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    resend = fields.Boolean(metadata={"description": "Made by POST /v1/events/{id}/resend."})
    created = fields.DateTime(attribute="created_at")
    next_attempt_at = fields.DateTime(allow_none=True)
    attempt_count = fields.Integer()
    status_code = fields.Method("_last_status_code", metadata={"description": "Of the last attempt."})
    duration_ms = fields.Method("_last_duration")
    error = fields.Method("_last_error")
    attempted_at = fields.Method("_last_attempted_at")
    attempts = fields.List(fields.Nested(WebhookAttemptSchema))

    def _last(self, delivery, name):
        return getattr(delivery.attempts[-1], name) if delivery.attempts else None

    def _last_status_code(self, delivery):
        return self._last(delivery, "status_code")

    def _last_duration(self, delivery):
        return self._last(delivery, "duration_ms")

    def _last_error(self, delivery):
        return self._last(delivery, "error")

    def _last_attempted_at(self, delivery):
        at = self._last(delivery, "attempted_at")
        return at.isoformat() if at else None


class DeliveryListArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))


class ResendSchema(Schema):
    endpoint = fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "we_…: only this endpoint (otherwise every enabled endpoint that takes the event)."})


class ResendResultSchema(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(WebhookDeliverySchema))
