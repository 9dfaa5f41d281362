"""Concurrency on PostgreSQL: the database, not luck, keeps a bill from being stored twice."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.support.invoicing import bill_body
from tests.support.races import race

pytestmark = pytest.mark.slow


def _count_bills(app, provider_id: str) -> int:
    from aggregator.db import db

    with app.app_context():
        return db.session.scalar(sa.text("SELECT count(*) FROM bills WHERE provider_id = :p"),
                                 {"p": provider_id})


def test_eight_threads_posting_the_same_key_create_exactly_one_bill(postgres_only, app, tenant):
    tenant.customer("cust-1")
    provider = tenant.provider()
    responses = race(app, provider.key, 8, lambda c, i: c.post(
        "/v1/bills", bill_body(), headers={"Idempotency-Key": "same"}))
    assert [r.status_code for r in responses] == [201] * 8
    assert len({r.json["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 7
    assert _count_bills(app, provider.id) == 1


def test_racing_different_bodies_on_one_key_store_one_and_refuse_the_rest(postgres_only, app, tenant):
    tenant.customer("cust-1")
    provider = tenant.provider()
    responses = race(app, provider.key, 8, lambda c, i: c.post(
        "/v1/bills", bill_body(amount=f"{i + 1}.00"), headers={"Idempotency-Key": "same"}))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    assert _count_bills(app, provider.id) == 1


def test_overlapping_batches_in_any_order_neither_deadlock_nor_duplicate(postgres_only, app, tenant):
    tenant.customer("cust-1")
    provider = tenant.provider()
    items = [{**bill_body(amount=f"{i}.00"), "idempotency_key": f"k{i:03}"} for i in range(200)]

    def post(caller, i):
        order = items if i % 2 else items[::-1]
        return caller.post("/v1/bills/batch", {"bills": order})

    responses = race(app, provider.key, 6, post)
    assert all(r.status_code == 200 for r in responses)
    assert all(d["status"] == 201 for r in responses for d in r.json["data"])
    first = {d["bill"]["amount"]: d["bill"]["id"] for d in responses[0].json["data"]}
    for response in responses[1:]:
        assert {d["bill"]["amount"]: d["bill"]["id"] for d in response.json["data"]} == first
    assert _count_bills(app, provider.id) == 200
