"""The payout emails, sent to a real SMTP server (aiosmtpd): finance is told when a payout day's
payouts await its review and when a transfer failed; a provider gets its statement, a PDF read
back with pypdf, when its payout is paid; each once, and nothing to a provider without an
address. Payouts are built by the test clock on the payout day, as in tests/e2e/test_payouts_api."""
from __future__ import annotations

import io
from datetime import datetime

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from tests.support.invoicing import AFTER_END, advance, send
from tests.support.mail import deliver, deliveries
from tests.support.payouts import AFTER_PAYOUT_DAY, _pay, _payouts

FINANCE, ACCOUNTING = "finance@market.example", "payouts@accounting.example"
PAID_AT = datetime.fromisoformat("2026-12-10T02:00:00+00:00")


@pytest.fixture
def payday(app, tenant, smtp, mailer):  # noqa: F811
    """Two providers, one with an address (Accounting App: 30% share) and one without (SMS
    Gateway): an invoice of theirs paid in full, the payout day passed, payouts awaiting review."""
    admin = tenant.admin["test"]
    assert admin.patch("/v1/tenant", {"finance_email": FINANCE, "email_from": "billing@market.example"}
                       ).status_code == 200
    tenant.customer("cust-1", name="Customer One")
    tenant.apps = [tenant.provider(name="Accounting App", rate="0.30"), tenant.provider(name="SMS Gateway", rate="0")]
    accounting, sms = tenant.apps
    assert admin.patch(f"/v1/providers/{accounting.id}", {"email": ACCOUNTING}).status_code == 200
    send(accounting, "a1", amount="100.00")  # fee 30.00, net 70.00
    send(accounting, "a2", amount="10.01", revenue_share=False)  # pass-through: net 10.01
    send(sms, "s1", amount="25.00")
    advance(tenant, AFTER_END)
    (tenant.invoice,) = admin.get("/v1/invoices").json["data"]
    _pay(tenant, tenant.invoice["total"])
    deliver(app, tenant, mailer)
    smtp.handler.received.clear()  # the period's summary
    advance(tenant, AFTER_PAYOUT_DAY)
    deliver(app, tenant, mailer)
    return tenant


