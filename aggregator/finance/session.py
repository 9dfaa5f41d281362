"""Finance's sign-in and its session.

An admin API key signs in: it is checked by the API's own key lookup (auth.authenticate), and
the session keeps only what identifies it (its id, tenant and mode), never the secret. The
session is Flask's signed cookie, sent only under /finance, HttpOnly, SameSite=Lax, Secure over
https; it expires FINANCE_SESSION_LIFETIME after signing in or the last action (also enforced
on its signed timestamp). Every request reads the key again by its id (auth.verified): a
revoked key ends its sessions at once.

CSRF: each session holds a random token, put in every form as a hidden field; a POST whose
field does not match it (hmac.compare_digest) is refused before its view runs. Signing in
replaces the session (and its token), so a session fixed before sign-in is worth nothing."""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface

from .. import auth
from ..errors import RateLimited, Unauthenticated

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
    session.clear()
    session.permanent = True
    session.update(key_id=principal.key_id, tenant_id=principal.tenant_id, livemode=principal.livemode,
                   csrf=secrets.token_urlsafe(32))
    return principal


def signed_in() -> auth.Principal | None:
    """The session's principal, read again from its key (None: not signed in, or the key has
    been revoked since, which ends the session)."""
    key_id = session.get("key_id")
    if not key_id:
        return None
    remembered = auth.Principal(session["tenant_id"], session["livemode"], "admin", None, key_id, verified=False)
    try:
        principal = auth.verified(remembered)
    except Unauthenticated:
        session.clear()
        return None
    if (principal.role, principal.tenant_id, principal.livemode) != ("admin", remembered.tenant_id,
                                                                     remembered.livemode):
        session.clear()  # pragma: no cover - a key's tenant, mode and role never change
        return None
    return principal


def sign_out() -> None:
    session.clear()


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

