"""The upcoming invoice is a fast path beside the close: shortly before the open period ends, with
nothing changing afterwards, it shows exactly the lines and subtotal the close then invoices, for
any history of bills, subscriptions (started now or later, changed, ended), price versions, free
trials and usage (metered on the plans' fees, the resold plan's priced by its parent too)."""
from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.support.clock import START
from tests.support.invoicing import AFTER_END, bill_body

BEFORE_END = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)  # the period ends at 13:00Z (Sydney midnight)

actions = st.lists(st.tuples(
    st.integers(min_value=0, max_value=320),  # hours after START, before BEFORE_END
    st.sampled_from(["start", "start", "change", "cancel", "bill", "trial", "price", "usage", "usage"]),
    st.sampled_from(["c1", "c2"]),
    st.sampled_from(["resold", "solo"]),
    st.integers(min_value=1, max_value=3),
    st.sampled_from([0, 0, 7, 24 * 5, 24 * 40])), min_size=1, max_size=10)


def _iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat()


class Shop:
    def __init__(self, make_tenant):
        self.tenant = make_tenant()
        self.admin = self.tenant.admin["test"]
        for customer in ("c1", "c2"):
            self.tenant.customer(customer)
        self.provider = self.tenant.provider()
        response = self.admin.post("/v1/meters", {"code": "bandwidth", "name": "Bandwidth", "aggregation": "sum",
                                                  "unit": "GB", "decimals": 2})
        assert response.status_code == 201, response.json
        platform_use = {"model": "per_unit", "unit_amount": "0.01"}
        resold_use = {"model": "graduated", "included_units": "100", "thresholds": [80, 100], "tiers": [
            {"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}]}
        solo_use = {"model": "package", "package_size": 50, "unit_amount": "1.25", "minimum": "1.00"}
        for caller, code, fees, fields in (
                (self.admin, "platform", [("Hosting", "20.00", "in_advance", None, platform_use),
                                          ("Support", "3.00", "in_arrears", None, None)], {"granted_to": ["*"]}),
                (self.provider, "resold", [("Hosting", "31.00", "in_advance", "Hosting", resold_use),
                                           ("Support", "2.50", "in_arrears", "Support", None)],
                 {"parent_plan": "platform"}),
                (self.provider, "solo", [("Hosting", "62.00", "in_advance", None, solo_use)], {})):
            response = caller.post("/v1/plans", {"code": code, "name": code.title(), "currency": "AUD", **fields,
                                                 "fees": [{"name": n, "price": p, "timing": t,
                                                           **({"parent_fee": f} if f else {}),
                                                           **({"usage": [{"meter": "bandwidth", "name": "Bandwidth",
                                                                          **use}]} if use else {})}
                                                          for n, p, t, f, use in fees]})
            assert response.status_code == 201, response.json
        self.subscriptions: list[str] = []
        self.sent = 0

    def move(self, to: datetime) -> None:
        response = self.admin.post("/v1/test_clock/advance", {"to": _iso(to)})
        assert response.status_code == 200, response.json

    def act(self, now: datetime, action: str, customer: str, plan: str, number: int, ahead: int) -> None:
        at = _iso(now + timedelta(hours=ahead))
        if action == "start":
            response = self.provider.post("/v1/subscriptions", {"customer": customer, "plan": plan, "quantity": number,
                                                                **({"starts_at": at} if ahead else {})})
            if response.status_code == 201:
                self.subscriptions.append(response.json["id"])
        elif action == "bill":
            self.sent += 1
            response = self.provider.post("/v1/bills", bill_body(customer=customer, amount=f"{number * 7}.25"),
                                          headers={"Idempotency-Key": f"b{self.sent}"})
        elif action == "usage":
            if not self.subscriptions:
                return
            self.sent += 1
            response = self.provider.post("/v1/usage_events", {
                "id": f"u{self.sent}", "subscription": self.subscriptions[number % len(self.subscriptions)],
                "meter": "bandwidth", "value": f"{number * 45}.5", "timestamp": _iso(now)})
        elif action == "trial":
            response = self.provider.put(f"/v1/customers/{customer}/trial", {"ends_at": at})
        elif action == "price":
            response = self.provider.post(f"/v1/plans/{plan}/versions", {"prices": {"Hosting": f"{number * 20}.00"}})
        elif not self.subscriptions:
            return
        elif action == "change":
            response = self.provider.patch(f"/v1/subscriptions/{self.subscriptions[number % len(self.subscriptions)]}",
                                           {"plan": plan, "quantity": number, **({"at": at} if ahead else {})})
        else:
            response = self.provider.delete(f"/v1/subscriptions/{self.subscriptions[number % len(self.subscriptions)]}",
                                            query_string={"at": at} if ahead else {})
        assert response.status_code < 500, response.json

    def upcoming(self) -> dict[str, tuple]:
        out = {}
        for customer in ("c1", "c2"):
            body = self.admin.get(f"/v1/customers/{customer}/upcoming_invoice").json
            out[customer] = (body["subtotal"], Counter((line["description"], line["amount"])
                                                       for line in body["lines"]))
        return out

    def invoiced(self) -> dict[str, tuple]:
        out = {}
        for invoice in self.admin.get("/v1/invoices", query_string={"limit": 100}).json["data"]:
            lines = self.admin.get(f"/v1/invoices/{invoice['id']}").json["lines"]
            out[invoice["customer_external_id"]] = (invoice["subtotal"], Counter(
                (line["description"], line["amount"]) for line in lines))
        return out


@settings(max_examples=int(os.environ.get("UPCOMING_EXAMPLES", 8)), deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(history=(EXPLICIT := [(0, "start", "c1", "resold", 2, 0), (5, "bill", "c1", "solo", 1, 0),
                  (30, "start", "c2", "solo", 1, 24 * 5), (100, "change", "c1", "solo", 3, 7),
                  (150, "trial", "c2", "solo", 1, 24 * 5), (200, "cancel", "c1", "solo", 2, 24 * 5),
                  (250, "price", "c1", "solo", 2, 0)]))
@example(history=(USAGE := [(0, "start", "c1", "resold", 1, 0), (1, "start", "c2", "solo", 1, 0),
                            (3, "usage", "c1", "solo", 3, 0), (4, "usage", "c1", "solo", 2, 0),
                            (6, "bill", "c1", "solo", 1, 0), (8, "usage", "c1", "solo", 1, 0),
                            (100, "change", "c1", "solo", 2, 0), (150, "usage", "c1", "solo", 2, 0),
                            (300, "usage", "c2", "solo", 1, 0)]))
@given(history=actions)
def test_the_upcoming_invoice_before_the_end_is_the_invoice_the_close_makes(make_tenant, clock, templates_only,
                                                                             history):
    clock.set(START)
    shop = Shop(make_tenant)
    for hours, *action in sorted(history, key=lambda a: a[0]):
        now = START + timedelta(hours=hours)
        if now > START:
            shop.move(now)
        shop.act(now, *action)
    shop.move(BEFORE_END)
    upcoming = {c: u for c, u in shop.upcoming().items() if u[1]}  # a customer with nothing has no invoice
    shop.move(datetime.fromisoformat(AFTER_END))
    if history == EXPLICIT:
        assert set(upcoming) == {"c1", "c2"} and len(upcoming["c1"][1]) == 3, upcoming
    if history == USAGE:  # c1's Bandwidth on resold (1 VM: 2 events), c2's on solo (3 events)
        assert sum(n for (d, _), n in upcoming["c1"][1].items() if d.startswith("Bandwidth")) == 1, upcoming
        assert any(d.startswith("Bandwidth") for d, _ in upcoming["c2"][1]), upcoming
    assert upcoming == shop.invoiced()
