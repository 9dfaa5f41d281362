"""Webhooks through the API: endpoints registered per tenant, mode and provider; each event
delivered once, signed so that the Standard Webhooks library verifies it; retried on the
schedule, then the endpoint disabled; resent on request."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from aggregator.webhooks.schedule import MAX_ATTEMPTS, RETRY_SCHEDULE
from tests.support.invoicing import advance, send
from tests.support.webhooks import run_workers
from tests.webhook_receiver import Receiver


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def register(caller, url, events=("*",), **fields) -> dict:
    response = caller.post("/v1/webhook_endpoints", {"url": url, "enabled_events": list(events), **fields})
    assert response.status_code == 201, response.json
    return response.json


def verified(received, secret) -> dict:
    return Webhook(secret).verify(received.body, received.headers)


def signed_by(received, secret) -> bool:
    """The library's own signature of the request with `secret` is among those it carries (its
    `verify` also checks the timestamp against the real time, which this test moved past)."""
    timestamp = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), timezone.utc)
    expected = Webhook(secret).sign(received.headers["webhook-id"], timestamp, received.body.decode())
    return expected in received.headers["webhook-signature"].split(" ")


def close_a_period(tenant, *providers):
    tenant.customer("c1")
    for n, provider in enumerate(providers or [tenant.provider()]):
        send(provider, f"k{n}", customer="c1")
    advance(tenant)


def test_a_closes_events_arrive_once_each_signed_and_verified_by_the_standard_library(app, tenant, clock, receiver):
    endpoint = register(tenant.admin["test"], receiver.url())
    assert endpoint["secret"].startswith("whsec_") and endpoint["status"] == "enabled"
    close_a_period(tenant)
    clock.set(datetime.now(timezone.utc))  # deliveries are signed at real time, which the library checks
    run_workers(app, tenant)
    run_workers(app, tenant)  # nothing is sent twice
    events = tenant.admin["test"].get("/v1/events?limit=100").json["data"]
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(e["id"] for e in events)
    for received in receiver.received:
        payload = verified(received, endpoint["secret"])
        assert payload == tenant.admin["test"].get(f"/v1/events/{payload['id']}").json
        assert received.body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        assert received.headers["content-type"] == "application/json"
    tampered = receiver.received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(endpoint["secret"]).verify(tampered.body.replace(b'"', b"'", 1), tampered.headers)
    deliveries = tenant.admin["test"].get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries?limit=100").json
    assert {d["status"] for d in deliveries["data"]} == {"delivered"} and len(deliveries["data"]) == len(events)
    [attempt] = deliveries["data"][0]["attempts"]
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert deliveries["data"][0]["status_code"] == 200 and deliveries["data"][0]["next_attempt_at"] is None


def test_an_endpoint_takes_only_the_event_types_it_names(app, tenant, receiver):
    register(tenant.admin["test"], receiver.url(), ["period.closed", "invoice.finalized"])
    close_a_period(tenant)
    run_workers(app, tenant)
    assert sorted(json.loads(r.body)["type"] for r in receiver.received) == ["invoice.finalized", "period.closed"]


def test_the_secret_is_shown_at_creation_and_rotation_only(tenant, receiver):
    admin = tenant.admin["test"]
    created = register(admin, receiver.url(), description="ERP")
    shown = [admin.get(f"/v1/webhook_endpoints/{created['id']}").json,
             admin.get("/v1/webhook_endpoints").json["data"][0],
             admin.patch(f"/v1/webhook_endpoints/{created['id']}", {"description": "ERP sync"}).json]
    assert all("secret" not in endpoint for endpoint in shown) and shown[2]["description"] == "ERP sync"
    rotated = admin.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret").json
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    assert "secret" not in admin.get(f"/v1/webhook_endpoints/{created['id']}").json


def test_after_a_rotation_both_secrets_sign_for_a_day_then_only_the_new_one(app, tenant, clock, receiver):
    admin = tenant.admin["test"]
    endpoint = register(admin, receiver.url(), ["period.closed"])
    close_a_period(tenant)
    clock.set(datetime.now(timezone.utc))
    new = admin.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret").json["secret"]
    run_workers(app, tenant)
    [during] = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verified(during, endpoint["secret"]) == verified(during, new)  # old and new both verify
    event_id = during.headers["webhook-id"]
    clock.set(clock.now() + timedelta(hours=24, seconds=1))
    admin.post(f"/v1/events/{event_id}/resend")
    run_workers(app, tenant)
    after = receiver.received[1]
    assert after.headers["webhook-id"] == event_id  # the same id: receivers dedupe on it
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert signed_by(after, new) and not signed_by(after, endpoint["secret"])


def test_a_failing_receiver_is_retried_on_the_schedule_then_the_endpoint_is_disabled(app, tenant, clock, receiver):
    admin = tenant.admin["test"]
    watcher = Receiver()  # another endpoint of the tenant, told of the disabling
    try:
        failing = register(admin, receiver.url(), ["period.closed"])
        register(admin, watcher.url(), ["webhook_endpoint.disabled"])
        receiver.status = 500
        close_a_period(tenant)
        run_workers(app, tenant)
        assert len(receiver.received) == 1
        for n, wait in enumerate(RETRY_SCHEDULE, start=2):
            clock.set(clock.now() + wait - timedelta(seconds=1))
            run_workers(app, tenant)
            assert len(receiver.received) == n - 1  # not yet
            clock.set(clock.now() + timedelta(seconds=1))
            run_workers(app, tenant)
            assert len(receiver.received) == n
        assert len(receiver.received) == MAX_ATTEMPTS
        assert sum(RETRY_SCHEDULE, timedelta()) > timedelta(days=2, hours=20)  # about three days
        endpoint = admin.get(f"/v1/webhook_endpoints/{failing['id']}").json
        assert endpoint["status"] == "disabled" and "http_500" in endpoint["disabled_reason"]
        [delivery] = admin.get(f"/v1/webhook_endpoints/{failing['id']}/deliveries").json["data"]
        assert (delivery["status"], delivery["attempt_count"], delivery["next_attempt_at"]) == ("failed", MAX_ATTEMPTS,
                                                                                                None)
        assert [a["status_code"] for a in delivery["attempts"]] == [500] * MAX_ATTEMPTS
        assert delivery["error"] == "http_500" and delivery["duration_ms"] >= 0
        [disabled] = admin.get("/v1/events?type=webhook_endpoint.disabled").json["data"]
        assert disabled["data"]["object"]["id"] == failing["id"] and disabled["data"]["object"]["url"] == failing["url"]
        assert disabled["data"]["last_error"] == "http_500" and "secret" not in disabled["data"]["object"]
        assert [json.loads(r.body)["id"] for r in watcher.received] == [disabled["id"]]
        # a disabled endpoint gets nothing new; enabled again, it does
        receiver.status = 200
        event_id = delivery["event"]
        assert admin.post(f"/v1/events/{event_id}/resend", {"endpoint": failing["id"]}).status_code == 409
        assert admin.patch(f"/v1/webhook_endpoints/{failing['id']}", {"status": "enabled"}).json["status"] == "enabled"
        assert admin.post(f"/v1/events/{event_id}/resend", {"endpoint": failing["id"]}).status_code == 201
        run_workers(app, tenant)
        assert receiver.received[-1].headers["webhook-id"] == event_id and len(receiver.received) == MAX_ATTEMPTS + 1
    finally:
        watcher.close()


def test_a_provider_endpoint_gets_only_events_about_its_provider(app, tenant, receiver):
    admin = tenant.admin["test"]
    mine, theirs = tenant.provider(name="Mine"), tenant.provider(name="Theirs")
    tenant_wide = register(admin, receiver.url("/admin"))
    own = register(mine, receiver.url("/mine"))
    assert own["provider"] == mine.id and tenant_wide["provider"] is None
    tenant.customer("c1")
    send(mine, "m1", customer="c1")
    send(theirs, "t1", customer="c1")
    advance(tenant)
    run_workers(app, tenant)
    assert [(json.loads(r.body)["type"], json.loads(r.body)["provider"]) for r in receiver.at("/mine")] == [
        ("bills.invoiced", mine.id)]
    assert len(receiver.at("/admin")) == len(admin.get("/v1/events?limit=100").json["data"])
    # a provider key sees and changes only its own endpoints
    assert [e["id"] for e in mine.get("/v1/webhook_endpoints").json["data"]] == [own["id"]]
    assert theirs.get("/v1/webhook_endpoints").json["data"] == []
    for call in (lambda: mine.get(f"/v1/webhook_endpoints/{tenant_wide['id']}"),
                 lambda: mine.patch(f"/v1/webhook_endpoints/{tenant_wide['id']}", {"status": "disabled"}),
                 lambda: mine.delete(f"/v1/webhook_endpoints/{tenant_wide['id']}"),
                 lambda: mine.post(f"/v1/webhook_endpoints/{tenant_wide['id']}/rotate_secret"),
                 lambda: mine.get(f"/v1/webhook_endpoints/{tenant_wide['id']}/deliveries"),
                 lambda: theirs.get(f"/v1/webhook_endpoints/{own['id']}")):
        assert call().status_code == 404
    assert {e["id"] for e in admin.get("/v1/webhook_endpoints").json["data"]} == {own["id"], tenant_wide["id"]}
    # resend: a provider resends only its own events, to its own endpoints
    closed = admin.get("/v1/events?type=period.closed").json["data"][0]
    assert mine.post(f"/v1/events/{closed['id']}/resend").status_code == 404
    [bills] = mine.get("/v1/events").json["data"]
    resent = mine.post(f"/v1/events/{bills['id']}/resend").json["data"]
    assert [d["endpoint"] for d in resent] == [own["id"]] and resent[0]["resend"] is True
    assert mine.post(f"/v1/events/{bills['id']}/resend", {"endpoint": tenant_wide["id"]}).status_code == 404


def test_test_and_live_endpoints_never_see_each_other(app, tenant, receiver):
    live = register(tenant.admin["live"], receiver.url("/live"))
    test = register(tenant.admin["test"], receiver.url("/test"))
    assert (live["livemode"], test["livemode"]) == (True, False)
    assert [e["id"] for e in tenant.admin["live"].get("/v1/webhook_endpoints").json["data"]] == [live["id"]]
    assert tenant.admin["test"].get(f"/v1/webhook_endpoints/{live['id']}").status_code == 404
    close_a_period(tenant)
    run_workers(app, tenant)
    run_workers(app, tenant, livemode=True)
    assert receiver.at("/live") == [] and receiver.at("/test")
    event = tenant.admin["test"].get("/v1/events").json["data"][0]
    assert tenant.admin["test"].post(f"/v1/events/{event['id']}/resend", {"endpoint": live["id"]}).status_code == 404
    assert tenant.admin["live"].post(f"/v1/events/{event['id']}/resend").status_code == 404


def test_resend_delivers_the_event_again_with_the_same_id(app, tenant, receiver):
    admin = tenant.admin["test"]
    first = register(admin, receiver.url("/a"), ["period.closed"])
    register(admin, receiver.url("/b"), ["invoice.created"])
    close_a_period(tenant)
    run_workers(app, tenant)
    [closed] = admin.get("/v1/events?type=period.closed").json["data"]
    resent = admin.post(f"/v1/events/{closed['id']}/resend")
    assert resent.status_code == 201 and [d["endpoint"] for d in resent.json["data"]] == [first["id"]]
    run_workers(app, tenant)
    assert [r.headers["webhook-id"] for r in receiver.at("/a")] == [closed["id"]] * 2
    assert receiver.at("/a")[0].body == receiver.at("/a")[1].body
    deliveries = admin.get(f"/v1/webhook_endpoints/{first['id']}/deliveries").json["data"]
    assert [(d["resend"], d["status"]) for d in deliveries] == [(True, "delivered"), (False, "delivered")]
    assert admin.post("/v1/events/evt_missing/resend").status_code == 404
    assert admin.post(f"/v1/events/{closed['id']}/resend", {"endpoint": "we_missing"}).status_code == 404


def test_deleted_and_disabled_endpoints_are_sent_nothing(app, tenant, receiver):
    admin = tenant.admin["test"]
    gone = register(admin, receiver.url("/gone"))
    off = register(admin, receiver.url("/off"), status="disabled")
    assert off["status"] == "disabled"
    deleted = admin.delete(f"/v1/webhook_endpoints/{gone['id']}")
    assert deleted.status_code == 200
    assert admin.get(f"/v1/webhook_endpoints/{gone['id']}").status_code == 404
    close_a_period(tenant)
    run_workers(app, tenant)
    assert receiver.received == []


@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "enabled_events": ["*"]}, "url"),
    ({"url": "https://user:pw@example.com/x", "enabled_events": ["*"]}, "url"),
    ({"url": "https://example.com/x#frag", "enabled_events": ["*"]}, "url"),
    ({"url": "not a url", "enabled_events": ["*"]}, "url"),
    ({"url": "https://example.com:99999/", "enabled_events": ["*"]}, "url"),
    ({"url": "https://example.com/x", "enabled_events": ["invoice.exploded"]}, "enabled_events"),
    ({"url": "https://example.com/x", "enabled_events": ["*", "period.closed"]}, "enabled_events"),
    ({"url": "https://example.com/x", "enabled_events": []}, "enabled_events"),
    ({"url": "https://example.com/x"}, "enabled_events"),
    ({"enabled_events": ["*"]}, "url"),
    ({"url": "https://example.com/x", "enabled_events": ["*"], "status": "paused"}, "status"),
])
def test_invalid_endpoints_are_refused_on_their_field(tenant, body, field):
    response = tenant.admin["test"].post("/v1/webhook_endpoints", body)
    assert response.status_code == 422, response.json
    assert list(response.json["error"]["fields"]) == [field]


def test_literal_private_addresses_are_refused_unless_the_operator_allows_them(app, tenant):
    from aggregator.webhooks.sender import WebhookSender

    adapters = app.extensions["aggregator.adapters"]
    app.extensions["aggregator.adapters"] = adapters.replacing(webhooks=WebhookSender(allow_private=False))
    try:
        for url in ("http://127.0.0.1:8000/x", "http://[::1]/x", "http://10.0.0.1/x", "http://169.254.169.254/x",
                    "http://[::ffff:127.0.0.1]/x", "http://100.64.0.1/x", "http://0.0.0.0/x"):
            response = tenant.admin["test"].post("/v1/webhook_endpoints", {"url": url, "enabled_events": ["*"]})
            assert response.status_code == 422, url
            assert response.json["error"]["code"] == "url_not_allowed" and "url" in response.json["error"]["fields"]
        # names are resolved and checked when connecting (DNS may change), so this one is accepted here
        assert register(tenant.admin["test"], "https://localhost/x")["url"] == "https://localhost/x"
    finally:
        app.extensions["aggregator.adapters"] = adapters
    assert register(tenant.admin["test"], "http://127.0.0.1:8000/x")["status"] == "enabled"


def test_a_refused_address_is_told_to_the_tenant_as_a_reason_and_to_the_operator_in_the_log(app, tenant, receiver,
                                                                                            caplog):
    from aggregator.webhooks.sender import WebhookSender

    admin = tenant.admin["test"]
    endpoint = register(admin, f"http://localhost:{receiver.server.server_port}/hooks", ["period.closed"])
    adapters = app.extensions["aggregator.adapters"]
    app.extensions["aggregator.adapters"] = adapters.replacing(webhooks=WebhookSender(allow_private=False))
    try:
        close_a_period(tenant)
        with caplog.at_level("WARNING", logger="aggregator.webhooks.delivery"):
            run_workers(app, tenant)
    finally:
        app.extensions["aggregator.adapters"] = adapters
    assert receiver.received == []
    answer = admin.get(f"/v1/webhook_endpoints/{endpoint['id']}/deliveries")
    [delivery] = answer.json["data"]
    assert delivery["error"] == "address_refused" and [a["error"] for a in delivery["attempts"]] == ["address_refused"]
    for internal in ("127.0.0.1", "::1", "AddressRefused", "resolves", "AGGREGATOR_"):
        assert internal not in answer.get_data(as_text=True)
    assert "AddressRefused: localhost resolves to" in caplog.text  # the operator sees what happened
