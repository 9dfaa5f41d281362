"""The payment emails, sent to a real SMTP server (aiosmtpd): what the customer is told when its
invoice is paid, a charge is declined or awaits its authentication, or money is given back, and
what finance is told when an invoice is given up on or a charge is disputed. Outcomes are applied
by the charge service's own `apply_outcomes` (what a charge run and Stripe's webhooks call), as
of instants on the tenant's clock; the tenant is in Australia/Sydney."""
from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from aggregator.payments.gateway import Outcome
from tests.support.invoicing import advance, send
from tests.support.mail import deliver, deliveries

ANN, FINANCE = "ann@example.com", "finance@market.example"
# The invoices are due on 2 December, charged at 09:00 in Sydney: 1 December 22:00 UTC.
CHARGE_AT = datetime.fromisoformat("2026-12-01T22:00:00+00:00")
DECLINED = Outcome("failed", payment_intent_id="pi_declined", failure_code="card_declined",
                   decline_code="insufficient_funds", message="Your card has insufficient funds.")


@pytest.fixture
def billed(app, tenant, smtp, mailer):  # noqa: F811
    """Ann (with an address) and Nobody (without) have an open invoice of A$19.99 each; finance
    has an address; the invoices' own emails are already sent."""
    response = tenant.admin["test"].patch("/v1/tenant", {
        "email_from_name": "Market Ltd", "email_from": "billing@market.example", "finance_email": FINANCE})
    assert response.status_code == 200, response.json
    tenant.customer("cust-1", name="Ann", email=ANN)
    tenant.customer("cust-2", name="Nobody")
    provider = tenant.provider()
    send(provider, "k1", customer="cust-1")
    send(provider, "k2", customer="cust-2")
    advance(tenant)
    deliver(app, tenant, mailer)
    smtp.handler.received.clear()
    return tenant


def invoice_of(app, tenant, external_id: str = "cust-1") -> str:
    from aggregator.accounts.models import Customer
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db

    with app.app_context():
        return db.session.scalar(sa.select(Invoice.id).join(Customer, Customer.id == Invoice.customer_id).where(
            Invoice.tenant_id == tenant.id, Customer.external_id == external_id))


def attempt(app, tenant, invoice_id: str, outcome: Outcome, as_of: datetime = CHARGE_AT) -> None:
    """A card charge of what is left to pay, started and settled with `outcome` as of `as_of`."""
    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db, new_id
    from aggregator.payments import charge_service, transitions
    from aggregator.payments.models import Payment

    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        payment_id, number = new_id("pay"), invoice.attempt_count + 1
        transitions.start_attempts([{
            "id": payment_id, "tenant_id": tenant.id, "livemode": False, "invoice_id": invoice_id,
            "customer_id": invoice.customer_id, "gateway": "stripe", "method": "card", "trigger": "scheduled",
            "attempt": number, "amount": invoice.amount_due - invoice.amount_paid, "currency": invoice.currency,
            "created_at": as_of, "requests": 0, "hard_decline": False, "amount_refunded": 0}])
        invoice.attempt_count = number
        db.session.flush()
        outcome = dataclasses.replace(outcome, payment_intent_id=f"pi_{payment_id}")
        charge_service.apply_outcomes(tenant_settings(tenant.id, False), [(db.session.get(Payment, payment_id),
                                                                           outcome)], as_of)
        db.session.commit()


def received_by(smtp, address: str) -> list:  # noqa: F811
    return [r.message for r in smtp.handler.to(address)]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def number_of(tenant, invoice_id: str) -> str:
    return tenant.admin["test"].get(f"/v1/invoices/{invoice_id}").json["number"]


# --- the customer ---------------------------------------------------------------------------

