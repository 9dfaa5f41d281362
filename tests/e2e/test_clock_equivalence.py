"""Time is data: moving a test clock in one jump, in day-sized steps or in random steps gives
identical invoices (numbers, dates, totals, statuses, lines, when each became overdue) and
identical charges (each attempt's instant and outcome, paid_at, the retry schedule), because each piece of due work
runs as of its own instant, in order. The charges go to localstripe: c1 pays by a working card,
c2's card is declined (retried on days 3, 5 and 7, then uncollectible), c3 has no card."""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from tests.localstripe_server import CARD_DECLINED, CARD_OK
from tests.support.clock import START
from tests.support.invoicing import bill_body

END = START + timedelta(days=140)  # past the end of the last period a bill can be sent in (Sydney, anchor 25)

bills = st.lists(st.tuples(
    st.integers(min_value=0, max_value=125 * 24),  # hours after START the bill is sent
    st.sampled_from(["c1", "c2", "c3"]),
    st.sampled_from(["12.50", "-30.00", "0.99", "100.00", "7.00"]),
    st.sampled_from(["AUD", "USD"]),
    st.booleans()), min_size=1, max_size=10)
tenant_settings = st.fixed_dictionaries({
    "invoice_review": st.sampled_from(["auto", "manual"]),
    "auto_finalize_after_days": st.sampled_from([0, 2, 9]),
    "default_tax_rate": st.sampled_from(["0", "0.1"]),
    "charge_day": st.sampled_from([1, 2, 28]),
    "payment_terms_days": st.sampled_from([None, None, 0, 14]),
})


def _iso(instant: datetime) -> str:
    return instant.astimezone(timezone.utc).isoformat()


class Shop:
    """One tenant in test mode with the same providers and customers as the others."""

    def __init__(self, make_tenant, setup: dict, localstripe):
        self.tenant = make_tenant()
        self.admin = self.tenant.admin["test"]
        assert self.admin.patch("/v1/tenant", {**setup, "stripe_secret_key": "sk_test_aggregator4242",
                                               "stripe_api_base": localstripe.url}).status_code == 200
        assert self.admin.put("/v1/fx_rates", {"base": "USD", "quote": "AUD", "rate": "1.5",
                                               "effective_date": "2026-01-01"}).status_code == 200
        for customer in ("c1", "c2", "c3"):
            self.tenant.customer(customer)
        for customer, card in (("c1", CARD_OK), ("c2", CARD_DECLINED)):
            stripe_customer, method = localstripe.customer_with_card(card)
            assert self.admin.patch(f"/v1/customers/{customer}", {
                "stripe_customer_id": stripe_customer, "stripe_payment_method": method}).status_code == 200
        self.provider = self.tenant.provider()
        self.at = START

    def move(self, to: datetime) -> None:
        response = self.admin.post("/v1/test_clock/advance", {"to": _iso(to)})
        assert response.status_code == 200, response.json
        self.at = to

    def send(self, n: int, customer: str, amount: str, currency: str, revenue_share: bool) -> None:
        response = self.provider.post("/v1/bills", bill_body(customer=customer, amount=amount, currency=currency,
                                                             revenue_share=revenue_share),
                                      headers={"Idempotency-Key": f"b{n}"})
        assert response.status_code == 201, response.json

    def invoices(self) -> list[tuple]:
        data = self.admin.get("/v1/invoices?limit=100").json["data"]
        return sorted((i["period"]["start"], i["customer_external_id"], i["number"], i["status"], i["due_date"],
                       i["created_at"], i["finalized_at"], i["subtotal"], i["tax"], i["total"], i["amount_due"],
                       i["carried_credit"], tuple((line["kind"], line["amount"],
                                                   line["original_amount"]) for line in i["lines"]),
                       i["amount_paid"], i["paid_at"], i["collection"], i["next_charge_at"], i["attempt_count"],
                       i["overdue_at"], self.payments(i["id"]))
                      for i in data)

    def payments(self, invoice_id: str) -> tuple:
        data = self.admin.get(f"/v1/invoices/{invoice_id}/payments?limit=100").json["data"]
        return tuple(sorted((p["attempt"], p["trigger"], p["amount"], p["status"], p["created_at"], p["settled_at"],
                             p["failure_code"]) for p in data))


def _run(shop: Shop, sent: list, steps) -> list[tuple]:
    """Send the bills at their instants, moving the clock by `steps(from, to)`, then on to END."""
    for n, (hours, *bill) in enumerate(sorted(sent, key=lambda b: b[0])):
        for instant in steps(shop.at, max(shop.at, START + timedelta(hours=hours))):
            shop.move(instant)
        shop.send(n, *bill)
    for instant in steps(shop.at, END):
        shop.move(instant)
    return shop.invoices()


