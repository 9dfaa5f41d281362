"""Notification settings per tenant and mode (PLATFORMA's `notifications.configure`): whether the
customer is emailed its invoice, a receipt, an overdue notice and a usage threshold notice. All
on by default; turned off, the email is not recorded (nor sent); webhooks are unaffected."""
from __future__ import annotations

import pytest

from aggregator.accounts.notifications import KINDS, customer_emails_enabled
from tests.support.charges import _invoice
from tests.support.cli import as_json
from tests.support.invoicing import advance, send
from tests.support.mail import deliver, deliveries

ANN = "ann@example.com"
ALL_ON = {"object": "notification_settings", "invoice_generated": True, "payment_received": True,
          "payment_overdue": True, "usage_threshold": True, "livemode": False}


def _set(tenant, mode="test", **changes):
    response = tenant.admin[mode].patch("/v1/notification_settings", changes)
    assert response.status_code == 200, response.json
    return response.json


def test_every_customer_email_is_on_by_default(tenant):
    assert tenant.admin["test"].get("/v1/notification_settings").json == ALL_ON
    assert tenant.admin["live"].get("/v1/notification_settings").json == {**ALL_ON, "livemode": True}


def test_settings_change_in_the_keys_mode_only(app, tenant):
    assert _set(tenant, payment_overdue=False, usage_threshold=False) == {
        **ALL_ON, "payment_overdue": False, "usage_threshold": False}
    assert tenant.admin["live"].get("/v1/notification_settings").json == {**ALL_ON, "livemode": True}
    with app.app_context():
        assert not customer_emails_enabled(tenant.id, False, "usage_threshold")
        assert customer_emails_enabled(tenant.id, True, "usage_threshold")
        assert [customer_emails_enabled(tenant.id, False, kind) for kind in KINDS] == [True, True, False, False]
        with pytest.raises(ValueError):
            customer_emails_enabled(tenant.id, False, "newsletter")
        assert not customer_emails_enabled("ten_none", False, "invoice_generated")


@pytest.mark.parametrize("body, field", [({"invoice_generated": "no"}, "invoice_generated"),
                                         ({"payment_received": 0}, "payment_received"),
                                         ({"payment_overdue": None}, "payment_overdue"),
                                         ({"sms": True}, "sms")])
def test_bad_settings_are_refused_naming_the_field_and_nothing_changes(tenant, body, field):
    response = tenant.admin["test"].patch("/v1/notification_settings", {"payment_received": False, **body})
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["fields"]
    assert tenant.admin["test"].get("/v1/notification_settings").json == ALL_ON


def test_a_provider_key_may_not_read_or_change_them(tenant):
    provider = tenant.provider()
    assert provider.get("/v1/notification_settings").status_code == 403
    assert provider.patch("/v1/notification_settings", {"payment_overdue": False}).status_code == 403


def _shop(tenant):
    tenant.customer("cust-1", name="Ann", email=ANN)
    send(tenant.provider(), "b1", amount="50.00")
    return tenant


def test_turned_off_emails_are_not_sent_but_the_events_still_are(app, tenant, smtp, mailer):
    shop = _shop(tenant)
    _set(shop, invoice_generated=False, payment_overdue=False)
    advance(shop, "2026-12-02T13:00:00+00:00")  # closed, and overdue
    deliver(app, shop, mailer)
    assert smtp.handler.to(ANN) == [] and deliveries(shop, recipient=ANN) == []
    types = {e["type"] for e in shop.admin["test"].get("/v1/events?limit=100").json["data"]}
    assert {"invoice.finalized", "invoice.overdue"} <= types

    _set(shop, payment_received=False, payment_overdue=True)
    response = shop.admin["test"].post(f"/v1/invoices/{_invoice(shop)['id']}/payments", {
        "amount": "50.00", "method": "bank_transfer", "received_on": "2026-12-03"})
    assert response.status_code == 201, response.json
    deliver(app, shop, mailer)
    assert smtp.handler.to(ANN) == []  # no receipt (and the overdue notice was dispatched already)


def test_emails_left_on_are_sent(app, tenant, smtp, mailer):
    shop = _shop(tenant)
    _set(shop, payment_overdue=False)
    advance(shop, "2026-12-02T13:00:00+00:00")
    deliver(app, shop, mailer)
    assert [d["kind"] for d in deliveries(shop, recipient=ANN)] == ["invoice"]


def test_the_command_line_shows_and_sets_them(cli, cli_tenant):
    scope = cli_tenant["scope"]
    assert as_json(cli("notifications", "show", *scope, "--json")) == ALL_ON
    changed = as_json(cli("notifications", "set", *scope, "--no-payment-overdue", "--usage-threshold", "--json"))
    assert changed == {**ALL_ON, "payment_overdue": False}
    assert "payment_overdue" in cli("notifications", "show", *scope).output
    assert as_json(cli("notifications", "show", "--tenant", cli_tenant["id"], "--mode", "live", "--json"))[
        "payment_overdue"] is True
    assert "Nothing to change" in cli("notifications", "set", *scope, exit_code=2).output