def test_a_card_payment_sends_the_customer_a_receipt_with_amount_date_method_and_period(app, billed, smtp,
                                                                                         mailer):  # noqa: F811
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, Outcome("succeeded", charge_id="ch_1"))
    assert deliver(app, billed, mailer).done == 1
    [receipt] = received_by(smtp, ANN)
    number = number_of(billed, invoice)
    assert receipt["Subject"] == f"[test] Receipt for invoice {number} from Marketplace: A$19.99 paid"
    assert receipt["From"] == "Market Ltd <billing@market.example>"
    text = text_of(receipt)
    assert "Hello Ann" in text and number in text and "A$19.99" in text
    assert "Paid on:        Dec 2, 2026" in text  # 1 December 22:00 UTC is the 2nd in Sydney
    assert "Paid by:        card" in text and "Period:" in text and "Oct" in text
    assert "<table" in html_of(receipt) and "A$19.99" in html_of(receipt)
    [delivery] = [d for d in deliveries(billed) if d["kind"] == "receipt"]
    assert (delivery["recipient"], delivery["status"], delivery["invoice"]) == (ANN, "sent", invoice)


def test_a_payment_received_by_bank_transfer_is_receipted_as_one_and_a_customer_without_address_gets_none(
        app, billed, smtp, mailer):  # noqa: F811
    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate import transitions as invoice_transitions
    from aggregator.consolidate.models import Invoice
    from aggregator.db import db
    from aggregator.payments import transitions

    paid_at = datetime.fromisoformat("2026-11-27T03:00:00+00:00")
    with app.app_context():
        for external_id in ("cust-1", "cust-2"):
            invoice = db.session.get(Invoice, invoice_of(app, billed, external_id))
            transitions.record_received({
                "tenant_id": billed.id, "livemode": False, "invoice_id": invoice.id,
                "customer_id": invoice.customer_id, "gateway": "manual", "method": "bank_transfer",
                "trigger": "recorded", "amount": invoice.amount_due, "currency": invoice.currency,
                "reference": "TRF-881", "received_on": paid_at.date(), "created_at": paid_at}, paid_at)
            invoice.amount_paid = invoice.amount_due
            db.session.flush()
            invoice_transitions.mark_paid(tenant_settings(billed.id, False), [invoice.id], paid_at)
        db.session.commit()
    assert deliver(app, billed, mailer).done == 1
    [receipt] = received_by(smtp, ANN)
    assert "Paid by:        bank transfer (TRF-881)" in text_of(receipt) and "Nov 27, 2026" in text_of(receipt)
    unsendable = [d for d in deliveries(billed) if d["kind"] == "receipt" and d["recipient"] is None]
    assert [(d["status"], d["last_error"][:10]) for d in unsendable] == [("failed", "no_address")]


def test_an_invoice_paid_with_nothing_to_pay_sends_no_receipt(app, billed, smtp, mailer):  # noqa: F811
    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate import transitions as invoice_transitions
    from aggregator.db import db

    with app.app_context():
        invoice_transitions.mark_paid(tenant_settings(billed.id, False), [invoice_of(app, billed)], CHARGE_AT)
        db.session.commit()
    assert deliver(app, billed, mailer).done == 0
    assert smtp.handler.received == [] and [d for d in deliveries(billed) if d["kind"] == "receipt"] == []


def test_a_declined_charge_tells_the_customer_why_and_the_next_attempts_date_in_the_tenants_time_zone(
        app, billed, smtp, mailer):  # noqa: F811
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, DECLINED)
    assert deliver(app, billed, mailer).done == 1
    [failed] = received_by(smtp, ANN)
    number = number_of(billed, invoice)
    # retried 3 days after the first failure at the same local time: 4 December 22:00 UTC, the 5th in Sydney
    assert failed["Subject"] == (f"[test] Payment of A$19.99 for invoice {number} failed: "
                                 "we will try again on Dec 5, 2026")
    text = text_of(failed)
    assert "Reason:         Your card has insufficient funds." in text
    assert "We will try again on Dec 5, 2026 at 9:00" in text
    assert "update your payment method" not in text and "last attempt" not in text
    assert "Dec 5, 2026" in html_of(failed)
    [delivery] = [d for d in deliveries(billed) if d["kind"] == "payment_failed"]
    assert (delivery["recipient"], delivery["status"]) == (ANN, "sent")
    assert [d["kind"] for d in deliveries(billed, recipient=FINANCE)] == ["period_summary"]  # finance: nothing