def jump(start: datetime, to: datetime):
    return [to] if to > start else []


def by_days(start: datetime, to: datetime):
    instants = []
    while start < to:
        start = min(start + timedelta(days=1), to)
        instants.append(start)
    return instants


def by_random(sizes: list[int]):
    def steps(start: datetime, to: datetime):
        instants, n = [], 0
        while start < to:
            start = min(start + timedelta(hours=sizes[n % len(sizes)]), to)
            instants.append(start)
            n += 1
        return instants
    return steps


def _ci_slice(knob: str, examples: int):
    """CI's slice: `examples` generated examples (the environment's `knob` for more) beside the
    explicit ones; each runs tenants through months of clock moves, so no shrinking (it would take
    minutes): a failure is reported as found."""
    return settings(max_examples=int(os.environ.get(knob, examples)), deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate],
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@_ci_slice("CLOCK_INVOICE_EXAMPLES", 4)
@example(sent=(EXPLICIT_SENT := [(10, "c1", "12.50", "AUD", True), (20, "c2", "-30.00", "USD", False),
                                 (800, "c2", "100.00", "AUD", True)]),
         setup=(EXPLICIT_SETUP := {"invoice_review": "manual", "auto_finalize_after_days": 2, "default_tax_rate": "0.1",
                                   "charge_day": 28}),
         sizes=[100])  # two drafts finalized at one deadline; a credit carried into the next period
@given(sent=bills, setup=tenant_settings,
       sizes=st.lists(st.integers(min_value=12, max_value=24 * 40), min_size=1, max_size=5))
def test_a_jump_day_steps_and_random_steps_give_the_same_invoices(make_tenant, clock, localstripe, templates_only,
                                                                   sent, setup, sizes):
    clock.set(START)
    results = [_run(Shop(make_tenant, setup, localstripe), sent, steps) for steps in (jump, by_days, by_random(sizes))]
    assert results[0], "the bills should have been invoiced"
    if (sent, setup) == (EXPLICIT_SENT, EXPLICIT_SETUP):  # its charges: c1's card paid, c2's was declined and retried
        statuses = {p[3] for invoice in results[0] for p in invoice[-1]}
        assert statuses == {"succeeded", "failed"}, results[0]
    assert results[0] == results[1] == results[2]


# --- subscriptions: rated at each close as of the period's end, whatever the clock's steps ------------

#: What providers do to subscriptions: (hours after START, action, customer, plan, a number (the
#: quantity, or which subscription), hours ahead the change takes effect).
subscription_actions = st.lists(st.tuples(
    st.integers(min_value=0, max_value=110 * 24),
    st.sampled_from(["start", "start", "change", "cancel"]),
    st.sampled_from(["c1", "c2"]),
    st.sampled_from(["resold", "solo", "staging"]),
    st.integers(min_value=1, max_value=3),
    st.sampled_from([0, 0, 5, 24 * 9])), min_size=1, max_size=8)


