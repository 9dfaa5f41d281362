"""`aggregator demo`: one month of consolidated billing on a fresh test-mode tenant, told as it
happens. Everything goes through the public HTTP API (in-process) and the same due work, queues
and adapters the service runs in production; only the test clock is moved, as a user would move
it. The invoices' PDFs are written under the output directory, the emails to a file sink there
(or an SMTP server), the webhooks to a receiver the demo starts on 127.0.0.1.

After the close, the customers pay: by card through a Stripe-compatible API (localstripe, run as
a process of the demo's own when it is installed next to this Python) with one decline and its
retry, and by a bank transfer the platform records; without localstripe, every invoice is paid
by bank transfer."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click
from flask import Flask
from rich.console import Console
from rich.table import Table

from . import due, money
from .accounts import service as accounts
from .adapters import Adapters
from .config import Settings, default_database_url, var_dir
from .mail.mailer import FileSink
from .payments.stripe import StripeGateways, localstripe
from .periods import calendar
from .plurals import counted
from .webhooks import signing
from .webhooks.sender import WebhookSender

#: (name, what it sells, revenue share rate or None for pass-through only)
PROVIDERS = [
    ("Ledgerly", "accounting software, a monthly subscription", "0.30"),
    ("TextBlast", "SMS packs, passed through at cost", "0"),
    ("Academy Pro", "training sessions and customisation", "0.20"),
    ("CloudNest", "metered cloud VMs, priced on usage", "0.10"),
]
#: (external id, name, currency)
CUSTOMERS = [
    ("bakery-42", "Fine Bakery Pty", "USD"),
    ("studio-9", "Studio Nine", "USD"),
    ("cafe-lune", "Café de la Lune", "EUR"),
]
#: The demo tenant's identity on its documents: an Australian "Tax invoice" naming GST, with its ABN
#: (its locale follows its country: en_AU).
DEMO_TAX_IDENTITY = {
    "country": "AU", "tax_ids": [{"type": "au_abn", "value": "83914571673"}], "tax_name": "GST",
    "invoice_title": "Tax invoice",
    "address": {"line1": "1 George St", "city": "Sydney", "state": "NSW", "postal_code": "2000", "country": "AU"},
    # customers without a card pay by bank transfer: their invoices print these details
    "payment_instructions": {"account_holder": "Demo Marketplace Pty Ltd", "bank_name": "Harbour Bank",
                             "bsb": "062-000", "account_number": "12345678"}}
#: Customers' tax ids and addresses (as written: the API keeps them in their compact form).
CUSTOMER_TAX_IDENTITIES = {
    "bakery-42": {"tax_ids": [{"type": "au_abn", "value": "51 824 753 556"}],
                  "address": {"line1": "42 Baker St", "city": "Melbourne", "state": "VIC", "country": "AU"}},
    "cafe-lune": {"tax_ids": [{"type": "eu_vat", "value": "FR 40 303 265 045"}],
                  "address": {"line1": "3 rue de la Lune", "city": "Paris", "postal_code": "75002", "country": "FR"}},
    # no tax id, but an address: EN 16931 wants every buyer's (BR-10, BR-11)
    "studio-9": {"address": {"line1": "9 Chapel St", "city": "Windsor", "state": "VIC", "postal_code": "3181",
                             "country": "AU"}},
}
#: (provider index, customer external id, amount, currency, revenue share, description)
BILLS = [
    (0, "bakery-42", "49.00", "USD", True, "Ledgerly Pro plan"),
    (1, "bakery-42", "12.50", "USD", False, "SMS pack, 500 messages"),
    (2, "bakery-42", "300.00", "USD", False, "On-site training, half a day"),
    (0, "studio-9", "19.00", "USD", True, "Ledgerly Starter plan"),
    (0, "studio-9", "-5.00", "USD", True, "Credit: two days of downtime"),
    (1, "studio-9", "25.00", "USD", False, "SMS pack, 1,000 messages"),
    (0, "cafe-lune", "45.00", "EUR", True, "Ledgerly Pro plan"),
    (1, "cafe-lune", "10.00", "USD", False, "SMS pack, 400 messages (billed in USD, converted)"),
]
#: The platform's own price list: a parent plan (the platform's fee per period), granted to Ledgerly
PARENT_PLAN = {"code": "cloud-hosting", "name": "Cloud hosting", "currency": "USD",
               "fees": [{"name": "Hosting", "price": "20.00", "timing": "in_advance"}]}
#: Ledgerly's plans built on it: (code, name, its price of the parent's Hosting fee)
RESOLD_PLANS = [("ledgerly-cloud", "Ledgerly Cloud", "35.00"), ("ledgerly-cloud-plus", "Ledgerly Cloud Plus", "50.00")]
#: The plans' story (a backdated subscription, a change, a cancellation) needs days of the open
#: period: a demo started with fewer left starts with the next period.
STORY_DAYS = 7
#: The metered app (CloudNest, the last provider): PLATFORMA's bandwidth, 100 GB included then
#: graduated tiers (cumulative bounds), with alerts at 80/90/100 % of the included 100 GB; and
#: Omnistrate's instance resources, the hourly maximum of each resource's samples, priced per dimension.
METERS = [
    {"code": "bandwidth", "name": "Bandwidth", "unit": "GB", "aggregation": "sum", "decimals": 2},
    {"code": "instance-resources", "name": "Instance resources", "unit": "unit-hours", "aggregation": "hourly_max",
     "field": "amount", "dimensions": ["resource"]},
]
METERED_PLAN = {"code": "cloud-vm", "name": "Cloud VM", "currency": "EUR", "fees": [
    {"name": "Cloud VM", "price": "49.99", "timing": "in_arrears", "usage": [
        {"meter": "bandwidth", "name": "Bandwidth", "model": "graduated", "included_units": "100",
         "tiers": [{"up_to": "1000", "unit_amount": "0.05"}, {"up_to": None, "unit_amount": "0.03"}],
         "thresholds": [80, 90, 100]},
        {"meter": "instance-resources", "name": "CPU", "dimension": {"resource": "cpu"}, "model": "per_unit",
         "unit_amount": "0.04"},
        {"meter": "instance-resources", "name": "Memory", "dimension": {"resource": "memory"}, "model": "per_unit",
         "unit_amount": "0.005"},
        {"meter": "instance-resources", "name": "Storage", "dimension": {"resource": "storage"},
         "model": "per_unit", "unit_amount": "0.0002"}]}]}
#: Bandwidth used by the VM, in GB, in the order sent: the 2nd crosses 80 %, the 3rd 90 and 100 %
BANDWIDTH = ["70", "15", "20.5"]
#: Bandwidth used after the usage is read, before the period ends (1,340 GB in all, PLATFORMA's example)
BANDWIDTH_LATER = "1234.5"
#: The instance's samples every 15 minutes over 3 hours, per resource (cores, GiB of memory, GiB of storage)
SAMPLES = {"cpu": [2, 2, 4, 4, 4, 8, 8, 4, 4, 2, 2, 2],
           "memory": [8, 8, 16, 16, 16, 32, 32, 16, 16, 8, 8, 8],
           "storage": [100, 100, 100, 120, 120, 120, 120, 120, 150, 150, 150, 150]}
#: customer external id -> (the card it gives, what that card does); the others pay by bank transfer
CARDS = {
    "bakery-42": (localstripe.CARD_OK, "a working card"),
    "studio-9": (localstripe.CARD_DECLINED, "a card its bank declines"),
}


class DemoFailed(click.ClickException):
    pass


@dataclass
class _Client:
    """Calls the API in-process, as a provider or an admin would over HTTP."""

    app: Flask
    calls: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, key: str, body: Any = None, *, raw: bool = False, **headers) -> Any:
        with self.app.app_context():  # a request of its own (`g` is the app context's)
            response = self.app.test_client().open(f"/v1{path}", method=method, json=body,
                                                   headers={"Authorization": f"Bearer {key}", **headers})
        self.calls.append(f"{method} /v1{path} -> {response.status_code}")
        if response.status_code >= 400:
            error = (response.get_json(silent=True) or {}).get("error", {})
            raise DemoFailed(f"{method} /v1{path} answered {response.status_code}: "
                             f"{error.get('message', response.get_data(as_text=True)[:200])}")
        return response.data if raw else response.get_json()


def _drain(lane: due.Lane, adapters: Adapters) -> dict[str, int]:
    """Work every queue of the lane until none has anything ready (a worker's drain)."""
    done: Counter = Counter()
    while True:
        worked = {queue.name: due.drain(queue, adapters, lane=lane) for queue in due.queues()}
        for name, result in worked.items():
            done[name] += result.done
        if not any(result.taken for result in worked.values()):
            return dict(done)


def run_demo(app: Flask, adapters: Adapters, out: Path, console: Console) -> dict[str, Any]:
    """The demo's story, step by step, with `adapters` (which must allow webhooks to loopback:
    the receiver is local). -> what it made (for tests)."""
    api = _Client(app)
    out.mkdir(parents=True, exist_ok=True)
    now = adapters.clocks.base.now()
    with ExitStack() as stack:  # the receiver, and localstripe once started: stopped whatever happens
        receiver = _Receiver()
        stack.callback(receiver.close)
        return _story(app, adapters, api, out, now, receiver, stack, console)


def _story(app, adapters, api, out, now, receiver, stack, console) -> dict[str, Any]:
    console.rule("[bold]1. A platform")
    created = accounts.create_tenant({"name": "Demo Marketplace", "legal_name": "Demo Marketplace Pty Ltd",
                                      "timezone": "Australia/Sydney", "default_currency": "USD",
                                      "finance_email": "finance@demo-marketplace.example",
                                      "email_from": "billing@demo-marketplace.example",
                                      "email_from_name": "Demo Marketplace Billing", **DEMO_TAX_IDENTITY}, now)
    tenant_id, admin = created.tenant.id, created.admin_keys["test"]
    lane = due.Lane(tenant_id, False)
    settings = api.call("GET", "/tenant", admin)
    console.print(f"{settings['legal_name']}, {settings['country']}: its invoices are titled "
                  f"\"{settings['invoice_title']}\", with its ABN {settings['tax_ids'][0]['value']} and the tax "
                  f"named {settings['tax_name']}, formatted for {settings['locale']}.")
    console.print(f"Tenant [bold]{settings['name']}[/] ({tenant_id}), in [bold]test mode[/]: nothing here touches "
                  f"live data or moves real money.\nInvoicing periods run from the {settings['period_anchor_day']}th "
                  f"to the day before, in {settings['timezone']}; customers are charged on day "
                  f"{settings['charge_day']}.\nAdmin API key (test mode): {admin}")
    _make_room(api, admin, settings, console)

    console.rule("[bold]2. Providers: the apps sold on the platform")
    provider_keys, provider_ids = [], []
    for name, sells, rate in PROVIDERS:
        made = api.call("POST", "/providers", admin, {"name": name, "email": f"billing@{name.lower().replace(' ', '')}"
                                                      ".example", "revenue_share_rate": rate})
        provider_keys.append(made["api_key"])
        provider_ids.append(made["id"])
        share = f"the platform keeps {float(rate):.0%} of subscription bills" if rate != "0" else "pass-through only"
        console.print(f"{name}: {sells} ({share}); its API key: {made['api_key'][:18]}…")

    console.rule("[bold]3. Customers: businesses using several apps")
    for external_id, name, currency in CUSTOMERS:
        customer = api.call("POST", "/customers", admin, {
            "external_id": external_id, "name": name, "currency": currency, "email": f"accounts@{external_id}.example",
            **CUSTOMER_TAX_IDENTITIES.get(external_id, {})})
        tax_ids = ", ".join(t["value"] for t in customer["tax_ids"])
        console.print(f"{name} ({external_id}), invoiced in {currency}" + (f"; tax id {tax_ids}" if tax_ids else ""))

    console.rule("[bold]4. Bills: each provider sends what its customers owe (POST /v1/bills)")
    table = Table("provider", "customer", "description", "amount", "revenue share")
    sent = []
    billed = calendar.period_containing(datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"]),
                                        settings["period_anchor_day"], settings["timezone"])
    covered = {"start": billed.start.isoformat(), "end": billed.end.isoformat()}  # what each bill is for
    for n, (provider, customer, amount, currency, share, description) in enumerate(BILLS):
        body = {"customer": customer, "amount": amount, "currency": currency, "revenue_share": share,
                "description": description, "service_period": covered}
        sent.append(api.call("POST", "/bills", provider_keys[provider], body, **{"Idempotency-Key": f"demo-{n}"}))
        table.add_row(PROVIDERS[provider][0], customer, description, f"{amount} {currency}", "yes" if share else "no")
    console.print(table)
    provider, customer, amount, currency, share, description = BILLS[0]
    again = api.call("POST", "/bills", provider_keys[provider],
                     {"customer": customer, "amount": amount, "currency": currency, "revenue_share": share,
                      "description": description, "service_period": covered}, **{"Idempotency-Key": "demo-0"})
    console.print(f"The first bill sent again with the same Idempotency-Key (a retry after a timeout) is answered "
                  f"with the same bill, {again['id']} {'=' if again['id'] == sent[0]['id'] else '!='} "
                  f"{sent[0]['id']}: never a second one.")

    [period] = [p for p in api.call("GET", "/periods", admin)["data"] if p["status"] == "open"]
    rate_day = period["end_at"][:10]
    api.call("PUT", "/fx_rates", admin, {"base": "USD", "quote": "EUR", "rate": "0.92", "effective_date": rate_day})
    console.print(f"FX rate USD→EUR 0.92 from {rate_day}: the SMS pack billed in USD is converted on the EUR invoice.")

    _before_close(api, admin, receiver, console)
    catalog = _plans(api, admin, provider_keys[0], provider_ids[0], period, console)
    metered = _metered(api, admin, provider_keys[3], provider_ids[3], period, console)

    console.rule("[bold]7. The period ends, and the service closes it by itself")
    end = datetime.fromisoformat(period["end_at"])
    target = end + timedelta(hours=1)
    console.print(f"Period {period['start']} ends at {period['end_at']}. The test clock jumps to "
                  f"{target.isoformat()}: due work runs as of its own instant, as if on time.")
    result = api.call("POST", "/test_clock/advance", admin, {"to": target.isoformat()})
    ran = result["ran"]
    for close in ran["closes"]:
        console.print(f"Closed period {close['period']} as of its end: "
                      f"{counted(close['invoices_created'], 'invoice', 'invoices')} "
                      f"({counted(close['customers_waiting'], 'customer', 'customers')} waiting).")
    console.print(f"Invoices are finalized at the close (review: automatic; a tenant may review drafts first); "
                  f"{counted(ran['pdfs']['rendered'], 'PDF', 'PDFs')} rendered.")
    delivered = _drain(lane, adapters)

    console.rule("[bold]8. One consolidated invoice per customer")
    invoices = api.call("GET", "/invoices?limit=100", admin)["data"]
    names = {c["id"]: c["name"] for c in api.call("GET", "/customers?limit=100", admin)["data"]}
    table = Table("number", "customer", "lines", "total", "status", "due on", "PDF")
    written = []
    for invoice in sorted(invoices, key=lambda i: i["number"] or ""):
        pdf = out / f"{invoice['number']}.pdf"
        pdf.write_bytes(api.call("GET", f"/invoices/{invoice['id']}/pdf", admin, raw=True))
        written.append(pdf)
        (out / f"{invoice['number']}.xml").write_bytes(api.call("GET", f"/invoices/{invoice['id']}/einvoice", admin,
                                                                 raw=True))
        lines = api.call("GET", f"/invoices/{invoice['id']}", admin)["lines"]
        table.add_row(invoice["number"], names.get(invoice["customer"], invoice["customer"]), str(len(lines)),
                      f"{invoice['total']} {invoice['currency']}", invoice["status"], invoice["due_date"], pdf.name)
    console.print(table)
    console.print(f"Each PDF is in {out}/. Bills of every app on one invoice; the credit is a negative line; the "
                  "USD SMS pack appears converted on the EUR invoice at the recorded rate.")
    console.print("Each PDF is also an e-invoice (Factur-X: PDF/A-3 with its EN 16931 XML inside, the same XML as "
                  "NUMBER.xml beside it; GET /v1/invoices/{id}/einvoice).")
    catalog["lines"] = _plan_lines(api, admin, provider_keys[0], catalog, invoices, console)
    metered["lines"] = _usage_lines(api, admin, metered, invoices, console)

    console.rule("[bold]9. Everyone is told: events, webhooks, emails")
    events = api.call("GET", "/events?limit=100", admin)["data"]
    counts = Counter(event["type"] for event in events)
    table = Table("event", "count")
    for type_, count in sorted(counts.items()):
        table.add_row(type_, str(count))
    console.print(table)
    extras = _after_close(api, admin, receiver, adapters, console)
    charging = _get_paid(api, admin, lane, adapters, receiver, stack, console)
    payouts = _pay_providers(api, admin, lane, adapters, out, console)
    credit_note = _credit_note(api, admin, lane, adapters, out, console)

    delivery = _deliveries(api, admin, receiver, adapters, console)

    console.rule("[bold]Try it yourself")
    serve = f"AGGREGATOR_VAR_DIR={out}"
    if app.config["SQLALCHEMY_DATABASE_URI"] != default_database_url(out):
        serve += f" AGGREGATOR_DATABASE_URL='{app.config['SQLALCHEMY_DATABASE_URI']}'"
    console.print(f"Open {written[0] if written else out}.\n"
                  f"The tenant lives in the demo's own database, not a running server's. To call the API on it, "
                  f"serve the demo's folder on another port:\n{serve} PORT=8001 bin/start\n"
                  f"curl -s http://127.0.0.1:8001/v1/invoices -H 'Authorization: Bearer {admin}'")
    return {"delivery": delivery, "tenant": tenant_id, "admin_key": admin, "invoices": invoices,
            "pdfs": written, "events": counts,
            "delivered": delivered, **extras, "charging": charging, **payouts, "catalog": catalog,
            "metered": metered, "credit_note": credit_note}


def _make_room(api: _Client, admin: str, settings: dict, console: Console) -> None:
    """Start with the next period when fewer than STORY_DAYS of the open one are left (the plans'
    story happens in the days between the customers' arrival and the period's end)."""
    now = datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"])
    period = calendar.period_containing(now, settings["period_anchor_day"], settings["timezone"])
    if period.end_at - now >= timedelta(days=STORY_DAYS):
        return
    target = period.end_at + timedelta(hours=1)
    console.print(f"The period {period.start} ends in less than {STORY_DAYS} days: the story starts with the next "
                  f"one, so that it has days to tell (the test clock moves to {target.isoformat()}).")
    api.call("POST", "/test_clock/advance", admin, {"to": target.isoformat()})


def _on_the_hour(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def _utc(instant: str | None) -> str:
    """An instant of the API (ISO 8601, UTC) as a table shows it: 2026-11-10 12:00 UTC."""
    return f"{instant[:16].replace('T', ' ')} UTC" if instant else "—"


def _plans(api: _Client, admin: str, key: str, provider_id: str, period: dict, console: Console) -> dict:
    """The platform's parent plan granted to Ledgerly, Ledgerly's plans on it with their profit,
    then subscriptions told over the period: one backdated, one plan change, one cancellation."""
    console.rule("[bold]5. Plans: the platform's price list, resold by a provider")
    parent = api.call("POST", "/plans", admin, {**PARENT_PLAN, "granted_to": [provider_id]})
    made = [api.call("POST", "/plans", key, {
        "code": code, "name": name, "currency": parent["currency"], "parent_plan": parent["code"],
        "fees": [{"name": fee["name"], "price": price, "timing": fee["timing"], "parent_fee": fee["name"]}
                 for fee in PARENT_PLAN["fees"]]}) for code, name, price in RESOLD_PLANS]
    provider = PROVIDERS[0][0]
    console.print(f"The platform bills a service of its own: parent plan {parent['code']} ({parent['name']}, "
                  + ", ".join(f"{f['name']} {f['price']} {parent['currency']} a period, {f['timing']}"
                              for f in parent["fees"])
                  + f"), granted to {provider} (POST /v1/plans with the admin key). {provider} builds its plans on "
                  "it (POST /v1/plans with its key, each fee naming the parent fee it resells): the customer pays "
                  f"{provider}'s price, the platform keeps the parent fee, {provider} keeps the difference.")
    table = Table("plan", "owner", "fee", "timing", "price", "parent price", "profit")
    for plan in [parent, *made]:
        for fee in plan["fees"]:
            table.add_row(f"{plan['name']} ({plan['code']})", provider if plan["owner"] == provider_id else "platform",
                          fee["name"], fee["timing"], f"{fee['price']} {plan['currency']}",
                          fee["parent_price"] or "—", fee["profit"] or "—")
    console.print(table)

    now = datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"])
    left = datetime.fromisoformat(period["end_at"]) - now
    first, second = _on_the_hour(now + left / 3), _on_the_hour(now + left * 2 / 3)
    opened = api.call("GET", "/customers/bakery-42", admin)["created_at"]
    api.call("POST", "/test_clock/advance", admin, {"to": first.isoformat()})
    cloud, plus = (code for code, _, _ in RESOLD_PLANS)
    bakery = api.call("POST", "/subscriptions", key, {"customer": "bakery-42", "plan": cloud, "starts_at": opened,
                                                      "external_billing_id": "ledgerly-bakery-42"})
    studio = api.call("POST", "/subscriptions", key, {"customer": "studio-9", "plan": cloud,
                                                      "external_billing_id": "ledgerly-studio-9"})
    console.print(f"The test clock moves to {first.isoformat()}. {provider} subscribes bakery-42 to {cloud} from "
                  f"{opened[:16].replace('T', ' ')} UTC, when its account was opened: a backdated subscription, "
                  "billed from then (POST /v1/subscriptions, starts_at in the past); and studio-9 from now.")
    api.call("POST", "/test_clock/advance", admin, {"to": second.isoformat()})
    bakery = api.call("PATCH", f"/subscriptions/{bakery['external_billing_id']}", key, {"plan": plus})
    studio = api.call("DELETE", f"/subscriptions/{studio['external_billing_id']}", key)
    console.print(f"The test clock moves to {second.isoformat()}. Mid-period, bakery-42 moves up to {plus} (PATCH "
                  f"/v1/subscriptions/{{id}}): each plan is billed for its own days, the day of the change to the new "
                  f"one. studio-9 deletes its instance (DELETE /v1/subscriptions/{{id}}): canceled, no day after "
                  f"today is billed. Fees are rated at the close, day by day.")
    table = Table("subscription", "customer", "plan", "from", "to", "status")
    for sub in (bakery, studio):
        for phase in sub["phases"]:
            table.add_row(sub["external_billing_id"], sub["customer"], phase["plan"], _utc(phase["starts_at"]),
                          _utc(phase["ends_at"]), sub["status"])
    console.print(table)
    upcoming = api.call("GET", "/customers/bakery-42/upcoming_invoice", admin)
    rated = sum(line["source"] == "subscription" for line in upcoming["lines"])
    lines = counted(len(upcoming["lines"]), "line", "lines")
    console.print(f"Were the period to close now, bakery-42's invoice would come to {upcoming['total']} "
                  f"{upcoming['currency']}, {rated} of its {lines} rated from its subscription "
                  "(GET /v1/customers/bakery-42/upcoming_invoice: nothing is stored).")
    return {"plans": [parent, *made], "subscriptions": [bakery, studio], "upcoming": upcoming}


def _metered(api: _Client, admin: str, key: str, provider_id: str, period: dict, console: Console) -> dict:
    """CloudNest's metered VM: the tenant's meters, a plan priced on usage, a subscription; usage
    events that cross the bandwidth's thresholds and an instance sampled every 15 minutes; the
    usage so far."""
    console.rule("[bold]6. A metered app: usage events, included units, thresholds")
    meters = [api.call("POST", "/meters", admin, meter) for meter in METERS]
    console.print("The platform defines what is measured (POST /v1/meters, admin key; `aggregator meters create`): "
                  + "; ".join(f"{m['code']} ({m['aggregation']} of {m['unit']}"
                              + (f", per {', '.join(m['dimensions'])}" if m["dimensions"] else "") + ")"
                              for m in meters) + ". hourly_max is Omnistrate's rule: per hour the largest sample, "
                  "summed over the hours.")
    plan = api.call("POST", "/plans", key, METERED_PLAN)
    table = Table("fee / usage", "meter", "price")
    fee = plan["fees"][0]
    table.add_row(fee["name"], "—", f"{fee['price']} {plan['currency']} a period, {fee['timing']}")
    units = {m["code"]: m["unit"] for m in meters}
    for component in fee["usage"]:
        unit = units[component["meter"]]
        dimension = "".join(f" [{k}={v}]" for k, v in component["dimension"].items())
        if component["tiers"]:
            bounds = "; ".join(f"{'up to ' + t['up_to'] if t['up_to'] else 'beyond'}: {t['unit_amount']}"
                               for t in component["tiers"])
            price = f"{component['included_units']} {unit} included, then {bounds} (alerts at " \
                    f"{', '.join(f'{t} %' for t in component['thresholds'])})"
        else:
            price = f"{component['unit_amount']} per {unit.removesuffix('s')}"
        table.add_row(f"  {component['name']}", component["meter"] + dimension, price)
    console.print(f"CloudNest prices its VM on usage: plan {plan['code']} ({plan['currency']}; POST /v1/plans with "
                  "its fee's usage components, or `aggregator plans create --fees-json`).")
    console.print(table)

    now = datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"])
    starts = _on_the_hour(now - timedelta(hours=4))
    sub = api.call("POST", "/subscriptions", key, {"customer": "cafe-lune", "plan": plan["code"],
                                                   "starts_at": starts.isoformat(),
                                                   "external_billing_id": "cloudnest-vm-7"})
    events = [{"id": f"bw-{n}", "subscription": sub["external_billing_id"], "meter": "bandwidth", "value": gb,
               "timestamp": (starts + timedelta(minutes=30 + 60 * n)).isoformat()} for n, gb in enumerate(BANDWIDTH)]
    events += [{"id": f"res-{resource}-{n}", "subscription": sub["external_billing_id"],
                "meter": "instance-resources", "timestamp": (starts + timedelta(minutes=15 * n)).isoformat(),
                "properties": {"resource": resource, "amount": amount}}
               for resource, samples in SAMPLES.items() for n, amount in enumerate(samples)]
    sent = api.call("POST", "/usage_events/batch", key, {"events": events})["data"]
    accepted = sum(result["status"] == 201 for result in sent)
    console.print(f"cafe-lune runs a VM since {_utc(sub['starts_at'])} (subscription {sub['external_billing_id']}). "
                  f"CloudNest sends its usage (POST /v1/usage_events/batch, each event with its own id: a retry never "
                  f"counts twice; `aggregator usage send --file`): {len(BANDWIDTH)} bandwidth events "
                  f"({' + '.join(BANDWIDTH)} GB) and the instance's cpu, memory and storage sampled every 15 minutes "
                  f"over 3 hours; {accepted} of {len(events)} accepted. Each timestamp decides the period; none may be "
                  "more than 5 minutes ahead, nor in a closed period.")
    usage = api.call("GET", f"/subscriptions/{sub['id']}/usage", key)
    table = Table("usage", "quantity", "included", "used", "so far")
    for line in usage["data"]:
        table.add_row(line["name"], f"{line['quantity']} {line['unit']}", line["included_units"],
                      f"{line['percent_used']} %" if line["percent_used"] is not None else "—",
                      f"{line['amount']} {usage['currency']}")
    console.print(f"Its usage so far (GET /v1/subscriptions/{{id}}/usage; `aggregator usage show "
                  f"{sub['external_billing_id']} --provider …`), as the close would price it:")
    console.print(table)
    reached = sorted(e["data"]["object"]["threshold"] for e in api.call("GET", "/events?limit=100", admin)["data"]
                     if e["type"] == "usage.threshold_reached")
    console.print(f"The bandwidth reached {', '.join(f'{t} %' for t in reached)} of its 100 GB included: "
                  "usage.threshold_reached was published once for each, as of the event that crossed it (a webhook, "
                  "and the customer's usage-threshold email when the tenant's notification settings send it).")
    later = _on_the_hour(datetime.fromisoformat(period["end_at"]) - timedelta(hours=2))
    api.call("POST", "/test_clock/advance", admin, {"to": later.isoformat()})
    api.call("POST", "/usage_events", key, {"id": "bw-later", "subscription": sub["external_billing_id"],
                                            "meter": "bandwidth", "value": BANDWIDTH_LATER,
                                            "timestamp": later.isoformat()})
    console.print(f"The test clock moves to {later.isoformat()}, two hours before the period ends: a busy stretch "
                  f"brings {BANDWIDTH_LATER} GB more. Once the period closes it takes no more usage (409 "
                  "period_closed).")
    return {"provider": provider_id, "meters": meters, "plan": plan, "subscription": sub, "sent": sent,
            "usage": usage, "thresholds": reached}


def _usage_lines(api: _Client, admin: str, metered: dict, invoices: list[dict], console: Console) -> list[dict]:
    """The metered app's lines at the close: its VM's fee, and one line per usage component with
    its quantity and tiers."""
    lines = []
    for invoice in invoices:
        for line in api.call("GET", f"/invoices/{invoice['id']}", admin)["lines"]:
            if line["provider"] == metered["provider"]:
                lines.append({"invoice": invoice["number"], "description": line["description"],
                              "amount": line["amount"], "currency": invoice["currency"]})
    table = Table("invoice", "line", "amount")
    for line in lines:
        table.add_row(line["invoice"], line["description"], f"{line['amount']} {line['currency']}")
    console.print("At the close the VM's fee was rated for its days, and each usage component of its plan into one "
                  "bill (as of the period's end: its quantity, included units and tiers on the line), invoiced "
                  "with the customer's other bills:")
    console.print(table)
    return lines


def _statements(api: _Client, key: str, catalog: dict) -> list[dict]:
    """Every charge rated from the demo's subscriptions, with its customer."""
    return [{**charge, "customer": sub["customer"], "currency": statement["currency"]}
            for sub in catalog["subscriptions"]
            for statement in api.call("GET", f"/subscriptions/{sub['id']}/statements", key)["data"]
            for charge in statement["charges"]]


def _plan_lines(api: _Client, admin: str, key: str, catalog: dict, invoices: list[dict],
                console: Console) -> list[dict]:
    """The invoice lines rated from the subscriptions at the close, with the platform's fee and the
    provider's profit in each."""
    charges = {charge["bill"]: charge for charge in _statements(api, key, catalog)}
    table = Table("invoice", "customer", "line", "amount", "platform fee", "profit")
    lines = []
    for invoice in sorted(invoices, key=lambda i: i["number"] or ""):
        for line in api.call("GET", f"/invoices/{invoice['id']}", admin)["lines"]:
            charge = charges.get(line["bill"])
            if charge is None:
                continue
            lines.append({"invoice": invoice["number"], "customer": charge["customer"], "description":
                          line["description"], "amount": line["amount"], "platform_fee": charge["platform_fee"],
                          "profit": charge["profit"]})
            table.add_row(invoice["number"], charge["customer"], line["description"],
                          f"{line['amount']} {invoice['currency']}", charge["platform_fee"], charge["profit"])
    console.print("The subscriptions were rated at the close into bills (one per subscription, fee and covered "
                  "period) and invoiced with the providers' other bills: each plan for the days it was active, and "
                  "the coming period in advance for the subscription that continues. Each line's platform fee is "
                  "the parent fee rated the same way; the rest is the provider's profit:")
    console.print(table)
    return lines


def _every(api: _Client, path: str, key: str) -> list[dict]:
    """Every item of a list endpoint, page after page."""
    items: list[dict] = []
    while True:
        after = f"&starting_after={items[-1]['id']}" if items else ""
        page = api.call("GET", f"{path}?limit=100{after}", key)
        items += page["data"]
        if not page["has_more"]:
            return items


def _deliveries(api: _Client, admin: str, receiver: "_Receiver", adapters: Adapters, console: Console) -> dict:
    """Whether everyone was told: every event at the receiver, every email sent. -> the counts."""
    events = len(_every(api, "/events", admin))
    emails = _every(api, "/email_deliveries", admin)
    counts = {"events": events, "webhooks": sum(ok for _, ok in receiver.received), "emails": len(emails),
              "emails_sent": sum(email["status"] == "sent" for email in emails)}
    complete = counts["webhooks"] == events and counts["emails_sent"] == len(emails)
    console.print(f"Delivered: {counts['webhooks']} of {counted(events, 'event', 'events')} as signed webhooks to "
                  f"{receiver.url}, {counts['emails_sent']} of {counted(len(emails), 'email', 'emails')} to "
                  f"{adapters.mailer.test!r}"
                  + (": nothing lost." if complete else "."))
    if not complete:
        raise DemoFailed("Not everyone was told: some events or emails were not delivered (see above).")
    return counts


class _Server(ThreadingHTTPServer):
    """The receiver's server, with room for the sender's burst of connections (its thread pool
    opens up to 32 at once; socketserver's default backlog of 5 resets some)."""

    request_queue_size = 128


class _Receiver:
    """A webhook receiver on 127.0.0.1 (a thread of the demo) that checks each signature as a
    subscriber would (Standard Webhooks: HMAC-SHA256 of "id.timestamp.body" with the secret)."""

    def __init__(self):
        self.received: list[tuple[str, bool]] = []  # (event type, signature verified)
        self.secret = ""  # nosec B105  # no secret yet; set to the endpoint's when it is made
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                expected = signing.signature(receiver.secret, self.headers["webhook-id"],
                                             int(self.headers["webhook-timestamp"]), body)
                verified = expected in self.headers.get("webhook-signature", "").split()
                receiver.received.append((json.loads(body)["type"], verified))
                self.send_response(200 if verified else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/webhooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _before_close(api: _Client, admin: str, receiver: _Receiver, console: Console) -> None:
    console.rule("[bold]Who is told: a webhook endpoint, emails")
    endpoint = api.call("POST", "/webhook_endpoints", admin, {"url": receiver.url, "enabled_events": ["*"],
                                                              "description": "the demo's receiver"})
    receiver.secret = endpoint["secret"]
    console.print(f"Endpoint {endpoint['id']} → {receiver.url}, every event type; signing secret "
                  f"{endpoint['secret'][:12]}… (shown once). Emails go to the customers and to the finance address.")


def _after_close(api: _Client, admin: str, receiver: _Receiver, adapters: Adapters, console: Console) -> dict:
    verified = sum(ok for _, ok in receiver.received)
    console.print(f"Webhooks: {counted(len(receiver.received), 'event', 'events')} POSTed to {receiver.url}, "
                  f"{verified} with a valid Standard Webhooks signature.")
    emails = api.call("GET", "/email_deliveries?limit=100", admin)["data"]
    table = Table("email", "to", "status")
    for email in sorted(emails, key=lambda e: (e["kind"], e["recipient"] or "")):
        table.add_row(email["kind"], email["recipient"] or "(no address)", email["status"])
    console.print(table)
    console.print(f"Each customer's email carries its invoice PDF; finance gets the period's summary. In test mode "
                  f"emails go to {adapters.mailer.test!r}, never to the customers' real addresses.")
    return {"webhooks": list(receiver.received), "emails": emails}


def _get_paid(api: _Client, admin: str, lane: due.Lane, adapters: Adapters, receiver: _Receiver,
              stack: ExitStack, console: Console) -> dict:
    """The charge day and after: cards (when localstripe is installed), a decline and its retry,
    bank transfers; then the payments, emails and webhooks. -> what it made."""
    emails_before = {email["id"] for email in api.call("GET", "/email_deliveries?limit=100", admin)["data"]}
    webhooks_before = len(receiver.received)
    program = localstripe.executable()
    steps = iter(range(10, 100))
    console.rule(f"[bold]{next(steps)}. Getting paid: a card on file, or a bank transfer")
    stripe = stack.enter_context(localstripe.LocalStripe(program)) if program else None
    if stripe is None:
        console.print(f"Card payments need a Stripe-compatible API, and localstripe (a local stand-in for Stripe, "
                      f"installed with the test extras) is not next to {sys.executable}: no card can be charged "
                      f"here, so every invoice is paid by bank transfer.")
    else:
        _give_cards(api, admin, stripe, console)

    console.rule(f"[bold]{next(steps)}. The charge day")
    invoices = _invoices_by_customer(api, admin)
    charge_at = max(datetime.fromisoformat(i["next_charge_at"]) for i in invoices.values() if i["next_charge_at"])
    settings = api.call("GET", "/tenant", admin)
    console.print(f"Each open invoice's charge is due at {settings['charge_hour']:02d}:00 on its due date "
                  f"({settings['timezone']}): {charge_at.isoformat()}. The test clock moves an hour past it.")
    api.call("POST", "/test_clock/advance", admin, {"to": (charge_at + timedelta(hours=1)).isoformat()})
    invoices = _invoices_by_customer(api, admin)
    manual = "no card on file" if stripe else "no Stripe settings"
    for customer, invoice in invoices.items():
        console.print(f"{customer}: {_told(api, admin, invoice, manual)}")
    for customer, invoice in invoices.items():
        if invoice["status"] == "open" and invoice["collection"] == "manual":
            _pay_by_transfer(api, admin, customer, invoice, console)

    if stripe is not None:
        for customer, invoice in _invoices_by_customer(api, admin).items():
            if invoice["collection"] == "retrying":
                console.rule(f"[bold]{next(steps)}. {customer} gives a working card")
                _new_card(api, admin, stripe, customer, invoice, console)

    console.rule(f"[bold]{next(steps)}. Payments, and who was told")
    invoices = _invoices_by_customer(api, admin)
    payments = _payments_table(api, admin, invoices, console)
    delivered = _drain(lane, adapters)
    emails = [e for e in api.call("GET", "/email_deliveries?limit=100", admin)["data"] if e["id"] not in emails_before]
    webhooks = receiver.received[webhooks_before:]
    _notices(emails, webhooks, console)
    return {"by_card": stripe is not None, "invoices": list(invoices.values()), "payments": payments,
            "emails": emails, "webhooks": webhooks, "delivered": delivered}


def _notices(emails: list[dict], webhooks: list[tuple[str, bool]], console: Console) -> None:
    table = Table("email", "to", "status")
    for email in sorted(emails, key=lambda e: (e["kind"], e["recipient"] or "")):
        table.add_row(email["kind"], email["recipient"] or "(no address)", email["status"])
    console.print(table)
    kinds = Counter(email["kind"] for email in emails)
    told = [f"{kinds['receipt']} receipts"] + ([f"{kinds['payment_failed']} payment-failed email (with the next "
                                                "attempt's date)"] if kinds["payment_failed"] else [])
    console.print(f"The customers got {' and '.join(told)}, each about its own invoice.")
    counts = Counter(type_ for type_, _ in webhooks)
    console.print(f"Webhooks: {len(webhooks)} more events POSTed, {sum(ok for _, ok in webhooks)} with a valid "
                  f"signature: " + ", ".join(f"{type_} ×{n}" for type_, n in sorted(counts.items())) + ".")


def _give_cards(api: _Client, admin: str, stripe: localstripe.LocalStripe, console: Console) -> None:
    fake_key = "sk_test_demo4242"  # localstripe accepts any key: no real Stripe account
    api.call("PATCH", "/tenant", admin, {"stripe_secret_key": fake_key, "stripe_api_base": stripe.url})
    hint = api.call("GET", "/tenant", admin)["stripe"]["secret_key"]
    console.print(f"Card payments need a Stripe-compatible API: localstripe, a local stand-in for Stripe, runs on "
                  f"{stripe.url} for this demo (a process of its own, stopped at the end). The tenant's test-mode "
                  f"Stripe settings point at it (PATCH /v1/tenant; the secret key is stored encrypted and shown "
                  f"as {hint}).")
    table = Table("customer", "card on file", "what it does")
    for external_id, _name, _currency in CUSTOMERS:
        if external_id not in CARDS:
            table.add_row(external_id, "none", "pays by bank transfer")
            continue
        number, does = CARDS[external_id]
        stripe_customer, method = stripe.customer_with_card(number, f"accounts@{external_id}.example")
        api.call("PATCH", f"/customers/{external_id}", admin,
                 {"stripe_customer_id": stripe_customer, "stripe_payment_method": method})
        table.add_row(external_id, f"{number[:4]} … {number[-4:]} ({method})", does)
    console.print(table)
    console.print("Each card was saved at Stripe by the customer; the platform keeps only the Stripe ids "
                  "(PATCH /v1/customers/{id}: stripe_customer_id, stripe_payment_method).")


def _invoices_by_customer(api: _Client, admin: str) -> dict[str, dict]:
    invoices = api.call("GET", "/invoices?limit=100", admin)["data"]
    return {i["customer_external_id"]: i for i in sorted(invoices, key=lambda i: i["number"] or "")}


def _told(api: _Client, admin: str, invoice: dict, manual: str = "no card on file") -> str:
    """How an invoice stands, in words (`manual`: why no gateway charges it)."""
    head = f"invoice {invoice['number']} ({invoice['total']} {invoice['currency']}) is {invoice['status']}"
    if invoice["status"] == "paid":
        payment = next(p for p in api.call("GET", f"/invoices/{invoice['id']}/payments", admin)["data"]
                       if p["status"] == "succeeded")
        by = "card" if payment["gateway"] == "stripe" else payment["method"].replace("_", " ")
        return f"{head}, by {by} (attempt {payment['attempt']})" if payment["attempt"] else f"{head}, by {by}"
    if invoice["collection"] == "retrying":
        [failed] = api.call("GET", f"/invoices/{invoice['id']}/payments?limit=1", admin)["data"]
        why = failed["decline_code"] or failed["failure_code"]
        return (f"{head}: attempt {failed['attempt']} declined ({failed['failure_message'] or why}); "
                f"retried at {invoice['next_charge_at']} (collection: retrying)")
    if invoice["collection"] == "manual":
        return f"{head}: {manual}, it waits for a bank transfer (collection: manual)"
    return f"{head} (collection: {invoice['collection']}, next charge at {invoice['next_charge_at']})"


def _pay_by_transfer(api: _Client, admin: str, customer: str, invoice: dict, console: Console) -> None:
    received_on = api.call("GET", "/test_clock", admin)["now"][:10]
    body = {"amount": invoice["amount_remaining"], "method": "bank_transfer",
            "reference": invoice["number"], "received_on": received_on}
    paid = api.call("POST", f"/invoices/{invoice['id']}/payments", admin, body)["invoice"]
    console.print(f"{body['amount']} {invoice['currency']} from {customer}, reference {invoice['number']}, arrives on "
                  f"the platform's bank account on {received_on}; the platform records it (POST "
                  f"/v1/invoices/{{id}}/payments, method bank_transfer): invoice {paid['number']} is {paid['status']}.")


def _new_card(api: _Client, admin: str, stripe: localstripe.LocalStripe, customer: str, invoice: dict,
              console: Console) -> None:
    stripe_customer = api.call("GET", f"/customers/{customer}", admin)["stripe_customer_id"]
    method = stripe.attach_card(stripe_customer, localstripe.CARD_OK)
    api.call("PATCH", f"/customers/{customer}", admin, {"stripe_payment_method": method})
    after = api.call("GET", f"/invoices/{invoice['id']}", admin)
    console.print(f"{customer} adds a card ending 4242 ({method}), made its default (PATCH /v1/customers/{customer}).")
    if after["collection"] == "retrying":
        days = api.call("GET", "/tenant", admin)["retry_days"]
        console.print(f"Its invoice keeps its retry schedule (collection: retrying): a declined charge is retried "
                      f"{', '.join(map(str, days))} days after the first failure, now with the "
                      f"new card; only an invoice that waits "
                      f"for a new payment method (a hard decline, an authentication, retries run out) is charged "
                      f"at once. Next attempt: {after['next_charge_at']}.")
    else:
        console.print(f"Its invoice is put up for a charge at once (collection: {after['collection']}, next charge "
                      f"at {after['next_charge_at']}).")
    to = max(datetime.fromisoformat(after["next_charge_at"]),
             datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"])) + timedelta(hours=1)
    console.print(f"The test clock moves to {to.isoformat()}.")
    api.call("POST", "/test_clock/advance", admin, {"to": to.isoformat()})
    console.print(f"{customer}: {_told(api, admin, api.call('GET', '/invoices/' + invoice['id'], admin))}.")


def _payments_table(api: _Client, admin: str, invoices: dict[str, dict], console: Console) -> list[dict]:
    table = Table("invoice", "customer", "method", "attempt", "status", "amount", "decline / reference")
    payments = []
    for customer, invoice in invoices.items():
        for payment in reversed(api.call("GET", f"/invoices/{invoice['id']}/payments", admin)["data"]):
            payments.append(payment)
            method = f"card ({payment['gateway']})" if payment["gateway"] == "stripe" else payment["method"]
            why = payment["decline_code"] or payment["failure_code"] or payment["reference"] or ""
            table.add_row(invoice["number"], customer, method, str(payment["attempt"] or "-"), payment["status"],
                          f"{payment['amount']} {payment['currency']}", why)
    console.print(table)
    return payments


def _pay_providers(api: _Client, admin: str, lane: due.Lane, adapters: Adapters, out: Path,
                   console: Console) -> dict:
    """The payout day: one payout per provider and currency from the money collected, finance's
    review, bank transfers recorded, the report written beside the invoices, the books checked."""
    settings = api.call("GET", "/tenant", admin)
    now = datetime.fromisoformat(api.call("GET", "/test_clock", admin)["now"])
    console.rule(f"[bold]Paying the providers: the payout day (the {settings['payout_day']}th)")
    target = now + timedelta(days=12)
    console.print(f"What was collected is gathered on the payout day, at midnight in {settings['timezone']}, into one "
                  f"payout per provider and currency: revenue-share bills less the platform's fee, pass-through "
                  f"bills in full, tax kept by the platform. The test clock moves to {target.isoformat()}.")
    api.call("POST", "/test_clock/advance", admin, {"to": target.isoformat()})
    payouts = api.call("GET", "/payouts?limit=100", admin)["data"]
    if not payouts:
        raise DemoFailed("The payout day built no payouts.")
    period = payouts[0]["period"]
    names = {p["id"]: p["name"] for p in api.call("GET", "/providers?limit=100", admin)["data"]}
    console.print(f"{counted(len(payouts), 'payout awaits', 'payouts await')} finance's review "
                  f"(status pending_review); finance was told by email. "
                  f"No provider has a Stripe Connect account here (localstripe has no Connect), so each is paid by "
                  f"bank transfer, which finance records.")
    approved = api.call("POST", "/payouts/approve", admin, {"period": period})["data"]
    console.print(f"Finance approves the period's payouts at once (POST /v1/payouts/approve): "
                  f"{len(approved)} approved.")
    for payout in approved:
        if payout["method"] == "bank_transfer":
            api.call("POST", f"/payouts/{payout['id']}/mark_paid", admin, {"reference": f"PAYOUT-{payout['id'][-6:]}"})
    payouts = api.call("GET", "/payouts?limit=100", admin)["data"]
    table = Table("provider", "currency", "charges", "credits", "= gross", "platform fee", "clawback", "= net",
                  "paid", "status")
    for p in sorted(payouts, key=lambda p: (names.get(p["provider"], ""), p["currency"])):
        table.add_row(names.get(p["provider"], p["provider"]), p["currency"], p["charges"], p["credits"], p["gross"],
                      money.format_amount(-money.parse_amount(p["fee"], p["currency"]), p["currency"]),
                      p["clawback"], p["net"],
                      p["amount"], p["status"])
    console.print(table)
    report_pdf = out / f"payout-report-{period}.pdf"
    report_pdf.write_bytes(api.call("GET", f"/reports/payouts?period={period}&format=pdf", admin, raw=True))
    report_csv = out / f"payout-report-{period}.csv"
    report_csv.write_bytes(api.call("GET", f"/reports/payouts?period={period}&format=csv", admin, raw=True))
    report = api.call("GET", f"/reports/payouts?period={period}", admin)
    balanced = all(r["balanced"] for r in report["reconciliation"])
    console.print(f"The payout report (per provider: charges + credits = gross, less the fee and clawback = net; "
                  f"with the reconciliation: money in = collected + converted in, money out = tax + provider payouts "
                  f"+ platform revenue + credits + FX + converted out) is in {report_pdf} and {report_csv.name}; "
                  f"reconciled: {'yes' if balanced else 'NO'}.")
    plan_revenue = [row for row in report["rows"] if money.parse_amount(row["plan_gross"], row["currency"])]
    if plan_revenue:
        console.print("Of those payouts, what the providers' plans brought in (the report's plan revenue): the "
                      "platform keeps the parent plans' fees, the provider its profit, in its net.")
        table = Table("provider", "currency", "plans billed", "parent fees (platform)", "profit (provider)")
        for row in plan_revenue:
            table.add_row(row["provider_name"], row["currency"], row["plan_gross"], row["plan_fee"],
                          row["plan_profit"])
        console.print(table)
    per_currency: Counter = Counter()
    for account in api.call("GET", "/ledger/accounts", admin)["data"]:
        per_currency[account["currency"]] += money.parse_amount(account["balance"], account["currency"])
    console.print("The ledger: every movement a balanced journal; each currency's accounts add up to "
                  + ", ".join(f"{money.format_amount(v, c)} {c}" for c, v in sorted(per_currency.items())) + ".")
    books = out / "ledger.beancount"
    books.write_bytes(api.call("GET", "/ledger/export?format=beancount", admin, raw=True))
    console.print(f"The books for an accountant's tools (GET /v1/ledger/export, Beancount; format=csv also): {books}.")
    _drain(lane, adapters)
    return {"payouts": payouts, "payout_report": report_pdf, "reconciled": balanced,
            "ledger_sums": dict(per_currency), "plan_revenue": plan_revenue, "books": books}


def _credit_note(api: _Client, admin: str, lane: due.Lane, adapters: Adapters, out: Path,
                 console: Console) -> dict:
    """A paid invoice corrected, as an issued invoice is: a credit note refunding part of it."""
    console.rule("[bold]A correction: a credit note, not a void")
    paid = [i for i in api.call("GET", "/invoices?limit=100", admin)["data"] if i["status"] == "paid"]
    invoice = sorted(paid, key=lambda i: i["number"])[0]
    note = api.call("POST", f"/invoices/{invoice['id']}/credit_notes", admin,
                    {"amount": "5.00", "reason": "product_unsatisfactory", "memo": "Two days of downtime"},
                    **{"Idempotency-Key": f"demo-credit-{invoice['id']}"})
    pdf = out / f"{note['number']}.pdf"
    pdf.write_bytes(api.call("GET", f"/credit_notes/{note['id']}/pdf", admin, raw=True))
    console.print(f"Invoice {invoice['number']} is paid and issued: it is never edited. Credit note {note['number']} "
                  f"takes {note['total']} {note['currency']} back (tax {note['tax']}), refunded to what paid it "
                  f"({note['refund']}); the providers' shares come off their next payouts. PDF: {pdf.name}.")
    _drain(lane, adapters)
    return {**note, "pdf": pdf}


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=110)  # a log or a pipe: wide enough for the tables


#: Settings the demo never takes from the environment: they would point it at the server's own
#: database, files or keys (its folder holds its own).
_SERVERS_OWN = ("AGGREGATOR_DATABASE_URL", "AGGREGATOR_STORAGE_DIR", "AGGREGATOR_SECRET_KEYS")


def demo_settings(out: Path, database_url: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """The demo's own settings: its database (SQLite in `out` unless `database_url`), storage,
    mail and secret key under `out`, so that a server running beside it (bin/start, on var/)
    neither takes its work nor sees its tenant. The rest (SMTP, metrics) as the environment says."""
    env = dict(os.environ if env is None else env)
    server_url = Settings.from_env(env).database_url
    own = {name: value for name, value in env.items() if name not in _SERVERS_OWN}
    settings = Settings.from_env({**own, "AGGREGATOR_VAR_DIR": str(out)})
    if database_url:
        settings = dataclasses.replace(settings, database_url=database_url)
    if settings.database_url == server_url:
        raise DemoFailed(f"The demo needs a database of its own, not the server's ({server_url}): its worker "
                         "would take the demo's work. Give another --database-url, or none.")
    return settings


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The demo's own folder: its database, files, PDFs and email sink "
                   "[default: var/demo, in AGGREGATOR_VAR_DIR if set].")
@click.option("--database-url", envvar="AGGREGATOR_DEMO_DATABASE_URL", default=None, metavar="URL",
              help="The demo's own database (or AGGREGATOR_DEMO_DATABASE_URL) [default: SQLite in its folder]; "
                   "never the server's.")
def demo(out: Path | None, database_url: str | None) -> None:
    """Run one month of consolidated billing on a new test-mode tenant and show what happened,
    in a database and folder of the demo's own (a server running beside it is not disturbed)."""
    import flask_migrate

    from . import create_app

    out = out or var_dir() / "demo"
    settings = demo_settings(out, database_url)
    app = create_app({"SETTINGS": settings})
    console = _console()
    with app.app_context():
        flask_migrate.upgrade()  # the demo's database is created here, or brought up to date
        adapters = app.extensions["aggregator.adapters"]
        mailer = adapters.mailer
        if not os.environ.get("AGGREGATOR_TEST_SMTP_URL"):  # an SMTP sink the operator named, else files here
            mailer = dataclasses.replace(mailer, test=FileSink(out / "mail"))
        # This process is the demo's own, and its operator: its API calls and its queues use the
        # demo's adapters, which send webhooks to its receiver and charge through its localstripe
        # (both on 127.0.0.1: the tenant's test-mode stripe_api_base is allowed here, and only here).
        payments = StripeGateways(adapters.vault, tenant_api_base=True, allow_private=True)
        app.extensions["aggregator.adapters"] = adapters.replacing(webhooks=WebhookSender(True), mailer=mailer,
                                                                   payments=payments)
        console.print(f"The demo keeps its own database ({_shown(settings.database_url)}), files and emails in "
                      f"{out}/: a server running beside it (bin/start) neither sees nor works on them.")
        run_demo(app, app.extensions["aggregator.adapters"], out, console)


def _shown(url: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(url).render_as_string(hide_password=True)