def test_a_hard_decline_asks_the_customer_to_update_the_payment_method(app, billed, smtp, mailer):  # noqa: F811
    attempt(app, billed, invoice_of(app, billed),
            Outcome("failed", failure_code="card_declined", decline_code="lost_card", message=None))
    deliver(app, billed, mailer)
    [failed] = received_by(smtp, ANN)
    assert failed["Subject"].endswith(": please update your payment method")
    text = text_of(failed)
    assert "please update your payment method" in text and "The card was reported lost." in text
    assert "try again on" not in text


def test_the_last_failure_says_no_more_retries_and_finance_hears_the_invoice_is_uncollectible(
        app, billed, smtp, mailer):  # noqa: F811
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, DECLINED)
    attempt(app, billed, invoice, DECLINED, CHARGE_AT + timedelta(days=8))  # past the last retry day
    assert billed.admin["test"].get(f"/v1/invoices/{invoice}").json["status"] == "uncollectible"
    assert deliver(app, billed, mailer).done == 3
    first, last = received_by(smtp, ANN)
    assert "try again on Dec 5, 2026" in text_of(first)
    assert "This was our last attempt: we will not retry the payment." in text_of(last)
    assert "try again" not in text_of(last) and last["Subject"].endswith("failed")
    [notice] = received_by(smtp, FINANCE)
    number = number_of(billed, invoice)
    assert notice["Subject"] == f"[test] Invoice {number} uncollectible: A$19.99 from Ann"
    text = text_of(notice)
    assert "Customer:   Ann (cust-1, ann@example.com)" in text and "Attempts:   2" in text
    assert "Amount due: A$19.99" in text and "Last failure: Your card has insufficient funds." in text
    [delivery] = [d for d in deliveries(billed) if d["kind"] == "invoice_uncollectible"]
    assert (delivery["recipient"], delivery["invoice"]) == (FINANCE, invoice)


def test_a_charge_awaiting_authentication_asks_the_customer_to_confirm_it(app, billed, smtp, mailer):  # noqa: F811
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, Outcome("requires_action", gateway_status="requires_action"))
    deliver(app, billed, mailer)
    [asked] = received_by(smtp, ANN)
    number = number_of(billed, invoice)
    assert asked["Subject"] == f"[test] Action required: confirm your payment of A$19.99 for invoice {number}"
    text = text_of(asked)
    assert "Your bank needs you to confirm the payment of A$19.99" in text and "What to do:" in text
    assert [d["kind"] for d in deliveries(billed, recipient=ANN)][0] == "payment_action_required"


def test_a_refund_tells_the_customer_what_was_given_back(app, billed, smtp, mailer):  # noqa: F811
    from aggregator.db import db
    from aggregator.payments import transitions
    from aggregator.payments.models import Payment

    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, Outcome("succeeded", charge_id="ch_1"))
    refunded_at = CHARGE_AT + timedelta(days=3)
    with app.app_context():
        payment = db.session.scalars(sa.select(Payment).where(Payment.invoice_id == invoice)).one()
        transitions.create_refund({"tenant_id": billed.id, "livemode": False, "invoice_id": invoice,
                                   "payment_id": payment.id, "amount": 500, "currency": "AUD",
                                   "reason": "requested_by_customer", "gateway": "manual", "created_at": refunded_at},
                                  refunded_at, settled=True)
        db.session.commit()
    assert deliver(app, billed, mailer).done == 3  # the receipt, the refund, the credit note it issued
    receipt, refund, credit_note = received_by(smtp, ANN)
    assert f"Credit note INV-CN-2026-000001 for invoice {number_of(billed, invoice)}" in credit_note["Subject"]
    assert refund["Subject"] == f"[test] Refund of A$5.00 for invoice {number_of(billed, invoice)} from Marketplace"
    text = text_of(refund)
    assert "refunded A$5.00 of your payment" in text and "for your request" in text
    assert "Refunded on:    Dec 5, 2026" in text and "the card you paid with" in text


# --- finance ------------------------------------------------------------------------------------

