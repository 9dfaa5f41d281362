"""Errors as HTTP responses: domain errors through errors.HTTP_TABLE, and HTTP errors raised by
Flask, werkzeug and webargs, all in the one JSON shape of aggregator.errors."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import sqlalchemy as sa
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from .errors import _HTTP_TYPES, DomainError, describe, error_object, validation_fields

log = logging.getLogger(__name__)

#: The `code` of an HTTP error that no domain error describes.
_HTTP_CODES = {
    400: "bad_request",
    404: "unknown_url",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def error_body(status: int, type_: str, message: str, code: str | None = None,
               fields: Mapping[str, Any] | None = None):
    response = jsonify({"error": error_object(type_, message, code, fields)})
    response.status_code = status
    return response


def domain_error_response(error: DomainError):
    status, body = describe(error)
    response = jsonify({"error": body})
    response.status_code = status
    response.headers.update(getattr(error, "headers", None) or {})  # RateLimited's Retry-After
    return response


def http_exception_response(exc: HTTPException):
    response = _http_exception_body(exc)
    for name, value in exc.get_headers():  # e.g. a 405's Allow (RFC 9110), but not its Content-Type
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _http_exception_body(exc: HTTPException):
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if status == 400 and messages and "json" in messages:
        return error_body(400, "invalid_request_error", "The request body is not valid JSON.",
                          "invalid_json")
    if messages:
        fields = validation_fields(messages)
        summary = "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items())
        return error_body(status, _HTTP_TYPES.get(status, "invalid_request_error"),
                          f"Invalid request: {summary}", "invalid", fields)
    if status == 413:
        return error_body(413, "request_too_large", "The request body is too large.", _HTTP_CODES[413])
    return error_body(status, _HTTP_TYPES.get(status, "api_error"), exc.description or exc.name,
                      _HTTP_CODES.get(status, "api_error" if status >= 500 else "invalid_request"))


def database_unreachable(exc: BaseException) -> bool:
    """The connection to the database was lost or could not be made (a restart, a network cut):
    not the statement's fault, so the request may simply be retried. Errors the server answered
    (they carry an SQLSTATE: a deadlock, a constraint) are not this."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return (isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError))
            and type(exc.orig).__module__.startswith("psycopg") and getattr(exc.orig, "sqlstate", None) is None)


def register(app: Flask) -> None:
    app.register_error_handler(DomainError, domain_error_response)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_exception_response(exc)
        if database_unreachable(exc):
            log.error("the database is unreachable: %s", exc)
            response = error_body(503, "api_error", "The database is unreachable; try again shortly (an "
                                  "Idempotency-Key makes a retry safe).", "database_unavailable")
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error")
        return error_body(500, "api_error", "An internal error occurred; it has been logged.", "internal_error")
