"""Concurrent callers of one change (finance approving a payout twice at once, two people
recording one bank transfer, two voids): exactly one changes it and is answered 200; every
other caller is answered 409 with the state as it is now, never another caller's details.
On SQLite the use cases take the write lock before reading what they rely on; on PostgreSQL
they lock the row they read. Both backends: run with and without AGGREGATOR_TEST_DATABASE_URL."""
from __future__ import annotations

import pytest

from tests.support.invoicing import advance
from tests.support.payouts import AFTER_PAYOUT_DAY, _pay, _payouts
from tests.support.races import race

pytestmark = pytest.mark.slow


def _refused_as_conflict(response) -> None:
    assert response.status_code == 409, response.json
    assert set(response.json) == {"error"} and response.json["error"]["type"] == "conflict"


def _pending_payouts(market) -> list[dict]:
    _pay(market, market.invoice["total"])
    advance(market, AFTER_PAYOUT_DAY)
    payouts = list(_payouts(market).values())
    assert {p["status"] for p in payouts} == {"pending_review"} and len(payouts) == 2
    return payouts


def test_eight_concurrent_approvals_of_one_payout_answer_one_200_and_seven_409(app, market):
    admin = market.admin["test"]
    for payout in _pending_payouts(market):
        responses = race(app, admin.key, 8, lambda c, i, payout=payout: c.post(f"/v1/payouts/{payout['id']}/approve"))
        assert sorted(r.status_code for r in responses) == [200] + [409] * 7
        for response in responses:
            if response.status_code == 409:
                _refused_as_conflict(response)
                assert "approved" in response.json["error"]["message"]
    events = [e["type"] for e in admin.get("/v1/events", query_string={"limit": 100}).json["data"]]
    assert events.count("payout.approved") == 2


def test_concurrent_bank_transfer_recordings_answer_one_200_and_never_show_the_winners_reference(app, market):
    admin = market.admin["test"]
    for payout in _pending_payouts(market):
        assert admin.post(f"/v1/payouts/{payout['id']}/approve").status_code == 200
        references = [f"SEPA-{payout['id'][-6:]}-{i}" for i in range(8)]
        responses = race(app, admin.key, 8, lambda c, i, payout=payout, references=references: c.post(
            f"/v1/payouts/{payout['id']}/mark_paid", {"reference": references[i]}))
        assert sorted(r.status_code for r in responses) == [200] + [409] * 7
        (winner,) = [i for i, r in enumerate(responses) if r.status_code == 200]
        assert responses[winner].json["reference"] == references[winner]
        for i, response in enumerate(responses):
            if i != winner:
                _refused_as_conflict(response)
                assert "This payout is paid" in response.json["error"]["message"]
                assert references[winner] not in str(response.json)
        stored = admin.get(f"/v1/payouts/{payout['id']}").json
        assert (stored["status"], stored["reference"]) == ("paid", references[winner])
    events = [e["type"] for e in admin.get("/v1/events", query_string={"limit": 100}).json["data"]]
    assert events.count("payout.paid") == 2


def test_concurrent_cancels_of_one_payout_answer_one_200(app, market):
    admin = market.admin["test"]
    payout = _pending_payouts(market)[0]
    responses = race(app, admin.key, 8, lambda c, i: c.post(f"/v1/payouts/{payout['id']}/cancel"))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            _refused_as_conflict(response)
            assert "This payout is canceled" in response.json["error"]["message"]


def test_concurrent_payments_recorded_for_all_of_an_invoice_pay_it_once(app, market):
    admin = market.admin["test"]
    invoice = market.invoice
    responses = race(app, admin.key, 6, lambda c, i: c.post(f"/v1/invoices/{invoice['id']}/payments", {
        "amount": invoice["total"], "method": "bank_transfer", "reference": f"TRX-{i}",
        "received_on": "2026-11-26"}))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    (winner,) = [r for r in responses if r.status_code == 201]
    for response in responses:
        if response.status_code == 409:
            _refused_as_conflict(response)
            assert winner.json["payment"]["reference"] not in str(response.json)
    payments = admin.get(f"/v1/invoices/{invoice['id']}/payments").json["data"]
    assert len(payments) == 1 and admin.get(f"/v1/invoices/{invoice['id']}").json["status"] == "paid"


def test_concurrent_voids_with_different_reasons_answer_one_200(app, market):
    admin = market.admin["test"]
    invoice = market.invoice
    responses = race(app, admin.key, 6, lambda c, i: c.post(f"/v1/invoices/{invoice['id']}/void",
                                                             {"reason": f"reason {i}"}))
    assert sorted(r.status_code for r in responses) == [200] + [409] * 5
    (winner,) = [r for r in responses if r.status_code == 200]
    for response in responses:
        if response.status_code == 409:
            _refused_as_conflict(response)
            assert winner.json["void_reason"] not in str(response.json)
    again = admin.post(f"/v1/invoices/{invoice['id']}/void", {"reason": winner.json["void_reason"]})
    assert again.status_code == 200  # the winner's request again: answered as it was
