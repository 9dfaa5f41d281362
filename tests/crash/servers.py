"""The real servers a crash run talks to, started once for many runs: localstripe, the Stripe
peer, an SMTP server and a webhook receiver; and the harness's own app on a migrated database."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa


class Servers:
    def __enter__(self) -> "Servers":
        from tests.localstripe_server import LocalStripe
        from tests.smtp_server import SmtpServer
        from tests.stripe_peer import PeerServer
        from tests.webhook_receiver import Receiver

        self.localstripe = LocalStripe()
        self.peer = PeerServer()
        self.smtp = SmtpServer().__enter__()
        self.receiver = Receiver()
        return self

    def all(self) -> tuple:
        return self.localstripe, self.peer, self.smtp, self.receiver

    def __exit__(self, *exc) -> None:
        self.receiver.close()
        self.smtp.__exit__()
        self.peer.stop()
        self.localstripe.stop()


def migrated_app(database_url: str, folder: Path, *, reset: bool = True):
    """The harness's app (a system clock; tenants' test clocks drive the cycle) on `database_url`,
    its schema dropped and migrated when `reset`. -> (app, the secret key the workers share)"""
    import flask_migrate
    from cryptography.fernet import Fernet

    from aggregator import create_app
    from aggregator.config import Settings

    if reset:
        engine = sa.create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
    secret_key = Fernet.generate_key().decode()
    settings = Settings(database_url=database_url, storage_dir=folder / "storage", secret_keys=(secret_key,),
                        webhooks_allow_private=True, stripe_tenant_api_base=True,
                        secret_key_file=folder / "secret.key")
    app = create_app({"SETTINGS": settings})
    if reset:
        with app.app_context():
            flask_migrate.upgrade()
    return app, secret_key
