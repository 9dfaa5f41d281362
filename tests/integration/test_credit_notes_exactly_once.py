"""Credit notes exactly once: numbers gapless under concurrency (the sequence row is locked
until the note's transaction ends, and a note refused after taking its number gives it back);
never more credited than the invoice has, however many requests race; the same
Idempotency-Key sent at once by many answers one note; and the books' receivable follows."""
from __future__ import annotations

import sqlalchemy as sa

from aggregator.consolidate.models import CreditNote, Invoice
from aggregator.db import db
from aggregator.ledger.models import LedgerEntry, LedgerJournal
from tests.support.charges import _invoice, _pay_manually
from tests.support.invoicing import advance, send
from tests.support.races import race


def _open_invoice(tenant, customers: int = 1) -> list[dict]:
    provider = tenant.provider()
    for n in range(customers):
        tenant.customer(f"cust-{n}")
        send(provider, f"b{n}", customer=f"cust-{n}", amount="120.00")
    advance(tenant)
    return tenant.admin["test"].get("/v1/invoices").json["data"]


def _credit(caller, invoice_id: str, key: str | None = None, **body):
    headers = {"Idempotency-Key": key} if key else {}
    return caller.post(f"/v1/invoices/{invoice_id}/credit_notes", {"reason": "other", **body}, headers=headers)


def _numbers(app, tenant_id: str) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(sa.select(CreditNote.number).where(CreditNote.tenant_id == tenant_id)))


def test_racing_notes_are_numbered_without_gaps_and_never_credit_more_than_the_invoice(
        postgres_only, app, tenant):
    invoices = _open_invoice(tenant, customers=3)
    key = tenant.admin["test"].key
    # 12 requests of 50.00 on three invoices of 120.00: two fit on each, the third is refused
    answers = race(app, key, 12, lambda caller, i: _credit(caller, invoices[i % 3]["id"], amount="50.00"))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * 6 + [409] * 6, [a.json for a in answers]
    assert {a.json["error"]["code"] for a in answers if a.status_code == 409} <= {
        "credit_exceeds_invoice", "credit_not_settleable"}
    assert _numbers(app, tenant.id) == [f"INV-CN-2026-{n:06d}" for n in range(1, 7)]
    for invoice in tenant.admin["test"].get("/v1/invoices").json["data"]:
        assert invoice["amount_due"] == "20.00" and invoice["status"] == "open"


def test_the_same_idempotency_key_sent_at_once_issues_one_note(postgres_only, app, tenant):
    (invoice,) = _open_invoice(tenant)
    answers = race(app, tenant.admin["test"].key, 8,
                   lambda caller, i: _credit(caller, invoice["id"], key="one-note", amount="10.00"))
    assert {a.status_code for a in answers} == {201}, [a.json for a in answers]
    assert len({a.json["id"] for a in answers}) == 1
    assert _numbers(app, tenant.id) == ["INV-CN-2026-000001"]
    assert tenant.admin["test"].get(f"/v1/invoices/{invoice['id']}").json["amount_due"] == "110.00"


def test_a_note_refused_after_taking_its_number_gives_it_back(app, tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "b1", amount="50.00")
    advance(tenant, "2026-12-20T00:00:00+00:00")
    invoice = _invoice(tenant)
    _pay_manually(app, tenant, invoice, 1500)
    _pay_manually(app, tenant, invoice, 1500)  # 30.00 collected, 15.00 by each payment
    admin = tenant.admin["test"]
    # 20.00 is within what was collected, so the note is numbered; no one payment has 20.00 to
    # refund, so its refund is refused, and the note with it
    refused = _credit(admin, invoice["id"], amount="20.00", settlement="refund")
    assert refused.status_code == 409 and refused.json["error"]["code"] == "refund_exceeds_payment", refused.json
    assert _numbers(app, tenant.id) == []
    issued = _credit(admin, invoice["id"], amount="15.00", settlement="refund")
    assert issued.status_code == 201 and issued.json["number"] == "INV-CN-2026-000001", issued.json


def test_the_books_follow_what_a_credit_note_takes_off_an_invoice(app, tenant):
    (invoice,) = _open_invoice(tenant)
    note = _credit(tenant.admin["test"], invoice["id"], amount="45.00").json
    with app.app_context():
        rows = db.session.execute(
            sa.select(LedgerEntry.account, LedgerEntry.amount)
            .join(LedgerJournal, LedgerJournal.id == LedgerEntry.journal_id)
            .where(LedgerJournal.kind == "credit_note", LedgerJournal.object_id == note["id"])).all()
        entries = dict(rows)
        assert entries["receivable"] == -4500 and sum(entries.values()) == 0
        provider_payable = next(a for a in entries if a.startswith("provider_payable:"))
        assert entries[provider_payable] == 3150 and entries["refunds"] == 1350  # 70 % / 30 % of the bill
        receivable = db.session.scalar(sa.select(sa.func.sum(LedgerEntry.amount)).where(
            LedgerEntry.tenant_id == tenant.id, LedgerEntry.account == "receivable"))
        assert receivable == db.session.get(Invoice, invoice["id"]).amount_due == 7500
