"""aggregator: consolidated single billing for marketplace platforms."""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask
from flask_migrate import Migrate
from apispec.ext.marshmallow import MarshmallowPlugin
from flask_smorest import Api
from werkzeug.middleware.proxy_fix import ProxyFix

from .adapters import Adapters
from .clock import Clocks, SystemClock
from . import db as database
from . import openapi, throttle, wiring
from .config import PROJECT_ROOT, Settings
from .errors import ErrorSchema
from .consolidate.render import WeasyPrintRenderer
from .storage import LocalStorage
from .payments.stripe import StripeGateways
from .vault import Vault
from .webhooks.sender import WebhookSender
from .web import FastJSONProvider, refuse_unusable_requests


def _schema_name(schema) -> str:
    """OpenAPI component names: 'Tenant' for TenantSchema, 'TenantUpdate' for its partial form."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema")
    return f"{name}Update" if getattr(schema, "partial", False) else name


class _Api(Api):
    ERROR_SCHEMA = ErrorSchema  # documents the error responses as they are

    def handle_http_exception(self, error):
        from .error_responses import http_exception_response

        return http_exception_response(error)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The application factory. `config` overrides settings read from the environment; a
    "CLOCK" entry replaces the system clock and "ADAPTERS" entries replace adapters (tests)."""
    config = dict(config or {})
    wiring.wire()
    settings = config.pop("SETTINGS", None) or Settings.from_env()
    app = Flask(__name__)
    app.json = FastJSONProvider(app)
    app.config.update(settings.flask_config())
    app.config.update(config)
    app.json.sort_keys = False
    if settings.trusted_proxies:  # request.remote_addr: the client as the nearest proxy saw it
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        _prepare_sqlite(app)
    else:
        database.ping_idle_connections()  # reconnect by itself after a database restart
    database.db.init_app(app)
    throttle.init_app(app, settings)
    Migrate(app, database.db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    app.extensions["aggregator.adapters"] = Adapters(
        clocks=Clocks(config.get("CLOCK") or SystemClock()),
        renderer=WeasyPrintRenderer(),
        storage=LocalStorage(settings.storage_dir),
        mailer=settings.mailer(),
        webhooks=WebhookSender(settings.webhooks_allow_private),
        vault=(vault := Vault(settings.secret_keys, settings.secret_key_file)),
        payments=StripeGateways(vault, api_base=settings.stripe_api_base,
                                tenant_api_base=settings.stripe_tenant_api_base,
                                allow_private=settings.webhooks_allow_private),
    ).replacing(**config.get("ADAPTERS", {}))

    from . import error_responses
    from . import demo as demo_cli
    from . import finance
    from .accounts import api as accounts_api, cli as accounts_cli
    from .consolidate import api as consolidate_api, cli as consolidate_cli
    from .events import api as events_api
    from .ingest import api as ingest_api
    from .ledger import api as ledger_api
    from .mail import api as mail_api
    from .payments import api as payments_api
    from .payments import refunds_api, stripe_webhooks_api
    from .payouts import api as payouts_api
    from .payouts import reports_api as payout_reports_api
    from .webhooks import api as webhooks_api

    api = _Api(app, spec_kwargs={
        "info": {"description": "Consolidated single billing API."},
        "security": [{"bearer": []}],  # every endpoint but this description needs a key
        "marshmallow_plugin": (plugin := MarshmallowPlugin(schema_name_resolver=_schema_name)),
    })
    openapi.register(plugin)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(accounts_api.blp)
    api.register_blueprint(ingest_api.blp)
    api.register_blueprint(consolidate_api.blp)
    api.register_blueprint(events_api.blp)
    api.register_blueprint(mail_api.blp)
    api.register_blueprint(payments_api.blp)
    api.register_blueprint(refunds_api.blp)
    api.register_blueprint(webhooks_api.blp)
    api.register_blueprint(stripe_webhooks_api.blp)
    api.register_blueprint(ledger_api.blp)
    api.register_blueprint(payouts_api.blp)
    api.register_blueprint(payout_reports_api.blp)
    openapi.declare_links(api.spec._paths)  # apispec has no public way to add links to a response
    openapi.declare_cross_field_rules(api.spec.components.schemas)
    error_responses.register(app)
    finance.register(app)
    _add_operations(app)
    refuse_unusable_requests(app)
    _refuse_until_migrated(app)
    app.cli.add_command(accounts_cli.tenants)
    app.cli.add_command(consolidate_cli.periods)
    app.cli.add_command(demo_cli.demo)
    _add_area_commands(app)
    return app


def _add_area_commands(app: Flask) -> None:
    """The rest of the command line's groups, one per area (`aggregator --help`)."""
    from .accounts import cli as accounts_cli
    from .consolidate import cli as consolidate_cli
    from .events import cli as events_cli
    from .ledger import cli as ledger_cli
    from .payments import cli as payments_cli
    from .payments import refunds_cli
    from .payouts import cli as payouts_cli

    consolidate_cli.invoices.add_command(payments_cli.charge_invoices)  # `invoices charge`: a payments use case
    for group in (accounts_cli.providers, accounts_cli.customers, consolidate_cli.invoices, events_cli.events,
                  payments_cli.payments, refunds_cli.refunds, ledger_cli.ledger, payouts_cli.payouts):
        app.cli.add_command(group)


def _add_operations(app: Flask) -> None:
    """Probes and metrics (outside /v1 and the OpenAPI document), and the worker's commands."""
    from . import ops, worker

    ops.count_requests(app)
    app.register_blueprint(ops.blp)
    app.cli.add_command(worker.worker)


def _refuse_until_migrated(app: Flask) -> None:
    """Every request but the probes answers 503 (the one error shape, saying why and how to fix
    it) while the database does not exist or is not migrated; /readyz says not ready."""
    from flask import request

    from . import readiness
    from .error_responses import error_body

    @app.before_request
    def _database_ready():
        if request.endpoint in ("ops.healthz", "ops.readyz", "ops.scrape"):
            return None
        problem = readiness.ready(app)
        if problem is not None:
            return error_body(503, "api_error", problem.public, problem.code)
        return None

    app.before_request_funcs[None].insert(0, app.before_request_funcs[None].pop())  # before any other hook


def _prepare_sqlite(app: Flask) -> None:
    """The embedded default: a file under var/, created by the migrations (bin/start), WAL for
    concurrent readers."""
    import sqlalchemy as sa

    options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    options.setdefault("connect_args", {}).setdefault("timeout", 30)

    @sa.event.listens_for(sa.engine.Engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
