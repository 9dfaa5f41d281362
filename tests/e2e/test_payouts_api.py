"""Provider payouts over HTTP, driven by the tenant's test clock: money collected on invoices is
gathered on the payout day into one payout per provider and currency, reviewed by finance, paid
once; a provider's key sees only its own statement."""
from __future__ import annotations

from tests.support.invoicing import advance
from tests.support.payouts import AFTER_PAYOUT_DAY, _pay, _payouts


def test_collected_money_is_paid_out_once_per_provider_after_review(market):
    admin = market.admin["test"]
    accounting, sms = market.apps
    _pay(market, market.invoice["total"])
    advance(market, AFTER_PAYOUT_DAY)
    payouts = _payouts(market)
    assert set(payouts) == {accounting.id, sms.id}
    mine = payouts[accounting.id]
    assert mine["status"] == "pending_review" and mine["currency"] == "AUD" and mine["method"] == "bank_transfer"
    assert (mine["gross"], mine["fee"], mine["net"], mine["amount"]) == ("110.01", "30.00", "80.01", "80.01")
    assert (mine["revenue_share_gross"], mine["pass_through_gross"]) == ("100.00", "10.01")
    assert mine["payout_date"] == "2026-12-10" and mine["period"] == "2026-10-25"
    assert payouts[sms.id]["amount"] == "25.00" and payouts[sms.id]["fee"] == "0.00"

    detail = admin.get(f"/v1/payouts/{mine['id']}").json
    lines = sorted((line["amount"], line["fee"], line["net"],
                    line["revenue_share"]) for line in detail["lines"]["data"])
    assert lines == [("10.01", "0.00", "10.01", False), ("100.00", "30.00", "70.00", True)]
    assert {line["invoice"] for line in detail["lines"]["data"]} == {market.invoice["id"]}

    # the provider's key: its own payouts and lines only
    own = accounting.get("/v1/payouts").json["data"]
    assert [p["id"] for p in own] == [mine["id"]]
    assert accounting.get(f"/v1/payouts/{payouts[sms.id]['id']}").status_code == 404
    assert accounting.post(f"/v1/payouts/{mine['id']}/approve").status_code == 403

    approved = admin.post(f"/v1/payouts/{mine['id']}/approve")
    assert approved.status_code == 200 and approved.json["status"] == "approved", approved.json
    again = admin.post(f"/v1/payouts/{mine['id']}/approve")
    assert again.status_code == 409
    paid = admin.post(f"/v1/payouts/{mine['id']}/mark_paid", {"reference": "SEPA-42"})
    assert paid.status_code == 200 and paid.json["status"] == "paid" and paid.json["reference"] == "SEPA-42", paid.json
    assert admin.post(f"/v1/payouts/{mine['id']}/mark_paid", {"reference": "SEPA-43"}).status_code == 409

    # the next payout day finds nothing new: each payment is paid out once
    advance(market, "2027-01-10T00:00:00+00:00")
    assert len(admin.get("/v1/payouts").json["data"]) == 2
    events = [e["type"] for e in admin.get("/v1/events", query_string={"limit": 100}).json["data"]]
    assert events.count("payout.created") == 2 and "payout.approved" in events and "payout.paid" in events
    assert "payouts.awaiting_review" in events


def test_a_partial_payment_pays_pro_rata_and_the_rest_pays_later(market):
    accounting, sms = market.apps
    _pay(market, "67.50", "part-1")  # half of 135.01
    advance(market, AFTER_PAYOUT_DAY)
    first = _payouts(market)
    _pay(market, "67.51", "part-2")
    advance(market, "2027-01-10T00:00:00+00:00")
    second = _payouts(market, period="2026-11-25")
    for provider, total in ((accounting.id, "80.01"), (sms.id, "25.00")):
        whole = sum(int(p[provider]["net"].replace(".", "")) for p in (first, second))
        assert whole == int(total.replace(".", "")), (provider, first[provider]["net"], second[provider]["net"])
    assert first[sms.id]["net"] in ("12.50", "12.49", "12.51")


def test_bad_input_gets_clear_errors(market):
    admin = market.admin["test"]
    assert admin.get("/v1/payouts/po_nope").status_code == 404
    assert admin.get("/v1/payouts", query_string={"status": "sent"}).status_code == 422
    assert admin.post("/v1/payouts/approve", {"period": "soon"}).status_code == 422
    assert admin.post("/v1/payouts/po_nope/mark_paid", {"reference": ""}).status_code == 422
