"""What the payment emails say, from plain values: the next attempt in the tenant's time zone and
locale (with the zone), and a dispute told with whatever the webhook gave of it."""
from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from aggregator.mail import messages


def _settings(**overrides):
    values = {"name": "Market", "legal_name": None, "locale": "en", "timezone": "Australia/Sydney",
              "email_reply_to": None, "livemode": False}
    return SimpleNamespace(**{**values, **overrides})


def _invoice(**overrides):
    customer = SimpleNamespace(name="Ann", external_id="cust-1", email="ann@example.com")
    values = {"id": "inv_1", "number": "INV-1", "currency": "AUD", "amount_due": 1999, "amount_paid": 0,
              "period_start": date(2026, 10, 25), "period_end": date(2026, 11, 24), "customer": customer,
              "attempt_count": 1, "paid_at": None}
    return SimpleNamespace(**{**values, **overrides})


def _failed(**data):
    return {"next_retry_at": None, "final": False, "hard_decline": False, "failure_code": "card_declined",
            "decline_code": None, "failure_message": None, "hard_decline_reason": None, **data}


def test_the_next_attempt_is_told_in_the_tenants_time_zone_and_locale():
    retry = datetime(2026, 12, 4, 22, 0, tzinfo=timezone.utc).isoformat()
    context = messages.payment_failed_context(_invoice(), None, _failed(next_retry_at=retry), _settings())
    assert (context["next_attempt_date"], context["amount"]) == ("Dec 5, 2026", "A$19.99")
    german = messages.payment_failed_context(_invoice(), None, _failed(next_retry_at=retry),
                                             _settings(locale="de_DE", timezone="Europe/Berlin"))
    assert (german["next_attempt_date"], german["next_attempt_time"]) == ("04.12.2026", "23:00 MEZ")


def test_a_decline_without_a_message_is_told_by_its_code():
    context = messages.payment_failed_context(_invoice(), None, _failed(decline_code="insufficient_funds"),
                                              _settings())
    assert context["reason"] == "insufficient funds" and context["next_attempt_date"] == ""


@pytest.mark.parametrize("amount, shown", [(1999, "A$19.99"), ("19.99", "A$19.99"), ("nineteen", ""), (None, ""),
                                           (True, ""), (1.5, "")])
def test_a_disputes_amount_is_shown_when_it_can_be_read(amount, shown):
    snapshot = {"id": "inv_1", "number": "INV-1", "currency": "AUD", "total": "19.99", "customer_external_id": "c"}
    context = messages.dispute_context(snapshot, {"amount": amount}, None, _settings())
    assert context["disputed_amount"] == shown and context["total"] == "A$19.99"


def test_a_dispute_with_nothing_known_of_it_still_renders():
    context = messages.dispute_context({}, {}, None, _settings(livemode=True))
    subject, text, html = messages.render("invoice_disputed", context)
    assert subject == "Charge disputed: invoice" and "disputed by the customer" in text and "<table" in html
