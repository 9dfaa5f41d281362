"""Throttling over HTTP: failed authentication per client address and per key prefix (the API
and finance's sign-in), and a key's request limit. The attack of issue 16 (2,000 bad keys, all
answered) scaled down to limits of a few: each test runs an app of its own with small limits on
the suite's database and a clock of its own, so a window passes by moving the clock."""
from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta

import pytest
import sqlalchemy as sa

from aggregator import create_app, throttle
from aggregator.clock import FixedClock
from aggregator.db import db
from tests.support.callers import Caller
from tests.support.clock import START
from tests.support.finance import csrf_of
from tests.support.invoicing import bill_body

BAD = "agg_prov_test_"  # a key of the right form whose secret is guessed


@pytest.fixture
def throttled(app):
    """make(**settings) -> an app on the suite's database with these throttle settings (by
    default 5 failures a minute per address, per-prefix counting off) and its own clock, at
    START; its counters start empty."""
    made = []

    def make(clock: FixedClock | None = None, **settings):
        settings = {"auth_failures_per_address": "5/minute", "auth_failures_per_key_prefix": "", **settings}
        clock = clock or FixedClock(START)
        new = create_app({"SETTINGS": dataclasses.replace(app.config["AGGREGATOR_SETTINGS"], **settings),
                          "CLOCK": clock, "TESTING": True})
        new.clock = clock
        with new.app_context():
            throttle.current().storage.reset()
        made.append(new)
        return new

    yield make
    for each in made:
        with each.app_context():
            db.engine.dispose()


def caller(throttled_app, key: str, address: str = "10.0.0.1") -> Caller:
    client = throttled_app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return Caller(client, key)


def guess() -> str:
    return BAD + secrets.token_urlsafe(30)


def test_past_the_limit_an_address_is_answered_429_even_with_a_right_key_until_the_window_passes(throttled,
                                                                                               tenant):
    served = throttled()
    right = tenant.admin["test"].key
    for _ in range(5):
        assert caller(served, guess()).get("/v1/tenant").status_code == 401
    refused = caller(served, guess()).get("/v1/tenant")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert refused.json == {"error": {"type": "rate_limit_error", "code": "too_many_failed_authentications",
                                      "message": "Too many failed authentications from this address; try "
                                                 "again in 60 seconds."}}
    assert caller(served, right).get("/v1/tenant").status_code == 429  # the right key too, from there
    assert caller(served, right, "10.0.0.2").get("/v1/tenant").status_code == 200  # another address: not
    served.clock.set(START + timedelta(seconds=45))
    assert caller(served, right).get("/v1/tenant").headers["Retry-After"] == "15"
    served.clock.set(START + timedelta(seconds=60))
    assert caller(served, right).get("/v1/tenant").status_code == 200
    assert caller(served, guess()).get("/v1/tenant").status_code == 401  # a new window: counted afresh


