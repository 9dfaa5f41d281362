"""Bill intake has two ways in and two ways through: a bill alone (POST /v1/bills) or in a batch
(POST /v1/bills/batch); a single bill goes through the fast path (ingest.service.record_bill's
one SQL statement, which stores the usual bill or declines) and falls back to the general path
(record_bills, in Python) for everything else. Whatever the bills, all four accept and refuse
exactly the same ones with the same answers, and store the same bills, as if each were sent
alone in order."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.ingest import service

KNOWN = ("c1", "c2", "trial")  # "trial" is in the provider's free trial; "ghost" does not exist
BILL = st.fixed_dictionaries({
    "customer": st.sampled_from([*KNOWN, "ghost"]),
    "amount": st.sampled_from(["10.00", "-5.00", "0.01", "1.005"]),  # 1.005 AUD: finer than a cent
    "currency": st.sampled_from(["AUD", "USD", "XXX"]),
    "revenue_share": st.booleans(),
    "description": st.sampled_from(["Pro plan", "Top-up"]),
})
SENT = st.lists(st.tuples(st.sampled_from(["k1", "k2", "k3"]), BILL), min_size=1, max_size=6)


@pytest.fixture
def shop(make_tenant):
    """One tenant and its customers for every example: each way in gets a provider of its own."""
    tenant = make_tenant()
    for external_id in KNOWN:
        tenant.customer(external_id)
    return tenant


def _provider(tenant):
    provider = tenant.provider()
    response = provider.put("/v1/customers/trial/trial", {"ends_at": "2027-01-01T00:00:00+00:00"})
    assert response.status_code == 200, response.json
    return provider


def _bill(document: dict, provider) -> dict:
    """A bill's document without what differs from one tenant to another."""
    assert document["provider"] == provider.id
    return {k: v for k, v in document.items() if k not in ("id", "provider")}


def _error(error: dict) -> dict:
    """An error object; a request's says "Invalid request", a batch item's "Invalid bill"."""
    return {**error, "message": error["message"].replace("Invalid bill: ", "Invalid request: ", 1)}


def _alone(provider, sent) -> list:
    answers = []
    for key, bill in sent:
        response = provider.post("/v1/bills", bill, headers={"Idempotency-Key": key})
        if response.status_code == 201:
            answers.append((201, response.headers.get("Idempotent-Replayed") == "true",
                            _bill(response.json, provider)))
        else:
            answers.append((response.status_code, _error(response.json["error"])))
    return answers


def _batched(provider, sent, size: int) -> list:
    answers = []
    for start in range(0, len(sent), size):
        response = provider.post("/v1/bills/batch", {"bills": [
            {**bill, "idempotency_key": key} for key, bill in sent[start:start + size]]})
        assert response.status_code == 200, response.json
        answers += [(201, item["replayed"], _bill(item["bill"], provider)) if item["status"] == 201
                    else (item["status"], _error(item["error"])) for item in response.json["data"]]
    return answers


def _stored(provider) -> list:
    return sorted((_bill(b, provider) for b in provider.get("/v1/bills?limit=100").json["data"]), key=repr)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sent=SENT)
def test_every_way_in_gives_the_same_answers(shop, monkeypatch, sent):
    provider = _provider(shop)
    answers, stored = _alone(provider, sent), _stored(provider)
    with monkeypatch.context() as patched:  # the fast path declines every bill: all go the general way
        patched.setattr(service, "run_alone", lambda statement, params: None)
        general = _provider(shop)
        assert _alone(general, sent) == answers
        assert _stored(general) == stored
    for size in (len(sent), 1, 2):
        batched = _provider(shop)
        assert _batched(batched, sent, size) == answers
        assert _stored(batched) == stored