class SubscriptionShop:
    """One tenant in test mode: a parent plan granted to the provider, its plan on it (a fee in
    advance, one in arrears), a plan of its own, an unbilled staging plan; two customers."""

    def __init__(self, make_tenant):
        self.tenant = make_tenant()
        self.admin = self.tenant.admin["test"]
        for customer in ("c1", "c2"):
            self.tenant.customer(customer)
        self.provider = self.tenant.provider()
        self._plan(self.admin, "platform", [("Hosting", "20.00", "in_advance", None),
                                            ("Support", "3.00", "in_arrears", None)], granted_to=["*"])
        self._plan(self.provider, "resold", [("Hosting", "31.00", "in_advance", "Hosting"),
                                             ("Support", "2.50", "in_arrears", "Support")], parent_plan="platform")
        self._plan(self.provider, "solo", [("Hosting", "62.00", "in_advance", None)])
        self._plan(self.provider, "staging", [("Hosting", "10.00", "in_arrears", None)], unbilled=True)
        self.at = START
        self.subscriptions: list[str] = []
        self.answers: list[tuple] = []

    @staticmethod
    def _plan(caller, code, fees, **fields):
        response = caller.post("/v1/plans", {"code": code, "name": code.title(), "currency": "AUD", **fields, "fees": [
            {"name": name, "price": price, "timing": timing, **({"parent_fee": parent} if parent else {})}
            for name, price, timing, parent in fees]})
        assert response.status_code == 201, response.json

    def move(self, to: datetime) -> None:
        response = self.admin.post("/v1/test_clock/advance", {"to": _iso(to)})
        assert response.status_code == 200, response.json
        self.at = to

    def act(self, action: str, customer: str, plan: str, number: int, ahead: int) -> None:
        at = {"at": _iso(self.at + timedelta(hours=ahead))} if ahead else {}
        if action == "start":
            response = self.provider.post("/v1/subscriptions", {
                "customer": customer, "plan": plan, "quantity": number,
                **({"starts_at": at["at"]} if at else {})})
            if response.status_code == 201:
                self.subscriptions.append(response.json["id"])
        elif not self.subscriptions:
            return
        elif action == "change":
            response = self.provider.patch(f"/v1/subscriptions/{self.subscriptions[number % len(self.subscriptions)]}",
                                           {"plan": plan, "quantity": number, **at})
        else:
            response = self.provider.delete(f"/v1/subscriptions/{self.subscriptions[number % len(self.subscriptions)]}",
                                            query_string=at)
        assert response.status_code < 500, response.json
        self.answers.append((action, response.status_code, (response.json.get("error") or {}).get("code")))

    def results(self) -> tuple:
        invoices = self.admin.get("/v1/invoices?limit=100").json["data"]
        billed = sorted((i["period"]["start"], i["customer_external_id"], i["number"], i["status"], i["subtotal"],
                         i["total"], i["created_at"], tuple(sorted((line["description"], line["amount"])
                                                                  for line in i["lines"])))
                        for i in invoices)
        statements = [[(s["period"], s["amount"], tuple(sorted(
            (c["kind"], c["covered"]["start"], c["days"], c["quantity"], c["amount"], c["platform_fee"],
             c["description"]) for c in s["charges"])))
            for s in self.provider.get(f"/v1/subscriptions/{sub}/statements").json["data"]]
            for sub in self.subscriptions]
        return billed, statements, self.answers


def _run_subscriptions(shop: SubscriptionShop, actions: list, steps) -> tuple:
    for hours, *action in sorted(actions, key=lambda a: a[0]):
        for instant in steps(shop.at, max(shop.at, START + timedelta(hours=hours))):
            shop.move(instant)
        shop.act(*action)
    for instant in steps(shop.at, END):
        shop.move(instant)
    return shop.results()


@_ci_slice("CLOCK_SUBSCRIPTION_EXAMPLES", 2)
@example(actions=(EXPLICIT_ACTIONS := [(0, "start", "c1", "resold", 1, 0), (30, "start", "c2", "solo", 2, 24 * 9),
                  (200, "change", "c1", "solo", 2, 5), (900, "change", "c1", "resold", 3, 0),
                  (1500, "cancel", "c1", "solo", 1, 24 * 9), (1600, "start", "c2", "staging", 1, 0),
                  (2000, "cancel", "c2", "solo", 2, 0)]),
         sizes=[100])  # a start, a scheduled start, plan and quantity changes, cancellations in and out of a period
@given(actions=subscription_actions,
       sizes=st.lists(st.integers(min_value=12, max_value=24 * 40), min_size=1, max_size=5))
def test_a_jump_day_steps_and_random_steps_rate_subscriptions_alike(make_tenant, clock, templates_only, actions,
                                                                     sizes):
    clock.set(START)
    results = [_run_subscriptions(SubscriptionShop(make_tenant), actions, steps)
               for steps in (jump, by_days, by_random(sizes))]
    if actions == EXPLICIT_ACTIONS:  # billed: both customers, in advance, in arrears, adjusted on changes
        kinds = {c[0] for statements in results[0][1] for s in statements for c in s[2]}
        assert kinds == {"in_advance", "in_arrears", "adjustment"} and len(results[0][0]) >= 4, results[0]
    assert results[0] == results[1] == results[2]


# --- usage: rated at each close as of the period's end, whatever the clock's steps ----------------------

#: Usage providers send, each at its own instant on the test clock: (hours after START, customer,
#: meter, value).
usage_events = st.lists(st.tuples(
    st.integers(min_value=0, max_value=60 * 24),
    st.sampled_from(["c1", "c2"]),
    st.sampled_from(["storage", "cpu", "seats", "calls"]),
    st.sampled_from(["1", "4", "12.5", "0"])), min_size=1, max_size=12)
USAGE_END = START + timedelta(days=80)  # past the end of the period 2026-12-25 .. 2027-01-24 (Sydney)


