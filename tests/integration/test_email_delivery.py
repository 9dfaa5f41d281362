"""Emails, sent to a real SMTP server (aiosmtpd) started by the tests: who receives what when a
period closes, retries of transient refusals as real time moves, no retry of permanent ones,
nothing sent twice, test mode kept away from real customers."""
from __future__ import annotations

import io
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from aggregator import due
from aggregator.events.dispatch import DISPATCH_QUEUE
from aggregator.mail import delivery_service
from aggregator.mail.due_work import EMAIL_QUEUE
from aggregator.mail.mailer import FileSink, Mailer, transport_from_url
from tests.support.clock import START
from tests.support.invoicing import advance, send
from tests.support.mail import ANN, BOB, FINANCE, deliver, deliveries, shop_with_mail


@pytest.fixture
def shop(tenant):
    """Three customers (one without an address) with a bill each, sender settings and finance."""
    return shop_with_mail(tenant)


def _parts(message):
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    [pdf] = [part for part in message.iter_attachments() if part.get_content_type() == "application/pdf"]
    return text, html, pdf


def test_a_closed_period_emails_each_customer_its_invoice_with_the_pdf_and_finance_a_summary(app, shop, smtp,
                                                                                            mailer):
    advance(shop)
    numbers = {i["id"]: i["number"] for i in shop.admin["test"].get("/v1/invoices?limit=10").json["data"]}
    worked = deliver(app, shop, mailer)
    assert (worked.done, worked.failed) == (3, 0)

    for address, name in ((ANN, "Ann"), (BOB, "Bob")):
        [received] = smtp.handler.to(address)
        message = received.message
        [delivery] = deliveries(shop, recipient=address)
        number = numbers[delivery["invoice"]]
        assert message["To"] == address and received.rcpt_tos == [address]
        assert message["From"] == "Market Ltd <billing@market.example>"
        assert message["Reply-To"] == "help@market.example"
        assert number in message["Subject"] and "Market" in message["Subject"]
        assert message["Message-ID"].endswith("@market.example>")  # the sender's domain
        text, html, pdf = _parts(message)
        assert f"Hello {name}" in text and number in text and "A$19.99" in text
        # no Stripe settings: nothing will charge it, so the email says when it is due, not a charge date
        assert "Due date:" in text and "Please pay A$19.99 by" in text and "charge" not in text.lower()
        assert f"Hello {name}" in html and "<table" in html
        assert pdf.get_filename() == f"{number}.pdf"
        pdf_text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.get_content())).pages)
        assert number in pdf_text

    [summary] = smtp.handler.to(FINANCE)
    assert "3 invoices" in summary.message["Subject"]
    text, html = (summary.message.get_body(preferencelist=(kind,)).get_content() for kind in ("plain", "html"))
    assert "AUD: 3 invoices" in text and "without an email address" in text and "1" in text
    assert "No drafts await review" in html
    assert len(smtp.handler.received) == 3  # the customer without an address got none

    listed = deliveries(shop)
    assert sorted((d["kind"], d["recipient"] or "", d["status"]) for d in listed) == [
        ("invoice", "", "failed"), ("invoice", ANN, "sent"), ("invoice", BOB, "sent"),
        ("period_summary", FINANCE, "sent")]
    [unsent] = deliveries(shop, status="failed")
    assert unsent["last_error"].startswith("no_address") and unsent["attempts"] == 0


def test_dispatching_and_sending_again_sends_nothing_twice(app, shop, smtp, mailer):
    advance(shop)
    deliver(app, shop, mailer)
    assert len(smtp.handler.received) == 3
    with app.app_context():  # every event of the tenant fanned out once more
        from aggregator.db import db
        from aggregator.events.models import Event

        db.session.execute(sa.update(Event).where(Event.tenant_id == shop.id).values(dispatched=False))
        db.session.commit()
    worked = deliver(app, shop, mailer)
    assert (worked.done, worked.failed) == (0, 0)
    assert len(smtp.handler.received) == 3 and len(deliveries(shop)) == 4


def test_a_transient_refusal_is_retried_after_its_backoff_as_real_time_moves(app, shop, smtp, mailer, clock):
    smtp.handler.refuse_once(ANN, "451 4.3.0 Mailbox busy")
    advance(shop)
    deliver(app, shop, mailer)
    assert smtp.handler.to(ANN) == [] and len(smtp.handler.to(BOB)) == 1
    [waiting] = deliveries(shop, recipient=ANN)
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1) and "451" in waiting["last_error"]
    assert waiting["next_attempt_at"] == (START + timedelta(minutes=1)).isoformat()

    clock.set(START + timedelta(seconds=59))
    assert deliver(app, shop, mailer).taken == 0  # not before its time
    clock.set(START + timedelta(minutes=1))
    assert deliver(app, shop, mailer).done == 1
    assert len(smtp.handler.to(ANN)) == 1
    [sent] = deliveries(shop, recipient=ANN)
    assert (sent["status"], sent["attempts"], sent["last_error"]) == ("sent", 2, None)


