"""Signing in to finance's payout review page with an admin key, its CSRF token read from the form."""
from __future__ import annotations

import re


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client, key: str, **kw):
    page = client.get("/finance/login", **kw)
    return client.post("/finance/login", data={"api_key": key, "csrf_token": csrf_of(page.text)}, **kw)
