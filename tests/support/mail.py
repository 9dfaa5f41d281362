"""Email to a real SMTP server (aiosmtpd) started for a test: the server, a mailer sending to it,
a worker's pass that delivers the tenant's mail, the deliveries the API lists, and a shop whose
period's close emails its customers and finance."""
from __future__ import annotations

import pytest

from aggregator import due
from aggregator.events.dispatch import DISPATCH_QUEUE
from aggregator.mail.due_work import EMAIL_QUEUE
from aggregator.mail.mailer import Mailer, transport_from_url
from tests.smtp_server import SmtpServer
from tests.support.invoicing import send

ANN, BOB, FINANCE = "ann@example.com", "bob@example.com", "finance@market.example"


@pytest.fixture
def smtp():
    with SmtpServer() as server:
        yield server


@pytest.fixture
def mailer(smtp):
    mailer = Mailer(live=transport_from_url(smtp.url), test=transport_from_url(smtp.url),
                    default_from="billing@operator.example")
    yield mailer
    mailer.close()


def deliver(app, tenant, mailer, queue=EMAIL_QUEUE) -> due.Worked:
    """A worker's pass over the tenant's test-mode lane: dispatch the outbox, send the emails."""
    with app.app_context():
        adapters = app.extensions["aggregator.adapters"].replacing(mailer=mailer)
        lane = due.Lane(tenant.id, False)
        due.drain(DISPATCH_QUEUE, adapters, lane=lane)
        return due.drain(queue, adapters, lane=lane)


def deliveries(tenant, **query) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    response = tenant.admin["test"].get(f"/v1/email_deliveries?limit=100&{params}")
    assert response.status_code == 200, response.json
    return response.json["data"]


def shop_with_mail(tenant):
    """The email tests' shop (each module makes it its `shop` fixture): three customers (one
    without an address) with a bill each, sender settings and finance."""
    response = tenant.admin["test"].patch("/v1/tenant", {
        "email_from_name": "Market Ltd", "email_from": "billing@market.example",
        "email_reply_to": "help@market.example", "finance_email": FINANCE})
    assert response.status_code == 200, response.json
    tenant.customer("cust-1", name="Ann", email=ANN)
    tenant.customer("cust-2", name="Nobody")
    tenant.customer("cust-3", name="Bob", email=BOB)
    provider = tenant.provider()
    for n in (1, 2, 3):
        send(provider, f"k{n}", customer=f"cust-{n}")
    return tenant
