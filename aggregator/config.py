"""All configuration comes from environment variables, read here and nowhere else."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_var_dir() -> Path:
    return PROJECT_ROOT / "var"


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
    # Webhooks may be sent to loopback and private addresses (development, tests): never in production.
    webhooks_allow_private: bool = False
    # Fernet keys sealing secrets at rest (aggregator.vault): the first seals, all unseal. None
    # given: one generated into secret_key_file on first use.
    secret_keys: tuple[str, ...] = ()
    secret_key_file: Path = field(default_factory=lambda: _default_var_dir() / "secret.key")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        var_dir = Path(env.get("AGGREGATOR_VAR_DIR", _default_var_dir()))
        return cls(
            database_url=env.get(
                "AGGREGATOR_DATABASE_URL", f"sqlite:///{var_dir / 'aggregator.sqlite3'}"
            ),
            storage_dir=Path(env.get("AGGREGATOR_STORAGE_DIR", var_dir / "storage")),
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
            mail_dir=var_dir / "mail",
            webhooks_allow_private=env.get("AGGREGATOR_WEBHOOKS_ALLOW_PRIVATE", "") in ("1", "true", "yes"),
            secret_keys=tuple(k.strip() for k in env.get("AGGREGATOR_SECRET_KEYS", "").split(",") if k.strip()),
            secret_key_file=var_dir / "secret.key",
        )

    def mailer(self):
        """The mailer adapter these settings describe."""
        from .mail.mailer import Mailer

        return Mailer.from_urls(self.smtp_url, self.test_smtp_url, self.email_from,
                                self.mail_dir or self.storage_dir.parent / "mail")

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