def _text(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def _sent_to(smtp, address):  # noqa: F811
    return [r.message for r in smtp.handler.to(address)]


def _paid(app, tenant, payout_id: str, **values) -> None:
    """The payout recorded paid with its `payout.paid`, as transitions.mark_paid does (without
    the ledger journal: see test_marking_a_payout_paid_emails_its_statement_through_the_api)."""
    from aggregator.db import db
    from aggregator.events.service import NewEvent, record
    from aggregator.payouts.models import Payout

    with app.app_context():
        db.session.execute(sa.update(Payout).where(Payout.id == payout_id)
                           .values(status="paid", paid_at=PAID_AT, **values))
        payout = db.session.get(Payout, payout_id)
        record(tenant.id, False, PAID_AT, [NewEvent("payout.paid", payout.id, {"object": {"id": payout.id}},
                                                    provider_id=payout.provider_id)])
        db.session.commit()


def test_finance_is_told_which_payouts_await_its_review_and_where_to_review_them(payday, smtp):  # noqa: F811
    [notice] = _sent_to(smtp, FINANCE)
    assert notice["Subject"] == "[test] Payouts await your review: 2 for Dec 10, 2026, A$105.01"
    text = _text(notice)
    assert "Payout day: Dec 10, 2026" in text and "Period:     Oct 25, 2026 – Nov 24, 2026" in text
    assert "AUD: 2 payouts, A$105.01 to transfer" in text
    assert "Accounting App: A$80.01 (AUD, pending review)" in text and "SMS Gateway: A$25.00" in text
    assert "/finance" in text and 'POST /v1/payouts/approve {"period": "2026-10-25"}' in text
    [delivery] = [d for d in deliveries(payday) if d["kind"] == "payouts_awaiting_review"]
    assert (delivery["recipient"], delivery["status"], delivery["invoice"]) == (FINANCE, "sent", None)
    assert _sent_to(smtp, ACCOUNTING) == []  # nothing is paid yet


def test_a_paid_payout_emails_its_provider_the_statement_pdf_once(app, payday, smtp, mailer):  # noqa: F811
    from aggregator.db import db
    from aggregator.events.models import Event
    from aggregator.mail import subscriber

    accounting, sms = payday.apps
    payouts = _payouts(payday)
    smtp.handler.received.clear()
    _paid(app, payday, payouts[accounting.id]["id"], reference="SEPA-42")
    _paid(app, payday, payouts[sms.id]["id"], reference="SEPA-43")  # no address: no email
    assert deliver(app, payday, mailer).done == 1
    [message] = _sent_to(smtp, ACCOUNTING)
    assert message["Subject"] == "[test] Payout of A$80.01 from Marketplace for Dec 10, 2026"
    assert "Sent by:     Bank transfer SEPA-42" in _text(message)
    [pdf] = [part for part in message.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == f"payout-statement-{payouts[accounting.id]['id']}.pdf"
    document = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "Payout statement" in document and "Accounting App" in document
    for shown in ("A$100.00", "A$30.00", "A$70.00", "A$10.01", "A$110.01", "A$80.01", "SEPA-42",
                  payday.invoice["number"]):
        assert shown in document, shown
    # each line says whose it is and what it was, its bill id whole; the totals add up on their face
    words = " ".join(document.split())
    api_lines = payday.admin["test"].get(f"/v1/payouts/{payouts[accounting.id]['id']}/lines").json["data"]
    assert {(line["customer"], line["description"]) for line in api_lines} == {("Customer One", "Pro plan, October")}
    bill_ids = {line["bill"] for line in api_lines}
    assert words.count("Customer One") == 2 and words.count("Pro plan, October") == 2
    assert all(bill_id in words for bill_id in bill_ids) and len(bill_ids) == 2
    assert "Charges A$110.01 Credits A$0.00 Gross = charges + credits A$110.01 Platform fee -A$30.00" in words
    assert len(smtp.handler.received) == 1
    # dispatched again, the event records nothing new
    with app.app_context():
        events = db.session.scalars(sa.select(Event).where(Event.tenant_id == payday.id,
                                                           Event.type == "payout.paid")).all()
        subscriber.record_deliveries(events, PAID_AT)
        db.session.commit()
    assert deliver(app, payday, mailer).done == 0
    assert [d["recipient"] for d in deliveries(payday) if d["kind"] == "payout_statement"] == [ACCOUNTING]


def test_finance_is_told_when_a_payouts_transfer_failed(app, payday, smtp, mailer):  # noqa: F811
    from aggregator.db import db
    from aggregator.payouts import transitions
    from aggregator.payouts.models import Payout

    accounting, _ = payday.apps
    payout_id = _payouts(payday)[accounting.id]["id"]
    assert payday.admin["test"].post(f"/v1/payouts/{payout_id}/approve").status_code == 200
    smtp.handler.received.clear()
    with app.app_context():
        transitions.mark_failed(db.session.get(Payout, payout_id), PAID_AT, failure_code="insufficient_funds",
                                failure_message="The platform's balance is too low.")
        db.session.commit()
    assert deliver(app, payday, mailer).done == 1
    [notice] = _sent_to(smtp, FINANCE)
    assert notice["Subject"] == "[test] Payout to Accounting App failed: A$80.01"
    text = _text(notice)
    assert "Reason:     The platform's balance is too low." in text and "Code:       insufficient_funds" in text
    assert _sent_to(smtp, ACCOUNTING) == []


def test_no_finance_address_no_review_email(app, tenant, smtp, mailer):  # noqa: F811
    tenant.customer("cust-1", name="Customer One")
    provider = tenant.provider(name="Accounting App")
    send(provider, "a1", amount="100.00")
    advance(tenant, AFTER_END)
    (tenant.invoice,) = tenant.admin["test"].get("/v1/invoices").json["data"]
    _pay(tenant, tenant.invoice["total"])
    advance(tenant, AFTER_PAYOUT_DAY)
    deliver(app, tenant, mailer)
    assert _payouts(tenant) and [d for d in deliveries(tenant) if d["kind"].startswith("payout")] == []


def test_marking_a_payout_paid_emails_its_statement_through_the_api(app, payday, smtp, mailer):  # noqa: F811
    accounting, _ = payday.apps
    admin = payday.admin["test"]
    payout_id = _payouts(payday)[accounting.id]["id"]
    assert admin.post(f"/v1/payouts/{payout_id}/approve").status_code == 200
    paid = admin.post(f"/v1/payouts/{payout_id}/mark_paid", {"reference": "SEPA-42"})
    assert paid.status_code == 200, paid.json
    assert deliver(app, payday, mailer).done == 1
    [message] = _sent_to(smtp, ACCOUNTING)
    assert "Bank transfer SEPA-42" in _text(message)
