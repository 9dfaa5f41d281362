"""All configuration comes from environment variables, read here and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_var_dir() -> Path:
    return PROJECT_ROOT / "var"


def var_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the service keeps its files by default (AGGREGATOR_VAR_DIR, else var/ in the
    project): the embedded database, storage, mail, the secret key, the demo's own folder."""
    env = os.environ if env is None else env
    return Path(env.get("AGGREGATOR_VAR_DIR") or _default_var_dir())


def default_database_url(var: Path) -> str:
    """The embedded SQLite database under a var folder."""
    return f"sqlite:///{var / 'aggregator.sqlite3'}"


@dataclass(frozen=True)
class Settings:
    database_url: str
    storage_dir: Path
    max_request_bytes: int = 4 * 1024 * 1024
    batch_limit: int = 1000
    # The worker (aggregator.worker): how often it looks for due lanes and drains its queues,
    # a lease for every claim instead of each claim's own (None; tests of kill -9 shorten it),
    # and how many worker processes gunicorn's master starts beside the API (bin/start: 1).
    tick_seconds: float = 30.0
    drain_seconds: float = 1.0
    lease_seconds: float | None = None
    embedded_workers: int = 0
    # Where prometheus_client's multiprocess mode keeps every process's metrics (its own
    # PROMETHEUS_MULTIPROC_DIR; None: each process serves its own, single-process mode).
    metrics_dir: Path | None = None
    db_pool_size: int = 5
    extra: dict = field(default_factory=dict)
    # Email: live mode's transport and test mode's (URLs: see aggregator/mail/mailer.py; unset:
    # a file sink under mail_dir/live and mail_dir/test), and the operator's sender address.
    smtp_url: str | None = None
    test_smtp_url: str | None = None
    email_from: str = "billing@localhost"
    mail_dir: Path | None = None  # default: "mail" next to storage_dir
    # Webhooks (and a tenant's own Stripe API address) may be sent to loopback and private
    # addresses (development, tests): never in production.
    webhooks_allow_private: bool = False
    # Stripe's API address for every tenant (localstripe in development and tests; None: Stripe),
    # and whether a tenant may set its own in test mode (checked as webhook addresses are).
    stripe_api_base: str | None = None
    stripe_tenant_api_base: bool = False
    # Fernet keys sealing secrets at rest (aggregator.vault): the first seals, all unseal. None
    # given: one generated into secret_key_file on first use.
    secret_keys: tuple[str, ...] = ()
    secret_key_file: Path = field(default_factory=lambda: _default_var_dir() / "secret.key")
    # Throttling (aggregator.throttle), in the `limits` library's notation ("20/minute",
    # "100/second;5000/minute"; "" turns a limit off): failed authentications per client address
    # and per key prefix, after which that address or prefix is answered 429 until the window
    # passes; requests per API key (off by default: with the database as storage every request
    # would write a row). The counters live in the service's database unless a Redis URL is given.
    auth_failures_per_address: str = "20/minute"
    auth_failures_per_key_prefix: str = "10/minute"
    key_rate_limit: str = ""
    ratelimit_storage_uri: str | None = None
    # How long a process trusts its own finding that an address or prefix is not blocked before
    # reading the shared counters again (the bound on how late a block reaches another process).
    ratelimit_recheck_seconds: float = 1.0
    # Serving (aggregator.serving, aggregator.front): how many proxies in front of the app may be
    # believed about the client's address and scheme (X-Forwarded-For/-Proto; 0: none, the app is
    # reached directly and such headers are the client's own), and bin/start's front: "nginx"
    # (buffers every request before a worker sees it) or "none", where it listens, where its
    # files go, and how long a client may take over its headers, between two reads of its body
    # and between two writes of the answer.
    trusted_proxies: int = 0
    front: str = "none"
    front_bind: str = "127.0.0.1:8000"
    front_dir: Path = field(default_factory=lambda: _default_var_dir() / "front")
    front_timeout_seconds: float = 10.0
    # The folder of the embedded defaults (database, storage, mail, key): a migration may create it.
    var_dir: Path = field(default_factory=_default_var_dir)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        var = var_dir(env)
        return cls(
            database_url=env.get("AGGREGATOR_DATABASE_URL") or default_database_url(var),
            storage_dir=Path(env.get("AGGREGATOR_STORAGE_DIR", var / "storage")),
            max_request_bytes=int(env.get("AGGREGATOR_MAX_REQUEST_BYTES", 4 * 1024 * 1024)),
            tick_seconds=float(env.get("AGGREGATOR_TICK_SECONDS", 30)),
            drain_seconds=float(env.get("AGGREGATOR_DRAIN_SECONDS", 1)),
            lease_seconds=float(env["AGGREGATOR_LEASE_SECONDS"]) if env.get("AGGREGATOR_LEASE_SECONDS") else None,
            embedded_workers=int(env.get("AGGREGATOR_EMBEDDED_WORKERS", 0)),
            metrics_dir=Path(env["PROMETHEUS_MULTIPROC_DIR"]) if env.get("PROMETHEUS_MULTIPROC_DIR") else None,
            db_pool_size=int(env.get("AGGREGATOR_DB_POOL_SIZE", 5)),
            smtp_url=env.get("AGGREGATOR_SMTP_URL") or None,
            test_smtp_url=env.get("AGGREGATOR_TEST_SMTP_URL") or None,
            email_from=env.get("AGGREGATOR_EMAIL_FROM") or "billing@localhost",
            mail_dir=var / "mail",
            webhooks_allow_private=env.get("AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
            stripe_api_base=env.get("AGGREGATOR_STRIPE_API_BASE") or None,
            stripe_tenant_api_base=env.get("AGGREGATOR_STRIPE_TENANT_API_BASE", "") in ("1", "true", "yes"),
            secret_keys=tuple(k.strip() for k in env.get("AGGREGATOR_SECRET_KEYS", "").split(",") if k.strip()),
            auth_failures_per_address=env.get("AGGREGATOR_AUTH_FAILURES_PER_ADDRESS", "20/minute"),
            auth_failures_per_key_prefix=env.get("AGGREGATOR_AUTH_FAILURES_PER_KEY_PREFIX", "10/minute"),
            key_rate_limit=env.get("AGGREGATOR_KEY_RATE_LIMIT", ""),
            ratelimit_storage_uri=env.get("AGGREGATOR_RATELIMIT_STORAGE_URI") or None,
            ratelimit_recheck_seconds=float(env.get("AGGREGATOR_RATELIMIT_RECHECK_SECONDS", 1)),
            trusted_proxies=int(env.get("AGGREGATOR_TRUSTED_PROXIES") or 0),
            front=env.get("AGGREGATOR_FRONT") or "none",
            front_bind=env.get("AGGREGATOR_FRONT_BIND") or "127.0.0.1:8000",
            front_dir=var / "front",
            front_timeout_seconds=float(env.get("AGGREGATOR_FRONT_TIMEOUT_SECONDS") or 10),
            secret_key_file=var / "secret.key",
            var_dir=var,
        )

    def flask_config(self) -> dict:
        engine_options: dict = {}
        if self.database_url.startswith("postgresql"):
            # No pre-ping round trip per request; connections are recycled instead.
            engine_options.update(pool_size=self.db_pool_size, max_overflow=10, pool_recycle=300)
        return {
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "MAX_CONTENT_LENGTH": self.max_request_bytes,
            "AGGREGATOR_SETTINGS": self,
            # OpenAPI (flask-smorest)
            "API_TITLE": "aggregator",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.1.0",
            "OPENAPI_URL_PREFIX": "/v1",
            "OPENAPI_JSON_PATH": "openapi.json",
            "JSON_SORT_KEYS": False,
        }
