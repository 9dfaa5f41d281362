"""PostgreSQL restarted under the service: a TCP proxy of the test's own stands between the
service and the server (the shared server is never restarted) and is cut and restored. Meanwhile
/readyz says not ready and requests answer 503 database_unavailable (never a 500); once it is
back the service reconnects by itself, and providers that retried with their idempotency keys
have every bill stored once."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests.support.callers import Caller
from tests.support.invoicing import bill_body
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.slow]


@pytest.fixture
def proxied(postgres_only, app, database_url, tmp_path: Path):
    """A second app (the service under test) reaching the same database through the proxy."""
    from aggregator import create_app
    from aggregator.config import Settings

    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = app.config["AGGREGATOR_SETTINGS"]
    service = create_app({"SETTINGS": Settings(database_url=through, storage_dir=tmp_path / "storage",
                                               secret_key_file=settings.secret_key_file, db_pool_size=3)})
    yield service, proxy
    with service.app_context():
        from aggregator.db import db

        db.engine.dispose()
    proxy.close()


def _post(caller: Caller, n: int):
    return caller.post("/v1/bills", bill_body(amount="2.00", description=f"bill {n}"),
                       headers={"Idempotency-Key": f"outage-{n}"})


def test_a_database_restart_answers_503_meanwhile_and_loses_or_doubles_no_bill(proxied, app, tenant):
    service, proxy = proxied
    tenant.customer("cust-1")
    provider = tenant.provider()
    client = service.test_client()
    caller = Caller(client, provider.key)
    stored: dict[int, str] = {}
    for n in range(5):  # the pool holds connections opened before the restart
        response = _post(caller, n)
        assert response.status_code == 201, response.json
        stored[n] = response.json["id"]
    assert client.get("/readyz").status_code == 200

    proxy.cut()
    for n in range(5, 10):
        response = _post(caller, n)
        assert response.status_code == 503, response.json
        assert response.json["error"]["code"] == "database_unavailable"
        assert response.headers["Retry-After"]
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["error"]["code"] == "database_unavailable"

    proxy.restore()
    assert client.get("/readyz").status_code == 200  # reconnected, without a restart of the service
    for n in range(5, 15):  # the providers retry what failed, then go on
        response = _post(caller, n)
        assert response.status_code == 201, response.json
        stored[n] = response.json["id"]
    with app.app_context():
        from aggregator.db import db

        rows = db.session.execute(sa.text("SELECT idempotency_key, id FROM bills WHERE tenant_id = :t"),
                                  {"t": tenant.id}).all()
        db.session.rollback()
    assert dict(rows) == {f"outage-{n}": bill_id for n, bill_id in stored.items()}  # each once


def test_an_idle_service_reconnects_after_a_restart_without_failing_a_request(proxied, tenant):
    """Nothing was asked during the outage: the pool's connections died unseen. The first
    request after the restart is served (the pool checks a connection idle for a while before
    lending it, aggregator.db.IDLE_PING_SECONDS)."""
    from aggregator.db import IDLE_PING_SECONDS

    service, proxy = proxied
    tenant.customer("cust-1")
    provider = tenant.provider()
    caller = Caller(service.test_client(), provider.key)
    assert _post(caller, 0).status_code == 201
    proxy.cut()
    time.sleep(IDLE_PING_SECONDS + 0.2)  # the restart takes a moment; nobody asks meanwhile
    proxy.restore()
    response = _post(caller, 1)
    assert response.status_code == 201, response.json
    assert service.test_client().get("/readyz").status_code == 200