def test_malformed_unknown_and_revoked_keys_count_and_a_missing_key_does_not(throttled, tenant):
    served = throttled()
    revoked = tenant.admin["test"].post("/v1/tenant/keys", {}).json
    assert tenant.admin["test"].delete(f"/v1/keys/{revoked['id']}").status_code in (200, 204)
    anonymous = served.test_client()
    anonymous.environ_base["REMOTE_ADDR"] = "10.0.1.1"
    for _ in range(8):
        assert anonymous.get("/v1/tenant").status_code == 401  # no key: nothing tried
    for key in (revoked["secret"], "not-a-key", "", guess(), revoked["secret"]):
        assert caller(served, key, "10.0.1.1").get("/v1/tenant").status_code == 401
    basic = anonymous.get("/v1/tenant", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 429


def test_failures_with_one_key_prefix_from_many_addresses_block_that_prefix_only(throttled, tenant):
    served = throttled(auth_failures_per_address="", auth_failures_per_key_prefix="3/minute")
    right = tenant.admin["test"].key
    leaked = right[:len("agg_admin_test_") + 8]  # the key's kind and the secret's first characters
    for n in range(3):
        attempt = caller(served, leaked + secrets.token_urlsafe(30)[:32], f"10.0.2.{n}").get("/v1/tenant")
        assert attempt.status_code == 401
    blocked = caller(served, right, "10.0.2.9").get("/v1/tenant")
    assert blocked.status_code == 429 and blocked.json["error"]["message"].startswith(
        "Too many failed authentications from this key")
    other_key = tenant.admin["live"].key  # another prefix, same addresses: unaffected
    assert caller(served, other_key, "10.0.2.0").get("/v1/tenant").status_code == 200
    assert caller(served, guess(), "10.0.2.0").get("/v1/tenant").status_code == 401


def test_the_intake_hot_path_writes_no_counter_and_reads_none_while_the_address_is_known_clear(throttled,
                                                                                                tenant):
    served = throttled(auth_failures_per_key_prefix="10/minute", ratelimit_recheck_seconds=1.0)
    tenant.customer("cust-1")
    provider = tenant.provider()
    statements = []
    with served.app_context():
        engine = db.engine

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        post = caller(served, provider.key).post
        first = post("/v1/bills", bill_body(),
                     headers={"Idempotency-Key": "throttle-0"})
        assert first.status_code == 201, first.json
        assert sum("rate_limits" in s for s in statements) == 2  # address and prefix, read once
        assert not any("rate_limits" in s and not s.lstrip().upper().startswith("SELECT") for s in statements)
        statements.clear()
        for n in range(1, 6):
            assert post("/v1/bills", bill_body(),
                        headers={"Idempotency-Key": f"throttle-{n}"}).status_code == 201
        assert not any("rate_limits" in s for s in statements)
        served.clock.set(START + timedelta(seconds=2))  # past recheck_seconds: read once again
        assert post("/v1/bills", bill_body(),
                    headers={"Idempotency-Key": "throttle-9"}).status_code == 201
        assert sum("rate_limits" in s for s in statements) == 2
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    with served.app_context():
        assert db.session.execute(sa.text("SELECT count(*) FROM rate_limits")).scalar() == 0


def test_a_block_set_by_one_app_reaches_another_on_the_same_database(throttled, tenant):
    clock = FixedClock(START)
    one, other = throttled(clock), throttled(clock, ratelimit_recheck_seconds=1.0)
    right = tenant.admin["test"].key
    assert caller(other, right).get("/v1/tenant").status_code == 200  # `other` now knows 10.0.0.1 clear
    for _ in range(5):
        assert caller(one, guess()).get("/v1/tenant").status_code == 401
    assert caller(one, right).get("/v1/tenant").status_code == 429
    assert caller(other, guess()).get("/v1/tenant").status_code == 401  # counted there too: 6 now
    clock.set(START + timedelta(seconds=1))  # `other` reads the shared counter again
    assert caller(other, right).get("/v1/tenant").status_code == 429
    assert caller(other, right, "10.0.0.3").get("/v1/tenant").status_code == 200


def test_finance_sign_in_is_throttled_like_the_api(throttled, tenant):
    served = throttled()

    def sign_in(key: str, address: str = "10.0.3.1"):
        visitor = served.test_client()
        visitor.environ_base["REMOTE_ADDR"] = address
        page = visitor.get("/finance/login")
        return visitor.post("/finance/login", data={"api_key": key, "csrf_token": csrf_of(page.text)})

    for _ in range(5):
        assert sign_in(guess()).status_code == 401
    refused = sign_in(tenant.admin["test"].key)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "60"
    assert "Too many failed sign-ins; try again in 60 seconds." in refused.text
    assert sign_in(tenant.admin["test"].key, "10.0.3.2").status_code == 302  # another address signs in
    assert caller(served, tenant.admin["test"].key, "10.0.3.1").get("/v1/tenant").status_code == 429
    served.clock.set(START + timedelta(minutes=1))
    assert sign_in(tenant.admin["test"].key).status_code == 302


def test_a_keys_request_limit_answers_429_with_the_rate_limit_headers_when_configured(throttled, tenant):
    served = throttled(key_rate_limit="3/minute;100/hour")
    admin = caller(served, tenant.admin["test"].key)
    answers = [admin.get("/v1/tenant") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    assert answers[0].headers["X-RateLimit-Reset"] == str(int(START.timestamp()) + 60)
    spent = admin.get("/v1/tenant")
    assert spent.status_code == 429 and spent.headers["Retry-After"] == "60"
    assert spent.json["error"]["code"] == "key_rate_limited" and spent.headers["X-RateLimit-Remaining"] == "0"
    assert caller(served, tenant.admin["live"].key).get("/v1/tenant").status_code == 200  # per key
    served.clock.set(START + timedelta(minutes=1))
    assert admin.get("/v1/tenant").status_code == 200


def test_without_a_key_limit_no_rate_limit_header_is_sent(throttled, tenant):
    answer = caller(throttled(), tenant.admin["test"].key).get("/v1/tenant")
    assert answer.status_code == 200 and "X-RateLimit-Limit" not in answer.headers
