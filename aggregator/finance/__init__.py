"""Finance's pages: the payout review page, signed in with an admin API key (server-rendered
HTML under /finance, outside the API and its OpenAPI document)."""
from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from . import session, web

    session.init_app(app)
    app.register_blueprint(web.blp)