class MeteredShop:
    """One tenant in test mode: meters of each kind over time (GB held, hourly maximum cores, seats
    never reset, calls counted with included units) priced on one plan with a flat fee; c1 and c2
    subscribed at START."""

    def __init__(self, make_tenant):
        self.tenant = make_tenant()
        self.admin = self.tenant.admin["test"]
        for code, aggregation, extra in (("storage", "time_weighted", {"decimals": 1, "unit": "GB-h"}),
                                         ("cpu", "hourly_max", {"decimals": 1, "unit": "core-h"}),
                                         ("seats", "sum", {"decimals": 1, "reset": "never", "unit": "seat"}),
                                         ("calls", "count", {"unit": "call"})):
            response = self.admin.post("/v1/meters", {"code": code, "name": code.title(),
                                                      "aggregation": aggregation, **extra})
            assert response.status_code == 201, response.json
        self.provider = self.tenant.provider()
        response = self.provider.post("/v1/plans", {"code": "metered", "name": "Metered", "currency": "AUD", "fees": [
            {"name": "Platform", "price": "10.00", "timing": "in_arrears", "usage": [
                {"meter": "storage", "model": "per_unit", "unit_amount": "0.001"},
                {"meter": "cpu", "model": "per_unit", "unit_amount": "0.04", "minimum": "0.50"},
                {"meter": "seats", "model": "per_unit", "unit_amount": "3.00"},
                {"meter": "calls", "model": "graduated", "included_units": "2", "thresholds": [50, 100],
                 "tiers": [{"up_to": "4", "unit_amount": "0.10"}, {"up_to": None, "unit_amount": "0.05"}]}]}]})
        assert response.status_code == 201, response.json
        for customer in ("c1", "c2"):
            self.tenant.customer(customer)
            response = self.provider.post("/v1/subscriptions", {"customer": customer, "plan": "metered",
                                                                "external_billing_id": f"sub-{customer}"})
            assert response.status_code == 201, response.json
        self.at = START
        self.answers: list[tuple] = []

    def move(self, to: datetime) -> None:
        response = self.admin.post("/v1/test_clock/advance", {"to": _iso(to)})
        assert response.status_code == 200, response.json
        self.at = to

    def send(self, n: int, customer: str, meter: str, value: str) -> None:
        response = self.provider.post("/v1/usage_events", {"id": f"u{n}", "subscription": f"sub-{customer}",
                                                           "meter": meter, "value": value})
        self.answers.append((response.status_code, response.json.get("timestamp")))

    def results(self) -> tuple:
        invoices = self.admin.get("/v1/invoices?limit=100").json["data"]
        billed = sorted((i["period"]["start"], i["customer_external_id"], i["number"], i["status"], i["subtotal"],
                         i["total"], i["created_at"], tuple(sorted((line["description"], line["amount"])
                                                                  for line in i["lines"])))
                        for i in invoices)
        events = sorted((e["type"], e["created"], e["data"]["object"]["threshold"], e["data"]["object"]["reached_at"])
                        for e in self.admin.get("/v1/events?limit=100").json["data"]
                        if e["type"] == "usage.threshold_reached")
        return billed, events, self.answers


def _run_usage(shop: MeteredShop, sent: list, steps) -> tuple:
    for n, (hours, *event) in enumerate(sorted(sent, key=lambda e: e[0])):
        for instant in steps(shop.at, max(shop.at, START + timedelta(hours=hours))):
            shop.move(instant)
        shop.send(n, *event)
    for instant in steps(shop.at, USAGE_END):
        shop.move(instant)
    return shop.results()


@_ci_slice("CLOCK_USAGE_EXAMPLES", 2)
@example(sent=(EXPLICIT_USAGE := [(0, "c1", "storage", "12.5"), (5, "c1", "cpu", "4"), (6, "c1", "cpu", "1"),
                                  (30, "c1", "seats", "4"), (40, "c2", "calls", "1"), (41, "c2", "calls", "1"),
                                  (42, "c2", "calls", "1"), (20 * 24, "c1", "storage", "1"),
                                  (40 * 24, "c1", "seats", "1"), (45 * 24, "c2", "cpu", "12.5")]),
         sizes=[100])  # levels held across closes, seats carried, a threshold, a minimum
@given(sent=usage_events, sizes=st.lists(st.integers(min_value=12, max_value=24 * 40), min_size=1, max_size=5))
def test_a_jump_day_steps_and_random_steps_rate_usage_alike(make_tenant, clock, templates_only, sent, sizes):
    clock.set(START)
    results = [_run_usage(MeteredShop(make_tenant), sent, steps) for steps in (jump, by_days, by_random(sizes))]
    if sent == EXPLICIT_USAGE:
        lines = {line[0].split(" — ")[0] for invoice in results[0][0] for line in invoice[-1]}
        assert {"Storage", "Cpu", "Seats", "Calls"} <= lines, results[0][0]
        assert results[0][1], "a threshold should have been reached"
    assert results[0] == results[1] == results[2]
