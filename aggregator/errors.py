"""Domain errors and the one table that turns them into HTTP responses.

Use cases raise subclasses of the categories below; they never know about HTTP (this module
imports no Flask: aggregator.error_responses turns these into responses). Every error the API
returns has one JSON shape:

    {"error": {"type": "validation_error", "code": "...", "message": "...",
               "fields": {"amount": ["..."]}}}
"""
from __future__ import annotations

from typing import Any, Mapping, Self

from marshmallow import Schema, fields


class DomainError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, fields: Mapping[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.fields = dict(fields) if fields else None

    @classmethod
    def on(cls, field: str, message: str, code: str | None = None) -> Self:
        """The error, naming the request's `field` at fault."""
        return cls(message, code=code, fields={field: [message]})


class InvalidInput(DomainError):
    """The request is well formed but a value in it is not acceptable (422)."""

    code = "invalid"


class InvalidRequest(DomainError):
    """The request cannot be taken as it is: not what was signed, or not what the URL says (400)."""

    code = "invalid_request"


class NotFound(DomainError):
    code = "resource_missing"


class Conflict(DomainError):
    code = "conflict"


class Unauthenticated(DomainError):
    code = "invalid_api_key"


class Forbidden(DomainError):
    code = "wrong_role"


class RateLimited(DomainError):
    """Too many requests, or too many failed authentications, from this caller for now (429).
    `headers` go with the answer: Retry-After (seconds), and X-RateLimit-* for a key's limit."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, headers: Mapping[str, str] | None = None,
                 code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.headers = {**(headers or {}), "Retry-After": str(retry_after)}


#: category -> (HTTP status, error type)
HTTP_TABLE: dict[type[DomainError], tuple[int, str]] = {
    InvalidInput: (422, "validation_error"),
    InvalidRequest: (400, "invalid_request_error"),
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    Unauthenticated: (401, "authentication_error"),
    Forbidden: (403, "permission_error"),
    RateLimited: (429, "rate_limit_error"),
}

_HTTP_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "validation_error",
    429: "rate_limit_error",
}


class ErrorObjectSchema(Schema):
    """What went wrong (documentation of `error_object`)."""

    type = fields.String(required=True, metadata={
        "description": "invalid_request_error, validation_error, authentication_error, "
                       "permission_error, not_found, conflict, request_too_large, rate_limit_error, api_error, ..."})
    message = fields.String(required=True, metadata={"description": "For people; may change."})
    code = fields.String(metadata={"description": "For programs, e.g. idempotency_key_reused."})
    fields_ = fields.Dict(data_key="fields", keys=fields.String(), values=fields.List(fields.String()),
                          metadata={"description": "Messages per field at fault; nested fields dotted."})


class ErrorSchema(Schema):
    """The one shape of every error answer (the OpenAPI description's error responses)."""

    error = fields.Nested(ErrorObjectSchema, required=True)


def error_object(type_: str, message: str, code: str | None = None,
                 fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    if fields:
        error["fields"] = fields
    return error


def describe(error: DomainError) -> tuple[int, dict[str, Any]]:
    """The HTTP status and error object for a domain error (also used per item in batches)."""
    for category in type(error).__mro__:
        if category in HTTP_TABLE:
            status, type_ = HTTP_TABLE[category]
            return status, error_object(type_, error.message, error.code, error.fields)
    raise TypeError(f"{type(error).__name__} has no HTTP mapping")  # pragma: no cover


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested {"a": {"b": ["msg"]}} -> {"a.b": ["msg"]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                name = prefix or "body"
            flat.update(flatten_messages(value, name))
    elif isinstance(messages, (list, tuple)) and all(isinstance(m, str) for m in messages):
        flat.setdefault(prefix or "body", []).extend(messages)
    elif isinstance(messages, (list, tuple)):
        for value in messages:
            flat.update(flatten_messages(value, prefix))
    else:
        flat.setdefault(prefix or "body", []).append(str(messages))
    return flat


def validation_fields(messages: Mapping[str, Any]) -> dict[str, list[str]]:
    """webargs groups messages by location ({"json": ..., "query": ...}); drop that level."""
    flat: dict[str, list[str]] = {}
    for inner in messages.values():
        flat.update(flatten_messages(inner))
    return flat