def test_a_permanent_refusal_is_not_retried(app, shop, smtp, mailer, clock):
    smtp.handler.refuse_always(ANN, "550 5.1.1 No such user")
    advance(shop)
    deliver(app, shop, mailer)
    [refused] = deliveries(shop, recipient=ANN)
    assert (refused["status"], refused["attempts"]) == ("failed", 1) and "550" in refused["last_error"]
    clock.set(START + timedelta(days=2))
    assert deliver(app, shop, mailer).taken == 0 and smtp.handler.to(ANN) == []


def test_transient_refusals_are_retried_with_growing_delays_for_about_a_day_then_given_up(app, shop, smtp,
                                                                                         mailer, clock):
    smtp.handler.refuse_always(ANN, "452 4.2.2 Mailbox full")
    advance(shop)
    deliver(app, shop, mailer)
    delays = []
    while (delivery := deliveries(shop, recipient=ANN)[0])["status"] == "pending":
        from datetime import datetime

        at = datetime.fromisoformat(delivery["next_attempt_at"])
        delays.append(at - clock.now())
        clock.set(at)
        deliver(app, shop, mailer)
    assert delays[:4] == [timedelta(minutes=m) for m in (1, 2, 4, 8)] and max(delays) == timedelta(hours=4)
    assert timedelta(hours=20) <= clock.now() - START <= timedelta(days=1)
    assert delivery["status"] == "failed" and delivery["last_error"].startswith(f"gave up after {len(delays) + 1}")


def test_the_email_waits_for_the_pdf_when_finalization_is_dispatched_first(app, shop, smtp, mailer):
    response = shop.admin["test"].post("/v1/test_clock/advance", {"to": "2026-11-26T00:00:00+00:00", "wait": False})
    assert response.status_code == 202
    with app.app_context():  # a worker closes the period; the PDFs are not rendered yet
        adapters = app.extensions["aggregator.adapters"]
        due.run_lane(due.claim_lane(due.Lane(shop.id, False), adapters.clocks.base.now()), adapters,
                     adapters.clocks.base.now())
    deliver(app, shop, mailer)  # invoice.finalized dispatched: no PDF yet, no invoice email
    assert [d["kind"] for d in deliveries(shop)] == ["period_summary"]
    with app.app_context():
        from aggregator.consolidate.due_work import PDF_QUEUE

        due.drain(PDF_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(shop.id, False))
    deliver(app, shop, mailer)  # invoice.pdf_ready dispatched: now both are true
    assert len(smtp.handler.to(ANN)) == 1 and len(smtp.handler.to(BOB)) == 1


def test_a_voided_invoices_pending_email_is_not_sent(app, shop, smtp, mailer):
    advance(shop)
    with app.app_context():  # dispatched (deliveries recorded), not sent yet
        due.drain(DISPATCH_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(shop.id, False))
    [pending] = deliveries(shop, recipient=ANN)
    response = shop.admin["test"].post(f"/v1/invoices/{pending['invoice']}/void", {"reason": "billed in error"})
    assert response.status_code == 200, response.json
    deliver(app, shop, mailer)
    assert smtp.handler.to(ANN) == [] and len(smtp.handler.to(BOB)) == 1
    [voided] = deliveries(shop, recipient=ANN)
    assert voided["status"] == "failed" and "voided" in voided["last_error"] and voided["attempts"] == 0


def test_a_test_mode_tenants_mail_goes_to_the_test_sink_never_to_the_live_server(app, shop, smtp, tmp_path):
    mailer = Mailer(live=transport_from_url(smtp.url), test=FileSink(tmp_path / "test-mail"))
    advance(shop)
    assert deliver(app, shop, mailer).done == 3
    assert smtp.handler.received == []
    written = sorted((tmp_path / "test-mail").glob("*.eml"))
    assert len(written) == 3
    assert any(f"To: {ANN}" in path.read_text() for path in written)


def test_two_workers_draining_the_queue_at_once_send_each_message_once(app, postgres_only, tenant, smtp, mailer):
    provider = tenant.provider()
    for n in range(40):
        tenant.customer(f"c{n}", email=f"c{n}@example.com")
        send(provider, f"k{n}", customer=f"c{n}")
    advance(tenant)
    with app.app_context():
        due.drain(DISPATCH_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(tenant.id, False))
    small_batches = due.Queue(EMAIL_QUEUE.name, delivery_service.send_batch, batch=3)
    results, start = [], threading.Barrier(2)

    def worker():
        start.wait()
        results.append(deliver(app, tenant, mailer, small_batches))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.done for r in results) == 40 and all(r.done for r in results)  # both took part
    recipients = [r for received in smtp.handler.received for r in received.rcpt_tos]
    assert sorted(recipients) == sorted(f"c{n}@example.com" for n in range(40))