def _dispute(app, tenant, invoice_id: str, dispute: dict) -> None:
    from aggregator.consolidate.models import Invoice
    from aggregator.consolidate.snapshots import columns, invoice_snapshot
    from aggregator.db import db
    from aggregator.events.service import NewEvent, record

    with app.app_context():
        invoice = db.session.get(Invoice, invoice_id)
        snapshot = invoice_snapshot(columns(invoice), invoice.customer.external_id)
        record(tenant.id, False, CHARGE_AT + timedelta(days=10),
               [NewEvent("invoice.disputed", invoice_id, {"object": snapshot, "dispute": dispute})])
        db.session.commit()


def test_a_disputed_charge_is_told_to_finance_from_the_invoice_snapshot(app, billed, smtp, mailer):  # noqa: F811
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, Outcome("succeeded", charge_id="ch_1"))
    _dispute(app, billed, invoice, {"id": "dp_1", "amount": 1999, "reason": "product_not_received"})
    _dispute(app, billed, invoice, {})  # a dispute the webhook told little of
    assert deliver(app, billed, mailer).done == 3  # the receipt, two disputes
    full, bare = received_by(smtp, FINANCE)
    number = number_of(billed, invoice)
    assert full["Subject"] == f"[test] Charge disputed: invoice {number}, A$19.99"
    text = text_of(full)
    assert "Customer: Ann (cust-1)" in text and "Amount disputed: A$19.99" in text
    assert "Reason:   product not received" in text and "dp_1" in text
    assert bare["Subject"] == f"[test] Charge disputed: invoice {number}"
    assert "Invoice total:   A$19.99" in text_of(bare) and "Reason" not in text_of(bare)
    assert {d["kind"] for d in deliveries(billed, recipient=FINANCE)} == {"period_summary", "invoice_disputed"}


def test_finance_hears_nothing_without_a_finance_address(app, billed, smtp, mailer):  # noqa: F811
    assert billed.admin["test"].patch("/v1/tenant", {"finance_email": None}).status_code == 200
    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, DECLINED)
    attempt(app, billed, invoice, DECLINED, CHARGE_AT + timedelta(days=8))
    _dispute(app, billed, invoice, {"id": "dp_1"})
    deliver(app, billed, mailer)
    assert received_by(smtp, FINANCE) == [] and len(received_by(smtp, ANN)) == 2


# --- once, and never about a void invoice --------------------------------------------------------

def test_each_payment_email_is_sent_once_however_often_its_event_is_dispatched(app, billed, smtp,
                                                                               mailer):  # noqa: F811
    from aggregator.db import db
    from aggregator.events.models import Event

    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, DECLINED)
    attempt(app, billed, invoice, DECLINED, CHARGE_AT + timedelta(days=8))
    deliver(app, billed, mailer)
    before = len(deliveries(billed))
    with app.app_context():
        db.session.execute(sa.update(Event).where(Event.tenant_id == billed.id).values(dispatched=False))
        db.session.commit()
    assert deliver(app, billed, mailer).done == 0
    assert len(smtp.handler.received) == 3 and len(deliveries(billed)) == before


def test_no_payment_email_is_sent_about_a_void_invoice(app, billed, smtp, mailer):  # noqa: F811
    from aggregator import due
    from aggregator.events.dispatch import DISPATCH_QUEUE

    invoice = invoice_of(app, billed)
    attempt(app, billed, invoice, DECLINED)
    with app.app_context():  # dispatched (the delivery recorded), not sent yet
        due.drain(DISPATCH_QUEUE, app.extensions["aggregator.adapters"], lane=due.Lane(billed.id, False))
    assert billed.admin["test"].post(f"/v1/invoices/{invoice}/void", {"reason": "billed in error"}).status_code == 200
    _dispute(app, billed, invoice, {"id": "dp_1"})  # about the void invoice: not even recorded
    deliver(app, billed, mailer)
    assert smtp.handler.received == []
    [unsent] = [d for d in deliveries(billed) if d["kind"] != "invoice" and d["kind"] != "period_summary"]
    assert unsent["kind"] == "payment_failed" and unsent["status"] == "failed" and "voided" in unsent["last_error"]
