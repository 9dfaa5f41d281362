"""Due work happens at its own instant: results are those of the instant the work was due,
whenever it runs, and catching up runs the instants in order."""
from __future__ import annotations

from datetime import datetime

from tests.support.invoicing import advance, send


def _invoices(admin, **query) -> list[dict]:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return admin.get(f"/v1/invoices?limit=100&{params}").json["data"]


def test_a_jump_of_months_closes_each_period_as_of_its_own_end(tenant):
    """Sydney, anchor 25: the 2026-10-25 period ends 2026-11-25 00:00 local. Jumping from
    2026-11-10 to 2027-03-01 in one step invoices it as if closed on time: numbered in 2026 and
    due on 2026-12-02, not in 2027 and due in March."""
    tenant.customer("cust-1")
    provider = tenant.provider()
    send(provider, "k1")
    ran = advance(tenant, "2027-03-01T00:00:00+00:00")["ran"]
    assert [c["period"] for c in ran["closes"]] == ["2026-10-25"]
    [invoice] = _invoices(tenant.admin["test"])
    assert invoice["number"] == "INV-2026-000001" and invoice["due_date"] == "2026-12-02"
    assert invoice["created_at"] == invoice["finalized_at"] == "2026-11-24T13:00:00+00:00"


def test_catching_up_closes_the_periods_in_order_each_as_of_its_end(tenant, clock):
    """Bills in four periods (a negative one carried as credit from period to period), then one
    jump past all four ends: four closes, in order, numbered and dated as on time."""
    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    provider = tenant.provider()
    # Each bill is received in its own period: the clock is moved there without running anything.
    for n, at in enumerate(["2026-11-11", "2026-12-10", "2027-01-10", "2027-02-10"]):
        _move_without_due_work(tenant, f"{at}T00:00:00+00:00")
        send(provider, f"k{n}", amount="-5.00" if n == 0 else "10.00")
    ran = advance(tenant, "2027-03-01T00:00:00+00:00")["ran"]
    assert [c["period"] for c in ran["closes"]] == ["2026-10-25", "2026-11-25", "2026-12-25", "2027-01-25"]
    invoices = sorted(_invoices(admin), key=lambda i: i["period"]["start"])
    assert [(i["number"], i["due_date"], i["total"], i["carried_credit"]) for i in invoices] == [
        ("INV-2026-000001", "2026-12-02", "0.00", "5.00"),
        ("INV-2026-000002", "2027-01-02", "5.00", "0.00"),  # 10.00 less the 5.00 carried
        ("INV-2027-000003", "2027-02-02", "10.00", "0.00"),
        ("INV-2027-000004", "2027-03-02", "10.00", "0.00")]
    closed = admin.get("/v1/periods?limit=10").json["data"]
    assert all(p["status"] == "closed" and p["closed_at"] == p["end_at"] for p in closed)


def test_a_draft_is_finalized_at_its_review_deadline_even_when_the_clock_jumps_past_it(tenant):
    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual", "auto_finalize_after_days": 3})
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")
    ran = advance(tenant, "2027-01-20T00:00:00+00:00")["ran"]
    assert ran["finalized"] == 1
    [invoice] = _invoices(admin)
    assert invoice["status"] == "open" and invoice["number"] == "INV-2026-000001"
    assert invoice["finalized_at"] == "2026-11-27T13:00:00+00:00"  # the period's end + 3 days


def test_advancing_without_waiting_answers_at_once_and_leaves_the_work_to_the_workers(app, tenant):
    from aggregator import due

    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")
    response = admin.post("/v1/test_clock/advance", {"to": "2026-11-26T00:00:00+00:00", "wait": False})
    assert response.status_code == 202, response.json
    assert (response.json["status"], response.json["ran"]) == ("advancing", None)
    assert response.json["pending"] == [{"kind": "period.close", "due_at": "2026-11-24T13:00:00+00:00",
                                         "reason": "waiting", "retry_at": None}]
    assert admin.get("/v1/test_clock").json == {"object": "test_clock", "now": "2026-11-26T00:00:00+00:00",
                                                "status": "advancing", "pending": response.json["pending"]}
    assert _invoices(admin) == []
    with app.app_context():  # a worker's tick
        adapters = app.extensions["aggregator.adapters"]
        now = adapters.clocks.base.now()
        # every due lane of the database (other tests leave theirs due): this tenant's must be among them
        claims = [c for c in due.claim_lanes(now, 100_000) if c.lane.tenant_id == tenant.id]
        assert [c.lane for c in claims] == [due.Lane(tenant.id, False)]
        due.run_lane(claims[0], adapters, now)
    assert admin.get("/v1/test_clock").json["status"] == "ready"
    assert admin.get("/v1/test_clock").json["pending"] == []
    assert [i["number"] for i in _invoices(admin)] == ["INV-2026-000001"]


def test_a_test_key_never_changes_live_settings(tenant):
    test, live = tenant.admin["test"], tenant.admin["live"]
    changed = test.patch("/v1/tenant", {"invoice_prefix": "TEST", "default_tax_rate": "0.5",
                                        "invoice_review": "manual", "legal_name": "Sandbox"})
    assert changed.status_code == 200 and changed.json["livemode"] is False
    assert (changed.json["invoice_prefix"], changed.json["default_tax_rate"]) == ("TEST", "0.5")
    settings = live.get("/v1/tenant").json
    assert (settings["invoice_prefix"], settings["default_tax_rate"], settings["invoice_review"]) == ("INV", "0",
                                                                                                      "auto")
    assert settings["legal_name"] != "Sandbox" and settings["livemode"] is True
    assert settings["id"] == changed.json["id"] == tenant.id


def test_the_test_calendar_is_fixed_by_test_bills_only(tenant):
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")  # a test-mode bill: test mode's calendar is in use
    assert tenant.admin["test"].patch("/v1/tenant", {"period_anchor_day": 1}).status_code == 409
    assert tenant.admin["live"].patch("/v1/tenant", {"period_anchor_day": 1}).status_code == 200


def _move_without_due_work(tenant, to: str) -> None:
    response = tenant.admin["test"].post("/v1/test_clock/advance", {"to": to, "wait": False})
    assert response.status_code == 202, response.json


def test_a_catch_up_stores_and_answers_what_asking_every_kind_again_gives(app, tenant):
    """A catch-up keeps its last look at every kind (due.CatchUp.upcoming): what release stores
    as the lane's next due instant, and the advance's `pending`, are what asking every kind
    afresh gives, advance after advance (a close, a draft waiting for its deadline, its
    finalization)."""
    from aggregator import due
    from aggregator.db import db

    admin = tenant.admin["test"]
    admin.patch("/v1/tenant", {"invoice_review": "manual", "auto_finalize_after_days": 3})
    tenant.customer("cust-1")
    send(tenant.provider(), "k1")
    lane = due.Lane(tenant.id, False)
    for to in ("2026-11-20T00:00:00+00:00", "2026-11-25T00:00:00+00:00", "2026-11-28T00:00:00+00:00"):
        answer = advance(tenant, to)
        with app.app_context():
            upcoming = due.next_unit(lane)
            stored = db.session.get(due.DueLane, (tenant.id, False)).next_due_at
            assert stored == (upcoming.due_at if upcoming else None), to
            assert answer["pending"] == due.pending_work(lane, datetime.fromisoformat(to)) == [], to
    assert [i["finalized_at"] for i in _invoices(admin)] == ["2026-11-27T13:00:00+00:00"]
