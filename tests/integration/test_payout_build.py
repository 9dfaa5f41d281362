"""Building a payout day, on the database: each payment paid out once whatever runs again, an
overpayment's excess not paid out, an invoice its credits settle paying its bills in full, a
canceled payout's amount brought into the next payout day once, finance's setting that approves
payouts as they are built, and money arriving late for a payout day already built."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from tests.support.invoicing import AFTER_END, advance, send
from tests.support.payouts import AFTER_PAYOUT_DAY

DEC_10, JAN_10 = date(2026, 12, 10), date(2027, 1, 10)


@pytest.fixture
def billed(tenant):
    tenant.customer("cust-1")
    tenant.app = tenant.provider(name="App", rate="0.30")
    send(tenant.app, "b1", amount="100.00")
    advance(tenant, AFTER_END)
    (tenant.invoice,) = tenant.admin["test"].get("/v1/invoices").json["data"]
    return tenant


def _record(tenant, amount: str, received_on: str = "2026-11-26"):
    response = tenant.admin["test"].post(f"/v1/invoices/{tenant.invoice['id']}/payments", {
        "amount": amount, "method": "bank_transfer", "reference": "r", "received_on": received_on})
    assert response.status_code == 201, response.json
    return response.json


def _build(app, tenant, day: date):
    from aggregator.payouts import build_service

    with app.app_context():
        return build_service.build_payouts(tenant.id, False, day)


def _sources(app, tenant) -> list[tuple]:
    from aggregator.db import db
    from aggregator.payouts.models import PayoutSource

    with app.app_context():
        return db.session.execute(sa.select(PayoutSource.kind, PayoutSource.amount, PayoutSource.collected_before)
                                  .where(PayoutSource.tenant_id == tenant.id).order_by(PayoutSource.at)).all()


def test_an_overpayment_pays_out_the_invoice_not_the_excess_and_a_rerun_builds_nothing(app, billed):
    _record(billed, "150.00")  # 50.00 more than the invoice: the customer's credit
    first = _build(app, billed, DEC_10)
    assert first.sources == 1 and len(first.payouts) == 1
    assert _sources(app, billed) == [("payment", 10000, 0)]
    (payout,) = billed.admin["test"].get("/v1/payouts").json["data"]
    assert (payout["gross"], payout["fee"], payout["net"], payout["amount"]) == ("100.00", "30.00", "70.00", "70.00")
    again = _build(app, billed, DEC_10)
    assert again.run_id is None and again.payouts == []
    assert _build(app, billed, JAN_10).payouts == []  # nothing new collected
    assert len(billed.admin["test"].get("/v1/payouts").json["data"]) == 1


def test_a_canceled_payout_is_brought_into_the_next_payout_day_once(app, billed):
    _record(billed, "100.00")
    advance(billed, AFTER_PAYOUT_DAY)
    (payout,) = billed.admin["test"].get("/v1/payouts").json["data"]
    canceled = billed.admin["test"].post(f"/v1/payouts/{payout['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json["status"] == "canceled"
    assert billed.admin["test"].post(f"/v1/payouts/{payout['id']}/approve").status_code == 409
    advance(billed, "2027-01-10T00:00:00+00:00")
    payouts = billed.admin["test"].get("/v1/payouts").json["data"]
    assert [(p["status"], p["net"], p["brought_forward"], p["amount"]) for p in payouts] == [
        ("pending_review", "0.00", "70.00", "70.00"), ("canceled", "70.00", "0.00", "70.00")]
    advance(billed, "2027-03-11T00:00:00+00:00")
    assert len(billed.admin["test"].get("/v1/payouts").json["data"]) == 2


def test_payouts_are_approved_as_they_are_built_when_finance_says_so(app, billed):
    assert billed.admin["test"].patch("/v1/tenant", {"payout_auto_approve": True, "payout_day": 15}).status_code == 200
    _record(billed, "100.00")
    advance(billed, "2026-12-15T00:00:00+00:00")
    (payout,) = billed.admin["test"].get("/v1/payouts").json["data"]
    assert payout["status"] == "approved" and payout["payout_date"] == "2026-12-15" and payout["approved_by"] == "auto"
    types = [e["type"] for e in billed.admin["test"].get("/v1/events", query_string={"limit": 100}).json["data"]]
    assert "payouts.awaiting_review" not in types and "payout.approved" in types


def test_money_arriving_late_for_a_payout_day_already_built_waits_for_the_next(app, billed):
    _record(billed, "40.00")
    assert len(_build(app, billed, DEC_10).payouts) == 1
    _record(billed, "60.00", received_on="2026-11-30")  # recorded after the 10th's build: settled now
    assert _build(app, billed, DEC_10).run_id is None
    advance(billed, "2027-01-10T00:00:00+00:00")
    payouts = billed.admin["test"].get("/v1/payouts").json["data"]
    assert sorted(p["net"] for p in payouts) == ["28.00", "42.00"]  # 70.00 in all, pro rata
    assert [s[1:] for s in _sources(app, billed)] == [(4000, 0), (6000, 4000)]


def test_an_invoice_its_credit_settles_pays_its_bills_in_full(app, tenant):
    tenant.customer("cust-1")
    app_ = tenant.provider(name="App", rate="0.30")
    send(app_, "credit", amount="-50.00")
    advance(tenant, AFTER_END)  # period 1: -50.00, carried as credit
    send(app_, "b2", amount="20.00")
    advance(tenant, "2026-12-25T00:00:00+00:00")  # period 2: 20.00 - 50.00 credit: total 0, settled
    invoices = tenant.admin["test"].get("/v1/invoices").json["data"]
    assert sorted(i["total"] for i in invoices) == ["0.00", "0.00"]
    advance(tenant, "2027-01-10T00:00:00+00:00")
    payouts = tenant.admin["test"].get("/v1/payouts").json["data"]
    # a payout with nothing to transfer needs no review: settled as built, its carry brought forward
    assert [(p["gross"], p["credits"], p["fee"], p["net"], p["brought_forward"], p["amount"], p["carry"], p["status"])
            for p in payouts] == [
        ("20.00", "0.00", "6.00", "14.00", "-35.00", "0.00", "-21.00", "paid"),
        ("-50.00", "-50.00", "-15.00", "-35.00", "0.00", "0.00", "-35.00", "paid")]
