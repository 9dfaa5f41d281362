"""Credit notes over HTTP: a finalized invoice corrected by credit notes numbered in their own
gapless sequence, never beyond what is left to credit per line and per invoice, settled as each
says (reducing what an open invoice asks, refunding a payment, or crediting the customer's
balance for its next invoice); refunds issue theirs by themselves, once; an Idempotency-Key
makes a retry answer the same note; voiding a finalized invoice only where the tenant's regime
allows it; the PDF read back; tenants and modes apart."""
from __future__ import annotations

import io

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from tests.support.charges import _event_types, _invoice, _pay_manually
from tests.support.invoicing import advance, send
from tests.support.mail import deliver, deliveries
from tests.support.payouts import AFTER_PAYOUT_DAY, _pay, _payouts

PAID = "2026-12-20T00:00:00+00:00"


def _credit(tenant, invoice_id: str, key: str | None = None, mode: str = "test", **body):
    headers = {"Idempotency-Key": key} if key else {}
    return tenant.admin[mode].post(f"/v1/invoices/{invoice_id}/credit_notes", body, headers=headers)


@pytest.fixture
def open_invoice(tenant) -> dict:
    """An open invoice of two lines, 100.00 and 20.00 AUD, 10 % tax: 132.00 due, nothing paid."""
    assert tenant.admin["test"].patch("/v1/tenant", {"default_tax_rate": "0.1"}).status_code == 200
    tenant.customer("cust-1")
    provider = tenant.provider()
    send(provider, "b1", amount="100.00", description="Pro plan")
    send(provider, "b2", amount="20.00", description="Extra seats")
    advance(tenant)
    invoice = _invoice(tenant)
    assert invoice["status"] == "open" and invoice["total"] == "132.00", invoice
    return invoice


def _line(invoice: dict, description: str) -> str:
    return next(line["bill"] for line in invoice["lines"] if line["description"] == description)


def test_an_open_invoice_is_credited_by_lines_then_by_amount_until_nothing_is_left(tenant, open_invoice):
    admin = tenant.admin["test"]
    pro = _line(open_invoice, "Pro plan")
    first = _credit(tenant, open_invoice["id"], lines=[{"invoice_line": pro, "amount": "30.00"}],
                    reason="product_unsatisfactory", memo="Outage on Nov 3")
    assert first.status_code == 201, first.json
    note = first.json
    assert note["object"] == "credit_note" and note["number"] == "INV-CN-2026-000001"
    assert note["invoice"] == open_invoice["id"] and note["invoice_number"] == open_invoice["number"]
    assert (note["subtotal"], note["tax"], note["total"]) == ("30.00", "3.00", "33.00")
    assert note["settlement"] == "reduce_due" and note["refund"] is None
    assert note["lines"] == [{"invoice_line": pro, "provider": open_invoice["lines"][0]["provider"],
                              "description": "Pro plan", "amount": "30.00"}]
    invoice = admin.get(f"/v1/invoices/{open_invoice['id']}").json
    assert invoice["amount_due"] == "99.00" and invoice["amount_remaining"] == "99.00"
    assert invoice["status"] == "open" and invoice["total"] == "132.00"

    too_much = _credit(tenant, open_invoice["id"], lines=[{"invoice_line": pro, "amount": "70.01"}], reason="other")
    assert too_much.status_code == 409 and too_much.json["error"]["code"] == "credit_exceeds_line"
    assert "lines.0.amount" in too_much.json["error"]["fields"]
    beyond = _credit(tenant, open_invoice["id"], amount="99.01", reason="other")
    assert beyond.status_code == 409 and beyond.json["error"]["code"] == "credit_exceeds_invoice"
    assert "amount" in beyond.json["error"]["fields"]

    rest = _credit(tenant, open_invoice["id"], amount="99.00", reason="order_change")
    assert rest.status_code == 201, rest.json
    assert rest.json["number"] == "INV-CN-2026-000002"
    assert (rest.json["subtotal"], rest.json["tax"], rest.json["total"]) == ("90.00", "9.00", "99.00")
    invoice = admin.get(f"/v1/invoices/{open_invoice['id']}").json
    assert invoice["status"] == "paid" and invoice["amount_due"] == "0.00"  # nothing more is asked
    nothing = _credit(tenant, open_invoice["id"], amount="0.01", reason="other")
    assert nothing.status_code == 409 and nothing.json["error"]["code"] == "credit_exceeds_invoice"

    listed = admin.get("/v1/credit_notes", query_string={"invoice": open_invoice["id"]}).json["data"]
    assert [n["id"] for n in listed] == [rest.json["id"], note["id"]]
    assert admin.get(f"/v1/credit_notes/{note['id']}").json == note
    assert _event_types(tenant).count("credit_note.created") == 2


