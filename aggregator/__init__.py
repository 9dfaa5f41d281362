"""aggregator: consolidated single billing for marketplace platforms."""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from flask import Flask

# Everything else is imported inside create_app: `import aggregator` (which `aggregator --help`,
# the worker's supervisor and every test do first) stays light.


def _schema_name(schema) -> str:
    """OpenAPI component names: 'Tenant' for TenantSchema, 'TenantUpdate' for its partial form."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__.removesuffix("Schema")
    return f"{name}Update" if getattr(schema, "partial", False) else name


@cache
def _api_class():
    """flask-smorest's Api, answering HTTP errors in the one error shape (imported when an app is
    built, not with the package)."""
    from flask_smorest import Api

    from .error_responses import http_exception_response
    from .errors import ErrorSchema

    class _Api(Api):
        ERROR_SCHEMA = ErrorSchema  # documents the error responses as they are

        def handle_http_exception(self, error):
            return http_exception_response(error)

    return _Api


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The application factory. `config` overrides settings read from the environment; a
    "CLOCK" entry replaces the system clock and "ADAPTERS" entries replace adapters (tests)."""
    from apispec.ext.marshmallow import MarshmallowPlugin
    from flask import Flask
    from flask_migrate import Migrate
    from werkzeug.middleware.proxy_fix import ProxyFix

    from . import db as database
    from . import openapi, throttle, wiring
    from .adapters import Adapters
    from .clock import Clocks, SystemClock
    from .config import PROJECT_ROOT, Settings
    from .consolidate.render import WeasyPrintRenderer
    from .mail.mailer import Mailer
    from .payments.stripe import StripeGateways
    from .storage import LocalStorage
    from .testmode import TenantTestClock
    from .vault import Vault
    from .web import FastJSONProvider, refuse_unusable_requests
    from .webhooks.sender import WebhookSender

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

    database.prepare(app)
    database.db.init_app(app)
    throttle.init_app(app, settings)
    Migrate(app, database.db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    app.extensions["aggregator.adapters"] = Adapters(
        clocks=Clocks(config.get("CLOCK") or SystemClock(), test_clock=TenantTestClock),
        renderer=WeasyPrintRenderer(),
        storage=LocalStorage(settings.storage_dir),
        mailer=Mailer.from_urls(settings.smtp_url, settings.test_smtp_url, settings.email_from,
                                settings.mail_dir or settings.storage_dir.parent / "mail"),
        webhooks=WebhookSender(settings.webhooks_allow_private),
        vault=(vault := Vault(settings.secret_keys, settings.secret_key_file)),
        payments=StripeGateways(vault, api_base=settings.stripe_api_base,
                                tenant_api_base=settings.stripe_tenant_api_base,
                                allow_private=settings.webhooks_allow_private),
    ).replacing(**config.get("ADAPTERS", {}))

    from . import error_responses, finance
    from .accounts import api as accounts_api
    from .catalog import api as catalog_api
    from .consolidate import api as consolidate_api
    from .events import api as events_api
    from .ingest import api as ingest_api
    from .ledger import api as ledger_api
    from .mail import api as mail_api
    from .metering import api as metering_api
    from .payments import api as payments_api
    from .payments import credit_notes_api, refunds_api, stripe_webhooks_api
    from .payouts import api as payouts_api
    from .payouts import reports_api as payout_reports_api
    from .webhooks import api as webhooks_api

    api = _api_class()(app, spec_kwargs={
        "info": {"description": "Consolidated single billing API."},
        "security": [{"bearer": []}],  # every endpoint but this description needs a key
        "marshmallow_plugin": (plugin := MarshmallowPlugin(schema_name_resolver=_schema_name)),
    })
    openapi.register(plugin)
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    api.register_blueprint(accounts_api.blp)
    api.register_blueprint(ingest_api.blp)
    api.register_blueprint(catalog_api.blp)
    api.register_blueprint(metering_api.blp)
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
    api.register_blueprint(credit_notes_api.blp)
    openapi.declare_links(api.spec._paths)  # apispec has no public way to add links to a response
    openapi.declare_cross_field_rules(api.spec.components.schemas)
    error_responses.register(app)
    finance.register(app)
    _add_operations(app)
    refuse_unusable_requests(app)
    _refuse_until_migrated(app)
    _add_commands(app)
    return app


def _add_commands(app: Flask) -> None:
    """The command line's groups (`aggregator --help`; `flask --app wsgi` sees them too), each
    imported when asked for."""
    from . import cli

    app.cli = cli.app_commands(app.cli)


def _add_operations(app: Flask) -> None:
    """Probes and metrics (outside /v1 and the OpenAPI document)."""
    from . import ops

    ops.count_requests(app)
    app.register_blueprint(ops.blp)


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

