"""Provider payouts as Stripe Connect Transfers, through the Stripe adapter. localstripe has no
Connect support (no /v1/transfers, no connected accounts), so these run against the tests' own
request-checking Stripe peer (tests/stripe_peer.py): the exact request and its idempotency key,
a replay answered with the first transfer, Stripe's definitive refusals as `failed`, and a lost
answer as `unknown` that find_transfer resolves to the transfer Stripe made, never a second one."""
from __future__ import annotations

import pytest

from aggregator.payments.stripe import StripeGateway
from aggregator.payments.transfers import TransferRequest
from tests.support.peer import _gateway


def _payout(payout_id: str = "po_1", *, amount: int = 9000, destination: str = "acct_provider_a",
            source_transaction: str | None = None, run: str = "run_1") -> TransferRequest:
    return TransferRequest(payout_id=payout_id, idempotency_key=f"payout-{payout_id}", amount=amount,
                           currency="AUD", destination=destination, transfer_group=run,
                           source_transaction=source_transaction,
                           metadata={"provider": "prov_1", "tenant": "ten_1", "period": "2026-11"})


def test_a_transfer_is_one_request_of_the_exact_shape(peer):
    outcome = _gateway(peer).transfers.create_transfer(_payout())
    assert (outcome.status, outcome.requests, outcome.failure_code) == ("paid", 1, None)
    (create,) = peer.peer.transfer_creates()
    assert create.idempotency_key == "payout-po_1" and create.authorization == "Bearer sk_test_peer"
    assert create.form == {"amount": "9000", "currency": "aud", "destination": "acct_provider_a",
                           "transfer_group": "run_1", "metadata": {
                               "provider": "prov_1", "tenant": "ten_1", "period": "2026-11", "payout": "po_1"}}
    assert outcome.raw == peer.peer.transfers[outcome.transfer_id] and peer.peer.problems == []


def test_a_transfer_funded_by_one_charge_names_it_as_its_source_transaction(peer):
    gateway = _gateway(peer).transfers
    charge = peer.peer.intents.setdefault("pi_1", {"id": "pi_1", "latest_charge": "ch_1"})["latest_charge"]
    outcome = gateway.create_transfer(_payout(source_transaction=charge))
    assert outcome.status == "paid" and peer.peer.transfers[outcome.transfer_id]["source_transaction"] == "ch_1"
    assert peer.peer.transfer_creates()[0].form["source_transaction"] == "ch_1"


def test_sending_a_transfer_again_with_its_key_answers_the_first_transfer(peer):
    gateway = _gateway(peer).transfers
    first, again = gateway.create_transfer(_payout()), gateway.create_transfer(_payout())
    assert first.status == again.status == "paid" and first.transfer_id == again.transfer_id
    assert len(peer.peer.transfers) == 1
    assert [s.idempotency_key for s in peer.peer.transfer_creates()] == ["payout-po_1", "payout-po_1"]


def test_a_key_reused_with_other_parameters_is_unknown_not_a_second_transfer(peer):
    gateway = _gateway(peer).transfers
    gateway.create_transfer(_payout())
    outcome = gateway.create_transfer(_payout(amount=9001))
    assert (outcome.status, outcome.failure_code) == ("unknown", "idempotency_error")
    assert len(peer.peer.transfers) == 1


@pytest.mark.parametrize("accounts, balance, code, message", [
    (set(), None, "resource_missing", "resource_missing: Stripe has no such destination account."),
    ({"acct_gone"}, {"aud": 5000}, "balance_insufficient",
     "balance_insufficient: The platform's Stripe balance is too low."),
], ids=["no-such-destination", "insufficient-balance"])
def test_a_transfer_stripe_refuses_is_failed(peer, accounts, balance, code, message):
    peer.peer.accounts |= accounts
    peer.peer.balance = balance
    outcome = _gateway(peer).transfers.create_transfer(_payout(destination="acct_gone"))
    assert (outcome.status, outcome.transfer_id, outcome.failure_code, outcome.requests) == ("failed", None, code, 1)
    assert outcome.failure_message == message  # our words for Stripe's code, never the answer's text
    assert peer.peer.transfers == {} and peer.peer.problems == []


@pytest.mark.parametrize("failure", ["500_after", "drop_after"])
def test_a_transfer_whose_answer_is_lost_is_unknown_and_found_again_not_sent_twice(peer, failure):
    gateway = _gateway(peer).transfers
    gateway.create_transfer(_payout("po_other"))  # another payout of the same run, same account
    peer.peer.fail.append(failure)
    lost = gateway.create_transfer(_payout())
    assert (lost.status, lost.transfer_id) == ("unknown", None) and lost.requests == 1
    found = gateway.find_transfer(_payout())
    [made] = [t for t in peer.peer.transfers.values() if t["metadata"]["payout"] == "po_1"]
    assert (found.status, found.transfer_id, found.requests) == ("paid", made["id"], 1)
    assert len(peer.peer.transfers) == 2 and len(peer.peer.transfer_creates()) == 2
    [lookup] = [s for s in peer.peer.seen if s.method == "GET"]
    assert lookup.path == "/v1/transfers" and lookup.form == {"transfer_group": "run_1", "limit": "100"}


def test_a_rate_limited_transfer_is_sent_again_with_the_same_key(peer):
    peer.peer.fail.extend(["429", "429"])
    outcome = _gateway(peer).transfers.create_transfer(_payout())
    assert outcome.status == "paid" and outcome.requests == 3 and len(peer.peer.transfers) == 1
    assert {s.idempotency_key for s in peer.peer.transfer_creates()} == {"payout-po_1"}


def test_finding_a_transfer_reads_every_page_of_its_group(peer):
    gateway = _gateway(peer).transfers
    wanted = gateway.create_transfer(_payout("po_1"))
    for n in range(2, 6):
        gateway.create_transfer(_payout(f"po_{n}"))
    gateway.create_transfer(_payout("po_1", run="run_2"))  # the same payout id in another run: not it
    peer.peer.page_size = 2
    found = gateway.find_transfer(_payout("po_1"))
    assert (found.status, found.transfer_id, found.requests) == ("paid", wanted.transfer_id, 3)
    pages = [s.form.get("starting_after") for s in peer.peer.seen if s.method == "GET"]
    assert pages[0] is None and all(pages[1:]) and peer.peer.problems == []


def test_finding_a_transfer_stripe_never_made_is_missing(peer):
    gateway = _gateway(peer).transfers
    gateway.create_transfer(_payout("po_1", destination="acct_provider_b"))  # same payout, another account
    gateway.create_transfer(_payout("po_2"))
    outcome = gateway.find_transfer(_payout("po_1"))
    assert (outcome.status, outcome.transfer_id, outcome.requests) == ("missing", None, 1)


def test_finding_a_transfer_without_an_answer_is_unknown():
    gateway = StripeGateway("sk_test_peer", "http://127.0.0.1:9", timeout=1.0,  # nothing listens
                            sleep=lambda s: None).transfers
    outcome = gateway.find_transfer(_payout())
    assert (outcome.status, outcome.requests) == ("unknown", 1)
    assert outcome.failure_message.startswith("stripe_unreachable: ")