def test_whole_lines_credited_give_back_exactly_the_invoices_tax(tenant, open_invoice):
    lines = [{"invoice_line": line["bill"]} for line in open_invoice["lines"]]
    response = _credit(tenant, open_invoice["id"], lines=lines, reason="duplicate")
    assert response.status_code == 201, response.json
    assert (response.json["subtotal"], response.json["tax"], response.json["total"]) == ("120.00", "12.00", "132.00")


def test_what_a_credit_note_cannot_be_asked_for_is_named(tenant, open_invoice):
    pro = _line(open_invoice, "Pro plan")
    cases = [
        ({"lines": [{"invoice_line": "bill_nope"}], "reason": "other"}, 422, "lines.0.invoice_line"),
        ({"lines": [{"invoice_line": pro}], "amount": "1.00", "reason": "other"}, 422, "lines"),
        ({"reason": "other"}, 422, "lines"),
        ({"amount": "1.001", "reason": "other"}, 422, "amount"),
        ({"amount": "-1.00", "reason": "other"}, 422, "amount"),
        ({"amount": "1.00", "reason": "because"}, 422, "reason"),
        ({"amount": "1.00", "reason": "other", "settlement": "refund"}, 409, "settlement"),
        ({"amount": "1.00", "reason": "other", "settlement": "customer_balance"}, 409, "settlement"),
        ({"lines": [{"invoice_line": pro}, {"invoice_line": pro}], "reason": "other"}, 422, "lines.1.invoice_line"),
    ]
    for body, status, field in cases:
        response = _credit(tenant, open_invoice["id"], **body)
        assert response.status_code == status, (body, response.json)
        assert field in response.json["error"]["fields"], (body, response.json)
    assert _credit(tenant, "inv_nope", amount="1.00", reason="other").status_code == 404
    assert tenant.admin["test"].get("/v1/credit_notes").json["data"] == []


def test_a_draft_is_not_credited(make_tenant):
    tenant = make_tenant(invoice_review="manual")
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="10.00")
    advance(tenant)
    draft = _invoice(tenant)
    assert draft["status"] == "draft"
    refused = _credit(tenant, draft["id"], amount="1.00", reason="other")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "invoice_not_creditable"


def test_a_retry_with_the_same_idempotency_key_answers_the_same_note(tenant, open_invoice):
    first = _credit(tenant, open_invoice["id"], key="cn-1", amount="10.00", reason="other")
    again = _credit(tenant, open_invoice["id"], key="cn-1", amount="10.00", reason="other")
    assert first.status_code == 201 and again.status_code == 201
    assert again.json == first.json
    invoice = tenant.admin["test"].get(f"/v1/invoices/{open_invoice['id']}").json
    assert invoice["amount_due"] == "122.00"
    assert len(tenant.admin["test"].get("/v1/credit_notes").json["data"]) == 1


def test_an_idempotency_key_longer_than_stored_is_refused_naming_the_header(tenant, open_invoice):
    response = _credit(tenant, open_invoice["id"], key="k" * 256, amount="10.00", reason="other")
    assert response.status_code == 422, response.json
    assert "Idempotency-Key" in response.json["error"]["fields"]
    assert tenant.admin["test"].get("/v1/credit_notes").json["data"] == []


