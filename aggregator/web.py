"""Small pieces every blueprint uses: authentication decorators, the clock, secrets once."""
from __future__ import annotations

import functools
import json
import re
from datetime import datetime

import flask_smorest
import orjson
from flask import Flask, current_app, g, request
from flask.json.provider import DefaultJSONProvider
from flask_smorest import abort
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

from .auth import Principal, confirm, require_any
from .db import db
from .errors import Forbidden, InvalidInput, NotFound


def requires(*roles: str, recalled: bool = False):
    """Authenticate the request and check the key's role before anything else is parsed.

    `recalled=True` (the intake hot path) lets the view act on a principal recalled from memory
    (auth.recall), whose key the view's own statement checks again; any other outcome (an error
    raised by the view) is answered only after the key has been authenticated afresh, so a
    revoked key is told 401 whatever else was wrong."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            try:
                principal = require_any(recalled=recalled)
                if principal.role not in roles:
                    raise Forbidden(f"This endpoint needs a key with the {' or '.join(roles)} role; "
                                    f"the key used has the {principal.role} role.")
                return view(*args, **kwargs)
            except Exception:
                if recalled and "principal" in g and not g.principal.verified:
                    db.session.rollback()  # nothing of a failed request is kept; a clean transaction
                    confirm()
                raise

        wrapped.roles = roles  # read by the tests that call every endpoint with the right key
        return wrapped

    return decorate


def documents(arguments_decorator):
    """Use a flask-smorest `blp.arguments(...)` for the OpenAPI description only: the view parses
    the request itself (the intake hot path, where webargs' per-request work is too dear)."""

    def decorate(view):
        view._apidoc = arguments_decorator(view)._apidoc
        return view

    return decorate


def json_body():
    """The request's JSON body (None if it has none), or the 400 that webargs would answer."""
    if not request.is_json:
        return None
    try:
        return request.get_json()
    except BadRequest:
        abort(400, messages={"json": ["Invalid JSON body."]})


def header_text(name: str) -> str | None:
    """A request header as the UTF-8 text the client sent: WSGI hands header values over decoded
    as latin-1, so "é" would arrive as two characters ("Ã©"), unlike the same text in a JSON body."""
    value = request.headers.get(name)
    if value is None or value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise InvalidInput.on(name, "Not UTF-8 text.") from None


def current() -> Principal:
    return g.principal


def clock_now(principal: Principal) -> datetime:
    """The time for this principal: real time in live mode, the tenant's test clock in test mode."""
    return current_app.extensions["aggregator.adapters"].clocks.for_principal(principal).now()


class _WithSecret:
    """An object seen through a response schema, plus a secret shown only in this response."""

    def __init__(self, obj, **secrets):
        self._obj = obj
        self.__dict__.update(secrets)

    def __getattr__(self, name):
        return getattr(self._obj, name)


def with_secret(obj, **secrets):
    return _WithSecret(obj, **secrets)


def _unstorable(text: str) -> str | None:
    """Why `text` cannot be stored as text (PostgreSQL holds no NUL; UTF-8 no unpaired
    surrogate, which JSON's \\udXXX escapes can produce), or None."""
    if "\x00" in text:
        return "NUL characters are not allowed."
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "Unpaired surrogate characters are not allowed."
    return None


def _unstorable_path(value, path: str = "") -> tuple[str, str] | None:
    """The dotted path of the first string (or key) that cannot be stored, and why."""
    if isinstance(value, str):
        problem = _unstorable(value)
        return (path or "body", problem) if problem else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and (problem := _unstorable(key)):
            return path or "body", problem  # the object holding the key
        found = _unstorable_path(item, f"{path}.{key}" if path else str(key))
        if found:
            return found
    return None


def _may_hold_unstorable(body: bytes) -> bool:
    """False when no string parsed from this JSON body can hold a NUL or an unpaired surrogate:
    those come only from a \\u escape, a NUL byte (UTF-16/32 bodies have many) or a UTF-8
    surrogate encoding (lead byte ED), which the JSON decoder lets through."""
    return b"\x00" in body or b"\\u" in body or b"\xed" in body


def refuse_unusable_requests(app: Flask) -> None:
    """Refuse at the door, for every endpoint, what no endpoint can use, rather than fail deep
    inside: NUL characters (PostgreSQL text cannot hold them) and unpaired surrogates (nor can
    UTF-8) anywhere in the request, a body too large even when sent chunked, and a body that is
    not sent as JSON."""

    @app.before_request
    def _refuse_unusable():
        if "\x00" in request.path:
            raise NotFound("No such resource.")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise InvalidInput.on(name, "NUL characters are not allowed.")
        idempotency_key = request.headers.get("Idempotency-Key")
        if idempotency_key is not None and "\x00" in idempotency_key:
            raise InvalidInput.on("Idempotency-Key", "NUL characters are not allowed.")
        if request.content_length is None and "wsgi.input_terminated" in request.environ:
            _refuse_oversized_stream()
        if not request.is_json and request.method in ("POST", "PUT", "PATCH") and (
                request.content_length or (request.content_length is None and request.get_data(cache=True))) \
                and not getattr(app.view_functions.get(request.endpoint), "_takes_form", False):
            raise UnsupportedMediaType("Send the body as JSON, with 'Content-Type: application/json'.")
        if request.method in ("POST", "PUT", "PATCH") and not request.get_data(cache=True) \
                and _takes_required_body(app.view_functions.get(request.endpoint)):
            raise InvalidInput.on("body", "Send a JSON body (the change, the object): this request has none.",
                                  "body_missing")
        if request.is_json and _may_hold_unstorable(request.get_data(cache=True)):
            body = request.get_json(silent=True)
            items_key = getattr(app.view_functions.get(request.endpoint), "_items_one_by_one", None)
            try:
                if items_key and type(body) is dict and type(body.get(items_key)) is list:
                    # each item refused on its own (see items_one_by_one), the rest as a whole
                    g.unstorable_items = {i: found for i, item in enumerate(body[items_key])
                                          if (found := _unstorable_path(item))}
                    body = {k: v for k, v in body.items() if k != items_key}
                found = _unstorable_path(body)
            except RecursionError:  # parsed, but nested too deeply to walk: not a bill
                abort(400, messages={"json": ["JSON nested too deeply."]})
            if found:
                raise InvalidInput.on(*found)


def _takes_required_body(view) -> bool:
    """Whether the OpenAPI document says the request needs a body (flask-smorest's arguments of
    location json, required by default): a PATCH without one is refused, not taken as no change."""
    handler = getattr(getattr(view, "view_class", None), request.method.lower(), view)
    arguments = getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(a.get("in") == "json" and a.get("required", True) for a in arguments)


def takes_form(view):
    """Mark a view that reads an HTML form (finance's pages) rather than JSON: its POSTs are
    not refused for their content type (every other check above still applies)."""
    view._takes_form = True
    return view


def items_one_by_one(key: str):
    """Mark a view whose body's list `key` holds items accepted or refused one by one: a NUL or
    an unpaired surrogate in an item refuses that item only (see `unstorable_items`)."""

    def decorate(view):
        view._items_one_by_one = key
        return view

    return decorate


def unstorable_items() -> dict[int, InvalidInput]:
    """The refusals of an items_one_by_one view's items that hold a string that cannot be
    stored, by index."""
    return {i: InvalidInput.on(*found) for i, found in g.get("unstorable_items", {}).items()}


def _refuse_oversized_stream() -> None:
    """A body sent without Content-Length (chunked) is read only up to MAX_CONTENT_LENGTH by
    werkzeug, which then stops without an error: a longer body would be read cut short, as if
    that were all of it. Read it now and refuse it (413) if anything is left beyond the limit."""
    limit = request.max_content_length
    if limit is not None and len(request.get_data(cache=True)) >= limit \
            and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON, encoded and decoded by orjson (a batch of 1,000 bills spends about a fifth
    of its server time in the standard library's json). Whatever orjson handles differently
    goes the standard way, so the results are Flask's: a body orjson refuses (NaN, lone
    surrogates) or may read differently (integers beyond 64 bits, which it would turn into
    floats) is parsed by `json`;
    values it does not encode like Flask (dates, dataclasses, Decimal, subclasses) or at all
    are encoded by Flask's own provider. Output is UTF-8 rather than \\u-escaped ASCII."""

    _options = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                | orjson.OPT_PASSTHROUGH_SUBCLASS)

    def dumps(self, obj, **kwargs) -> str:
        if not kwargs.keys() <= {"separators", "indent"} or kwargs.get("indent") not in (None, 2):
            return super().dumps(obj, **kwargs)
        try:
            return orjson.dumps(obj, option=self._options
                                | (orjson.OPT_INDENT_2 if kwargs.get("indent") else 0)
                                | (orjson.OPT_SORT_KEYS if self.sort_keys else 0)).decode()
        except TypeError:  # a value orjson passes through or cannot encode
            return super().dumps(obj, **kwargs)

    def loads(self, s, **kwargs):
        try:
            if not kwargs and not _may_hold_big_int(s):
                try:
                    return orjson.loads(s)
                except orjson.JSONDecodeError:
                    pass  # the standard parser decides, and words any error
            return super().loads(s, **kwargs)
        except RecursionError:  # nested deeper than the parser (or the check) can follow
            raise ValueError("JSON nested too deeply.") from None


