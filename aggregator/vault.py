"""Secrets at rest: text sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`)
before it is stored, unsealed when it is used (webhook signing secrets; later payment keys).

Keys come from AGGREGATOR_SECRET_KEYS: comma-separated Fernet keys (make one with
`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`).
The first seals; every one unseals, so a key is rotated by putting a new one first and keeping
the old ones until what they sealed has been sealed again. Without the variable (the embedded
first run) one key is generated into var/secret.key (mode 0600) and reused from then on."""
from __future__ import annotations

import hashlib
import hmac
import os
import threading
from pathlib import Path
from typing import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class VaultError(Exception):
    """A sealed text that none of the keys opens (a key missing from AGGREGATOR_SECRET_KEYS)."""


class Vault:
    def __init__(self, keys: Sequence[str] = (), key_file: Path | None = None):
        if not keys and key_file is None:
            raise ValueError("A vault needs keys or a key file")
        self._keys, self._key_file = tuple(keys), key_file
        self._fernet: MultiFernet | None = None
        self._lock = threading.Lock()

    def seal(self, text: str) -> str:
        return self._multi().encrypt(text.encode()).decode()

    def unseal(self, sealed: str) -> str:
        try:
            return self._multi().decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise VaultError("None of the secret keys (AGGREGATOR_SECRET_KEYS) opens this sealed secret.") from None

    def derive_key(self, purpose: bytes) -> bytes:
        """A key for another use (signing session cookies) derived from the sealing key: HMAC-SHA256
        of `purpose` under it, so there is no second secret to configure or rotate."""
        key = self._keys[0] if self._keys else _key_from_file(self._key_file)
        return hmac.new(key.encode(), purpose, hashlib.sha256).digest()

    def _multi(self) -> MultiFernet:
        if self._fernet is None:  # built on first use: the key file is made only when needed
            with self._lock:
                if self._fernet is None:
                    keys = self._keys or (_key_from_file(self._key_file),)
                    self._fernet = MultiFernet([Fernet(key) for key in keys])
        return self._fernet


def _key_from_file(path: Path) -> str:
    """The key stored in `path`, generated there (readable by this user only) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    draft = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    try:
        os.link(draft, path)  # whole or not at all; refused if another process was first
    except FileExistsError:
        key = path.read_text().strip()  # theirs
    finally:
        draft.unlink()
    return key