def test_a_retry_of_a_whole_credit_answers_its_note_not_that_nothing_is_left(tenant, open_invoice):
    first = _credit(tenant, open_invoice["id"], key="cn-all", amount="132.00", reason="other")
    again = _credit(tenant, open_invoice["id"], key="cn-all", amount="132.00", reason="other")
    assert (first.status_code, again.status_code) == (201, 201) and again.json == first.json


def test_a_paid_invoice_is_credited_by_a_refund_and_a_refund_issues_its_own_note_once(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    admin = tenant.admin["test"]

    note = _credit(tenant, invoice["id"], amount="15.00", reason="requested_by_customer")  # default: refund
    assert note.status_code == 201, note.json
    assert note.json["settlement"] == "refund" and note.json["refund"].startswith("re_")
    refund = admin.get(f"/v1/refunds/{note.json['refund']}").json
    assert refund["status"] == "succeeded" and refund["amount"] == "15.00" and refund["gateway"] == "manual"

    by_itself = admin.post(f"/v1/invoices/{invoice['id']}/refunds", {"amount": "5.00", "reason": "duplicate"})
    assert by_itself.status_code == 201, by_itself.json
    notes = admin.get("/v1/credit_notes", query_string={"invoice": invoice["id"]}).json["data"]
    assert [(n["number"], n["settlement"], n["total"], n["refund"], n["reason"]) for n in notes] == [
        ("INV-CN-2026-000002", "refund", "5.00", by_itself.json["id"], "duplicate"),
        ("INV-CN-2026-000001", "refund", "15.00", note.json["refund"], "requested_by_customer")]
    assert admin.get(f"/v1/refunds/{by_itself.json['id']}").json["credit_note"] == notes[0]["id"]
    assert admin.get(f"/v1/refunds/{note.json['refund']}").json["credit_note"] == note.json["id"]
    over = _credit(tenant, invoice["id"], amount="30.01", reason="other")
    assert over.status_code == 409 and over.json["error"]["code"] == "credit_exceeds_invoice"
    assert admin.get(f"/v1/invoices/{invoice['id']}").json["amount_refunded"] == "20.00"


def test_a_credit_to_the_customers_balance_is_taken_off_its_next_invoice(app, tenant):
    tenant.customer("cust-1")
    provider = tenant.provider()
    send(provider, "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    note = _credit(tenant, invoice["id"], amount="12.00", reason="order_change", settlement="customer_balance")
    assert note.status_code == 201, note.json
    admin = tenant.admin["test"]
    assert admin.get("/v1/customers/cust-1").json["credit_balance"] == "12.00"
    refund = admin.get(f"/v1/refunds/{note.json['refund']}").json
    assert refund["gateway"] == "balance" and refund["status"] == "succeeded"
    assert len(admin.get("/v1/credit_notes").json["data"]) == 1  # its refund issued no second note

    send(provider, "b2", amount="30.00")
    advance(tenant, "2027-01-26T00:00:00+00:00")
    invoices = admin.get("/v1/invoices").json["data"]
    latest = invoices[0]
    assert latest["id"] != invoice["id"]
    assert latest["total"] == "18.00", latest
    assert any(line["kind"] == "credit" and line["amount"] == "-12.00" for line in latest["lines"])
    assert admin.get("/v1/customers/cust-1").json["credit_balance"] == "0.00"


def test_the_credit_note_pdf_reads_back(tenant, open_invoice):
    pro = _line(open_invoice, "Pro plan")
    note = _credit(tenant, open_invoice["id"], lines=[{"invoice_line": pro, "amount": "30.00"}],
                   reason="product_unsatisfactory").json
    response = tenant.admin["test"].get(f"/v1/credit_notes/{note['id']}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    for expected in ("Credit note", note["number"], open_invoice["number"], "Pro plan", "A$30.00", "A$3.00",
                     "A$33.00", "Deducted from the amount due", "Product unsatisfactory"):
        assert expected in text, (expected, text)
    again = tenant.admin["test"].get(f"/v1/credit_notes/{note['id']}/pdf")
    assert again.data == response.data and again.headers["ETag"] == response.headers["ETag"]


def test_credit_notes_stay_in_their_tenant_and_mode(make_tenant, tenant, open_invoice):
    note = _credit(tenant, open_invoice["id"], amount="1.00", reason="other").json
    other = make_tenant(name="Other")
    assert other.admin["test"].get(f"/v1/credit_notes/{note['id']}").status_code == 404
    assert other.admin["test"].get("/v1/credit_notes").json["data"] == []
    assert _credit(other, open_invoice["id"], amount="1.00", reason="other").status_code == 404
    assert tenant.admin["live"].get(f"/v1/credit_notes/{note['id']}").status_code == 404
    assert tenant.admin["live"].get(f"/v1/credit_notes/{note['id']}/pdf").status_code == 404


def _set(app, tenant_id: str, **values) -> None:
    from aggregator.accounts.models import TenantSettings
    from aggregator.db import db

    with app.app_context():
        db.session.execute(sa.update(TenantSettings).where(TenantSettings.tenant_id == tenant_id).values(**values))
        db.session.commit()


def test_a_finalized_invoice_is_voided_only_where_the_tenants_regime_allows(app, tenant, open_invoice):
    _set(app, tenant.id, country="DE")
    admin = tenant.admin["test"]
    refused = admin.post(f"/v1/invoices/{open_invoice['id']}/void", {"reason": "wrong customer"})
    assert refused.status_code == 409 and refused.json["error"]["code"] == "void_not_allowed"
    assert "credit note" in refused.json["error"]["message"]
    _set(app, tenant.id, void_finalized=True)  # the tenant's choice wins over its country's default
    note = _credit(tenant, open_invoice["id"], amount="1.00", reason="other")
    assert note.status_code == 201
    credited = admin.post(f"/v1/invoices/{open_invoice['id']}/void", {"reason": "wrong customer"})
    assert credited.status_code == 409 and credited.json["error"]["code"] == "void_not_allowed"


def test_outside_the_eu_and_by_choice_a_finalized_invoice_is_voided(app, make_tenant):
    for settings in ({"country": "AU"}, {"country": "FR", "void_finalized": True}, {}):
        tenant = make_tenant()
        if settings:
            _set(app, tenant.id, **settings)
        tenant.customer("cust-1")
        send(tenant.provider(), "b1", amount="10.00")
        advance(tenant)
        invoice = _invoice(tenant)
        voided = tenant.admin["test"].post(f"/v1/invoices/{invoice['id']}/void", {"reason": "wrong customer"})
        assert voided.status_code == 200 and voided.json["status"] == "void", (settings, voided.json)


def test_the_customer_is_emailed_its_credit_note_with_the_pdf_once(app, tenant, smtp, mailer):
    tenant.customer("cust-1", name="Ann", email="ann@example.com")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, PAID)
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 5000)
    note = _credit(tenant, invoice["id"], amount="12.00", reason="order_change", settlement="customer_balance").json
    deliver(app, tenant, mailer)
    deliver(app, tenant, mailer)  # a second pass sends nothing more
    emails = [r.message for r in smtp.handler.to("ann@example.com")]
    subjects = [m["Subject"] for m in emails]
    # test mode: "[test] " first
    assert subjects.count(f"[test] Credit note {note['number']} for invoice {invoice['number']} from Marketplace") == 1
    assert not any("Refund" in s for s in subjects)  # its refund to the balance is the note's to tell
    email = next(m for m in emails if "Credit note" in m["Subject"])
    text = email.get_body(preferencelist=("plain",)).get_content()
    assert "A$12.00" in text and "taken off your next invoice" in text
    (pdf,) = [part for part in email.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == f"{note['number']}.pdf"
    attached = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.get_content())).pages)
    assert "Credit note" in attached and note["number"] in attached and invoice["number"] in attached
    fetched = tenant.admin["test"].get(f"/v1/credit_notes/{note['id']}/pdf")
    assert fetched.data == pdf.get_content()  # rendered once, stored: the same document
    assert [d["kind"] for d in deliveries(tenant, recipient="ann@example.com")].count("credit_note") == 1


