"""Standard Webhooks signatures (https://www.standardwebhooks.com): pure functions, no I/O.

A secret is `whsec_` + base64 of random bytes; the HMAC key is those bytes. A request carries
`webhook-id` (the event id: stable across retries, what receivers dedupe on), `webhook-timestamp`
(unix seconds of the attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, one per secret in force, separated by spaces (while a rotated secret
is still honoured, both sign)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from typing import Sequence

SECRET_PREFIX = "whsec_"  # nosec B105  # the secrets' prefix (Standard Webhooks), not a secret
SECRET_BYTES = 32  # the spec asks for 24 to 64


class MalformedSecret(ValueError):
    pass


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret: the bytes its base64 part encodes."""
    if not secret.startswith(SECRET_PREFIX):
        raise MalformedSecret("A webhook secret starts with 'whsec_'.")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except binascii.Error as exc:
        raise MalformedSecret("A webhook secret's part after 'whsec_' is base64.") from exc


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    return "v1," + base64.b64encode(hmac.new(secret_key(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secrets_in_force: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of a request carrying `body`, signed with every secret in force."""
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_in_force)}
