"""The payment emails of real charges against localstripe, moved by the test clock and delivered
to a real SMTP server (aiosmtpd): a declined card, then a working one."""
from __future__ import annotations

from tests.localstripe_server import CARD_DECLINED, CARD_OK
from tests.support.charges import _customer_paying_with, _invoice
from tests.support.invoicing import advance, send
from tests.support.mail import deliver, deliveries

ANN = "ann@example.com"


def test_a_declined_card_emails_payment_failed_with_the_retry_date_then_a_receipt_once_paid(
        app, stripe_tenant, localstripe, smtp, mailer):  # noqa: F811
    _customer_paying_with(stripe_tenant, localstripe, CARD_DECLINED)
    assert stripe_tenant.admin["test"].patch("/v1/customers/cust-1", {"email": ANN, "name": "Ann"}).status_code == 200
    send(stripe_tenant.provider(), "b1", amount="50.00")
    advance(stripe_tenant, "2026-12-03T00:00:00+00:00")  # charged on 2 December 09:00 Sydney: declined
    invoice = _invoice(stripe_tenant)
    assert invoice["next_charge_at"] == "2026-12-04T22:00:00+00:00"
    deliver(app, stripe_tenant, mailer)
    # still unpaid at the end of its due date (2 December, Sydney): overdue too
    invoice_email, failed, overdue = (r.message for r in smtp.handler.to(ANN))
    assert overdue["Subject"] == (f"[test] Invoice {invoice['number']} from Marketplace is overdue: A$50.00 was due on "
                                  "Dec 2, 2026")
    assert invoice_email["Subject"].startswith(f"[test] Invoice {invoice['number']}")
    # a card on file and Stripe settings: the invoice says it will be charged, and when
    assert "We will charge A$50.00 to your payment method on file on Dec 2, 2026" in \
        invoice_email.get_body(preferencelist=("plain",)).get_content()
    # the retry is 4 December 22:00 UTC: in the tenant's time zone (Sydney), the 5th at 09:00
    assert failed["Subject"] == (f"[test] Payment of A$50.00 for invoice {invoice['number']} failed: "
                                 "we will try again on Dec 5, 2026")
    text = failed.get_body(preferencelist=("plain",)).get_content()
    assert "We will try again on Dec 5, 2026 at 9:00" in text and "A$50.00" in text and "Reason:" in text

    stripe_customer, method = localstripe.customer_with_card(CARD_OK)  # a working card before the retry
    assert stripe_tenant.admin["test"].patch("/v1/customers/cust-1", {
        "stripe_customer_id": stripe_customer, "stripe_payment_method": method}).status_code == 200
    advance(stripe_tenant, "2026-12-06T00:00:00+00:00")
    assert _invoice(stripe_tenant)["status"] == "paid"
    deliver(app, stripe_tenant, mailer)
    receipt = smtp.handler.to(ANN)[-1].message
    assert receipt["Subject"] == f"[test] Receipt for invoice {invoice['number']} from Marketplace: A$50.00 paid"
    assert "Paid on:        Dec 5, 2026" in receipt.get_body(preferencelist=("plain",)).get_content()
    assert sorted(d["kind"] for d in deliveries(stripe_tenant, recipient=ANN)) == [
        "invoice", "invoice_overdue", "payment_failed", "receipt"]