@pytest.mark.parametrize("settlement", ["refund", "customer_balance"])
def test_a_providers_share_of_a_credit_is_clawed_back_from_its_next_payout(market, settlement):
    """The market's invoice of 135.01 paid and paid out; a credit note of 27.00 then takes back
    each provider's share of it by the refund rule: clawback lines on the next payout day."""
    from aggregator.revenue.parts import InvoicedBill, InvoiceParts
    from aggregator.revenue.shares import clawback
    from aggregator.revenue.terms import Split

    admin = market.admin["test"]
    accounting, sms = market.apps
    _pay(market, market.invoice["total"])
    advance(market, AFTER_PAYOUT_DAY)
    for payout in _payouts(market).values():
        assert admin.post(f"/v1/payouts/{payout['id']}/approve").status_code == 200
        assert admin.post(f"/v1/payouts/{payout['id']}/mark_paid", {"reference": "t"}).status_code == 200
    note = _credit(market, market.invoice["id"], amount="27.00", reason="other", settlement=settlement).json
    advance(market, "2027-01-10T00:00:00+00:00")
    later = _payouts(market, period="2026-11-25")
    expected = clawback(2700, InvoiceParts("AUD", (
        InvoicedBill("a1", accounting.id, "AUD", 10000, 10000, Split(3000, 7000), revenue_share=True),
        InvoicedBill("a2", accounting.id, "AUD", 1001, 1001, Split(0, 1001)),
        InvoicedBill("s1", sms.id, "AUD", 2500, 2500, Split(0, 2500), revenue_share=True)), 0), 13501)
    for provider in (accounting, sms):
        payout = later[provider.id]
        net = sum(b.net for b in expected.bills if b.provider_id == provider.id)
        assert payout["clawback"] == f"-{-net // 100}.{-net % 100:02d}", (provider.id, payout)
        assert payout["amount"] == "0.00" and payout["carry"] == payout["clawback"]
        lines = admin.get(f"/v1/payouts/{payout['id']}/lines").json["data"]
        assert {line["source"] for line in lines} == {note["refund"]}


