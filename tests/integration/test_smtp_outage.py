"""The SMTP server down for an hour: a closed period's emails wait, retried with backoff (none
given up on, none sent), and once the server is back every one is sent, once. The worker's clock
(real time, which the retries follow) is the tests' clock, stepped through the hour."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from aggregator.mail.mailer import Mailer, transport_from_url
from tests.smtp_server import SmtpServer, free_port
from tests.support.invoicing import advance
from tests.support.mail import ANN, BOB, FINANCE, deliver, deliveries, shop_with_mail


@pytest.fixture
def shop(tenant):
    """Three customers (one without an address), a bill each."""
    return shop_with_mail(tenant)


def test_an_hour_without_smtp_delays_every_email_and_loses_or_doubles_none(app, shop, clock):
    port = free_port()  # nothing listens there yet: connections are refused
    url = f"smtp://127.0.0.1:{port}?timeout=2"
    mailer = Mailer(live=transport_from_url(url), test=transport_from_url(url), default_from="billing@operator.example")
    try:
        advance(shop)  # the close: invoices, PDFs, and the emails to send
        start = clock.now()
        for minutes in range(0, 61, 5):
            clock.set(start + timedelta(minutes=minutes))
            assert deliver(app, shop, mailer).done == 0
        waiting = deliveries(shop, status="pending")
        assert {d["recipient"] for d in waiting} == {ANN, BOB, FINANCE}
        failed = deliveries(shop, status="failed")  # only the customer without an address, at once
        assert [d["recipient"] for d in failed] == [None], failed
        assert not deliveries(shop, status="sent")
        with SmtpServer(port) as smtp:  # back: each is sent at its next retry, within its backoff
            sent = []
            for minutes in (61, 75, 90, 120, 180, 26 * 60):
                clock.set(start + timedelta(minutes=minutes))
                sent.append(deliver(app, shop, mailer).done)
            received = Counter(to for message in smtp.handler.received for to in message.rcpt_tos)
    finally:
        mailer.close()
    assert sum(sent) == 3 and received == {ANN: 1, BOB: 1, FINANCE: 1}, sent
    assert sum(sent[:4]) == 3  # within an hour of the server's return (the longest wait: 32 minutes)
    assert sorted(d["status"] for d in deliveries(shop)) == ["failed", "sent", "sent", "sent"]
