"""Payouts sent by Stripe Connect transfers. localstripe has no Connect (no /v1/transfers), so
these run against the tests' own request-checking Stripe peer (tests/stripe_peer.py), which
serves transfers as Stripe documents them: the exact request and its idempotency key
(`payout-<id>`, saved with the payout before any call), a lost answer resolved by lookup and
never transferred twice, a crash between the claim and the call resumed exactly once, and a
refusal failing the payout, whose amount the provider's next payout brings forward."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.invoicing import advance
from tests.support.payouts import _paid_and_built, _payout, _run_queue


def test_an_approved_payout_is_one_transfer_of_the_exact_shape(app, tenant, peer, clock):
    payout = _paid_and_built(tenant, peer)
    assert _run_queue(app, tenant, clock.now()).done == 1
    (create,) = peer.peer.transfer_creates()
    (intent,) = peer.peer.intents.values()
    assert create.idempotency_key == f"payout-{payout['id']}"
    assert create.form["amount"] == "8400" and create.form["currency"] == "aud"
    assert create.form["destination"] == "acct_provider_a" and create.form["transfer_group"] == payout["transfer_group"]
    assert create.form["source_transaction"].startswith("ch_")  # a single charge funds it
    assert create.form["metadata"]["payout"] == payout["id"] and peer.peer.problems == []
    paid = _payout(tenant, payout["id"])
    assert paid["status"] == "paid" and paid["stripe_transfer"] in peer.peer.transfers
    assert _run_queue(app, tenant, clock.now() + timedelta(hours=1)).taken == 0  # nothing sent twice
    journals = tenant.admin["test"].get("/v1/ledger/journals", query_string={"kind": "payout_sent"}).json["data"]
    assert [j["object_id"] for j in journals] == [payout["id"]]


@pytest.mark.parametrize("failure", ["500_after", "drop_after"])
def test_a_lost_answer_is_resolved_by_lookup_never_by_a_second_transfer(app, tenant, peer, clock, failure):
    payout = _paid_and_built(tenant, peer)
    peer.peer.fail.append(failure)
    now = clock.now()
    assert _run_queue(app, tenant, now).failed == 1  # unknown: the transfer was made, its answer lost
    waiting = _payout(tenant, payout["id"])
    assert waiting["status"] == "approved" and waiting["stripe_transfer"] is None
    cancel = tenant.admin["test"].post(f"/v1/payouts/{payout['id']}/cancel")
    assert cancel.status_code == 409  # it may have been sent: never canceled then
    assert _run_queue(app, tenant, now + timedelta(seconds=30)).taken == 0  # backing off
    assert _run_queue(app, tenant, now + timedelta(minutes=2)).done == 1
    assert len(peer.peer.transfers) == 1 and len(peer.peer.transfer_creates()) == 1
    assert _payout(tenant, payout["id"])["status"] == "paid"


def test_a_crash_between_the_claim_and_the_call_is_sent_once_after_the_lease(app, tenant, peer, clock):
    from aggregator.payouts import send_service

    payout = _paid_and_built(tenant, peer)
    now = clock.now()
    with app.app_context():
        assert send_service.claim_payouts(now, 10) == [payout["id"]]  # ...and the worker dies
    assert _run_queue(app, tenant, now).taken == 0  # its lease still holds it
    assert _run_queue(app, tenant, now + timedelta(minutes=2)).done == 1  # looked up (missing), then sent
    lookups = [s for s in peer.peer.seen if s.method == "GET" and s.path == "/v1/transfers"]
    assert lookups and len(peer.peer.transfer_creates()) == 1
    assert _payout(tenant, payout["id"])["status"] == "paid"


def test_a_refused_transfer_fails_and_the_next_payout_brings_its_amount(app, tenant, peer, clock):
    payout = _paid_and_built(tenant, peer, destination="acct_unknown")
    assert _run_queue(app, tenant, clock.now()).done == 1
    failed = _payout(tenant, payout["id"])
    assert failed["status"] == "failed" and failed["failure_code"] == "resource_missing", failed
    assert failed["failure_message"] == "resource_missing: Stripe has no such destination account."
    events = [e["type"] for e in tenant.admin["test"].get("/v1/events", query_string={"limit": 100}).json["data"]]
    assert "payout.failed" in events and "payout.paid" not in events
    # the next payout day brings the failed amount forward (to the account fixed meanwhile)
    admin = tenant.admin["test"]
    assert admin.patch(f"/v1/providers/{payout['provider']}",
                       {"stripe_account_id": "acct_provider_a"}).status_code == 200
    advance(tenant, "2027-01-10T00:00:00+00:00")
    later = [p for p in admin.get("/v1/payouts").json["data"] if p["id"] != payout["id"]]
    assert len(later) == 1, later
    (retry,) = later
    assert (retry["net"], retry["brought_forward"], retry["amount"]) == ("0.00", "84.00", "84.00")
    assert retry["destination"] == "acct_provider_a" and retry["payout_date"] == "2027-01-10"
    advance(tenant, "2027-02-11T00:00:00+00:00")
    assert len(admin.get("/v1/payouts").json["data"]) == 2  # brought forward once