def test_a_card_payment_is_credited_through_a_stripe_refund(stripe_tenant, localstripe):
    from tests.localstripe_server import CARD_OK
    from tests.support.charges import _customer_paying_with

    _customer_paying_with(stripe_tenant, localstripe, CARD_OK)
    send(stripe_tenant.provider(), "b1", amount="120.00")
    advance(stripe_tenant, PAID)
    invoice = _invoice(stripe_tenant)
    assert invoice["status"] == "paid"
    note = _credit(stripe_tenant, invoice["id"], key="cn-card", amount="20.00", reason="order_change")
    assert note.status_code == 201, note.json
    assert note.json["settlement"] == "refund"
    admin = stripe_tenant.admin["test"]
    refund = admin.get(f"/v1/refunds/{note.json['refund']}").json  # no reason: localstripe takes none
    assert (refund["status"], refund["gateway"], refund["amount"]) == ("succeeded", "stripe", "20.00"), refund
    assert refund["note"] == f"Credit note {note.json['number']}"
    at_stripe = [r for r in localstripe.client.v1.refunds.list(params={"limit": 100}).auto_paging_iter()
                 if r.to_dict().get("metadata", {}).get("refund_id") == refund["id"]]
    assert [r.amount for r in at_stripe] == [2000]
    again = _credit(stripe_tenant, invoice["id"], key="cn-card", amount="20.00", reason="order_change")
    assert again.json["id"] == note.json["id"]  # a retry: no second note, no second refund
    assert admin.get(f"/v1/invoices/{invoice['id']}").json["amount_refunded"] == "20.00"
    assert len(admin.get("/v1/credit_notes").json["data"]) == 1
