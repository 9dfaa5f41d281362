"""Finance's sign-in and its session.

An admin API key signs in: it is checked by the API's own key lookup (auth.authenticate). The
session is kept server-side (finance_sessions: the admin key that signed in, tenant, mode,
created_at, expires_at, revoked_at), and the cookie carries only its random token, of which the
table keeps a hash, never the key's secret. Every request reads the session row again
(service.live_session, as of the app's clock): signing out revokes it, revoking the key that
signed in ends it, and it expires FINANCE_SESSION_LIFETIME after signing in, whatever a copy of
the cookie says. The cookie is Flask's signed cookie, sent only under /finance, HttpOnly,
SameSite=Lax, Secure over https (its signed timestamp is checked against the lifetime too).

CSRF: each session holds a random token, put in every form as a hidden field; a POST whose
field does not match it (hmac.compare_digest) is refused before its view runs. Signing in
replaces the session (and its token), so a session fixed before sign-in is worth nothing."""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

from .. import auth
from ..errors import RateLimited, Unauthenticated
from . import service

PATH = "/finance"
COOKIE_NAME = "aggregator_finance"
DEFAULT_LIFETIME = timedelta(hours=8)


class SignInRefused(Exception):
    """The key cannot sign in to finance's pages; the message says why, `http_status` how to
    answer, `headers` what goes with it (Retry-After when throttled)."""

    def __init__(self, message: str, http_status: int, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.headers = headers or {}


def sign_in(secret: str) -> auth.Principal:
    """Start a session for an admin key (SignInRefused for any other, or none, or while this
    address or key prefix is throttled for failing too often)."""
    try:
        principal = auth.authenticate_request(f"Bearer {secret.strip()}")  # the API's one key check, throttled
    except Unauthenticated:
        raise SignInRefused("This key is unknown or has been revoked.", 401) from None
    except RateLimited as throttled:
        raise SignInRefused(f"Too many failed sign-ins; try again in {throttled.retry_after} seconds.", 429,
                            throttled.headers) from None
    if principal.role != "admin":
        raise SignInRefused(f"This is a {principal.role} key: finance signs in with an admin key.", 403)
    now = _now()
    if session.get("sid"):
        service.end_session(session["sid"], now)  # signing in again replaces the session
    token = service.start_session(principal, now, current_app.config["FINANCE_SESSION_LIFETIME"])
    session.clear()
    session.permanent = True
    session.update(sid=token, csrf=secrets.token_urlsafe(32))
    return principal


def signed_in() -> auth.Principal | None:
    """The principal of this request's session (None: not signed in, or the session has ended:
    signed out, expired, or its key revoked)."""
    token = session.get("sid")
    if not token:
        return None
    alive = service.live_session(token, _now())
    if alive is None:
        session.clear()
        return None
    remembered = auth.Principal(alive.tenant_id, alive.livemode, "admin", None, alive.key_id, verified=False)
    try:
        principal = auth.verified(remembered)  # the key as it is now, and the tenant's calendar
    except Unauthenticated:  # pragma: no cover - revoked between the two reads
        session.clear()
        return None
    if (principal.role, principal.tenant_id, principal.livemode) != ("admin", remembered.tenant_id,
                                                                     remembered.livemode):
        session.clear()  # pragma: no cover - a key's tenant, mode and role never change
        return None
    return principal


def sign_out() -> None:
    """End the session for good: its row is revoked, so a copy of the cookie is worth nothing."""
    token = session.get("sid")
    if token:
        service.end_session(token, _now())
    session.clear()


def _now():
    """The app's clock (real time in production; the tests' fixed clock), not a tenant's test
    clock: a session's lifetime is wall-clock time, whatever the tenant's test clock says."""
    return current_app.extensions["aggregator.adapters"].clocks.base.now()


def csrf_token() -> str:
    """This session's CSRF token (made on first use: the sign-in form has one too)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def csrf_matches(sent: str | None) -> bool:
    expected = session.get("csrf")
    return bool(expected and sent) and hmac.compare_digest(expected.encode(), sent.encode())


class FinanceSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, opened only for finance's pages (the API is stateless and
    pays nothing for it), signed with a key derived from the vault's (SECRET_KEY if set), and
    Secure whenever the request came over https (FINANCE_COOKIE_SECURE: None, the default,
    follows the request; True or False force it)."""

    def open_session(self, app: Flask, request):
        if not request.path.startswith(PATH + "/"):
            return None  # a null session
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask):
        if not app.secret_key:
            app.secret_key = _derived_secret(app)
        return super().get_signing_serializer(app)

    def should_set_cookie(self, app: Flask, session) -> bool:
        return session.modified  # a lifetime from signing in (or the last action), not sliding with every page

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE_NAME

    def get_cookie_path(self, app: Flask) -> str:
        return PATH

    def get_cookie_httponly(self, app: Flask) -> bool:
        return True

    def get_cookie_samesite(self, app: Flask) -> str:
        return app.config.get("FINANCE_COOKIE_SAMESITE") or "Lax"

    def get_cookie_secure(self, app: Flask) -> bool:
        forced = app.config.get("FINANCE_COOKIE_SECURE")
        return request.is_secure if forced is None else bool(forced)


def _derived_secret(app: Flask) -> bytes:
    """The session's signing key: HMAC of the vault's sealing key (AGGREGATOR_SECRET_KEYS, or
    the generated key file), so there is no second secret to configure."""
    return app.extensions["aggregator.adapters"].vault.derive_key(b"aggregator finance session v1")


def init_app(app: Flask) -> None:
    app.session_interface = FinanceSessionInterface()
    app.config.setdefault("FINANCE_COOKIE_SECURE", None)
    app.config["PERMANENT_SESSION_LIFETIME"] = app.config.setdefault("FINANCE_SESSION_LIFETIME", DEFAULT_LIFETIME)