_BIG_INT = {bytes: re.compile(rb"[0-9]{19}"), str: re.compile(r"[0-9]{19}")}


def _may_hold_big_int(body) -> bool:
    """True if the JSON text may hold an integer beyond 64 bits, which orjson would read as a
    float and json as an int (a run of 19 digits; rarely a string's, which only costs speed)."""
    return _BIG_INT[str if isinstance(body, str) else bytes].search(body) is not None


class _ArgumentsParser(FlaskParser):
    """webargs' parser, reading JSON bodies as Flask's get_json does (FastJSONProvider): orjson,
    and the standard library for what orjson refuses or may read differently (including its
    reading of UTF-16/32 bodies and of lone surrogates, which the NUL check then refuses by
    field, as on the single-bill path)."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return super()._raw_load_json(req)
        body = req.get_data(cache=True)
        try:
            if not _may_hold_big_int(body):
                try:
                    return orjson.loads(body)
                except orjson.JSONDecodeError:
                    pass
            return json.loads(body)  # not UTF-8/16/32 text: a UnicodeDecodeError, which webargs answers
        except RecursionError:  # nested deeper than the parser (or the check) can follow
            raise json.JSONDecodeError("JSON nested too deeply", "[nested too deeply]", 0) from None


class Blueprint(flask_smorest.Blueprint):
    """Every area's blueprint: flask-smorest's, with the faster JSON body parser."""

    ARGUMENTS_PARSER = _ArgumentsParser()
