"""Small pieces every blueprint uses: authentication decorators, the clock, secrets once."""
from __future__ import annotations

import functools
from datetime import datetime

from flask import current_app, g

from .auth import Principal, require_any
from .errors import Forbidden


def requires(*roles: str):
    """Authenticate the request and check the key's role before anything else is parsed."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            principal = require_any()
            if principal.role not in roles:
                raise Forbidden(f"This endpoint needs a key with the {' or '.join(roles)} role; "
                                f"the key used has the {principal.role} role.")
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current() -> Principal:
    return g.principal


def clock_now(principal: Principal) -> datetime:
    """The time for this principal: real time in live mode, the tenant's test clock in test mode."""
    return current_app.extensions["aggregator.clocks"].for_principal(principal).now()


class _WithSecret:
    """An object seen through a response schema, plus a secret shown only in this response."""

    def __init__(self, obj, **secrets):
        self._obj = obj
        self.__dict__.update(secrets)

    def __getattr__(self, name):
        return getattr(self._obj, name)


def with_secret(obj, **secrets):
    return _WithSecret(obj, **secrets)
