"""`aggregator demo` tells a month of billing on a new test-mode tenant: it must keep working."""
from __future__ import annotations

import io
import subprocess  # nosec B404  # runs bean-check, installed with the tests
import sys
from datetime import date, datetime, timezone
from pathlib import Path

import facturx
import pytest
from babel.dates import format_date
from pypdf import PdfReader
from rich.console import Console

from aggregator.demo import run_demo
from aggregator.payments.stripe import localstripe


def _run(app, tmp_path) -> tuple[dict, str]:
    output = io.StringIO()
    with app.app_context():
        made = run_demo(app, app.extensions["aggregator.adapters"], tmp_path, Console(file=output, width=120))
    return made, " ".join(output.getvalue().split())  # the console's lines rejoined


def _payments(made) -> list[tuple]:
    return sorted((p["gateway"], p["method"], p["attempt"] or 0, p["status"], p["amount"], p["currency"])
                  for p in made["charging"]["payments"])


@pytest.fixture(scope="module")
def demo_with_cards(app, tmp_path_factory):
    """The demo where localstripe is installed next to Python (as for the `localstripe` fixture):
    it starts one of its own."""
    assert localstripe.executable(), "localstripe is installed with the test extras"
    return _run(app, tmp_path_factory.mktemp("demo"))


def test_the_demo_closes_a_period_and_writes_each_customers_invoice(demo_with_cards):
    made, text = demo_with_cards
    assert "Demo Marketplace Pty Ltd, AU: its invoices are titled \"Tax invoice\", with its ABN 83914571673" in text
    assert "cafe-lune), invoiced in EUR; tax id FR40303265045" in text
    assert "Closed period" in text and "One consolidated invoice per customer" in text
    assert sorted((i["currency"], i["total"], i["status"]) for i in made["invoices"]) == [
        ("EUR", "118.50", "open"), ("USD", "430.85", "open"), ("USD", "45.77", "open")]
    assert len(made["pdfs"]) == 3
    for pdf in made["pdfs"]:
        assert pdf.stem in PdfReader(pdf).pages[0].extract_text()  # the file is the invoice it is named after
    assert made["events"]["period.closed"] == 1 and made["events"]["invoice.pdf_ready"] == 3
    assert len(made["webhooks"]) == sum(made["events"].values()) and all(ok for _, ok in made["webhooks"])
    assert sorted((e["kind"], e["status"]) for e in made["emails"]) == [
        ("invoice", "sent")] * 3 + [("period_summary", "sent")] + [("usage_threshold", "sent")] * 3  # 80/90/100 %


def test_the_demo_pays_by_card_and_by_transfer_and_retries_a_declined_card(demo_with_cards):
    made, text = demo_with_cards
    charging = made["charging"]
    assert charging["by_card"] and "localstripe" in text
    assert {i["customer_external_id"]: i["status"] for i in charging["invoices"]} == {
        "bakery-42": "paid", "studio-9": "paid", "cafe-lune": "paid"}
    assert _payments(made) == [
        ("manual", "bank_transfer", 0, "succeeded", "118.50", "EUR"),
        ("stripe", "card", 1, "failed", "45.77", "USD"),
        ("stripe", "card", 1, "succeeded", "430.85", "USD"),
        ("stripe", "card", 2, "succeeded", "45.77", "USD")]
    assert "card_declined" in text and "retried at 2026-12-04T22:00:00+00:00" in text  # the invoice's next_charge_at
    assert sorted((e["kind"], e["recipient"], e["status"]) for e in charging["emails"]) == [
        ("payment_failed", "accounts@studio-9.example", "sent"),
        ("receipt", "accounts@bakery-42.example", "sent"),
        ("receipt", "accounts@cafe-lune.example", "sent"),
        ("receipt", "accounts@studio-9.example", "sent")]
    types = sorted(type_ for type_, _ in charging["webhooks"])
    assert all(ok for _, ok in charging["webhooks"])
    assert types.count("invoice.paid") == 3 and types.count("invoice.payment_failed") == 1


def test_the_demo_resells_a_parent_plan_and_bills_its_subscriptions_by_the_day(demo_with_cards):
    """A parent plan granted to Ledgerly, its two plans on it with their profit; bakery-42 backdated
    to its account's opening (2026-11-10, Sydney) and moved up on 2026-11-20; studio-9 from
    2026-11-15 to its cancellation on 2026-11-20: a period of 31 days."""
    made, text = demo_with_cards
    catalog = made["catalog"]
    assert [(p["code"], p["parent_plan"], p["fees"][0]["price"], p["fees"][0]["profit"]) for p in catalog["plans"]] \
        == [("cloud-hosting", None, "20.00", None), ("ledgerly-cloud", "cloud-hosting", "35.00", "15.00"),
            ("ledgerly-cloud-plus", "cloud-hosting", "50.00", "30.00")]
    assert [(s["customer"], s["status"], [p["plan"] for p in s["phases"]]) for s in catalog["subscriptions"]] == [
        ("bakery-42", "active", ["ledgerly-cloud", "ledgerly-cloud-plus"]),
        ("studio-9", "canceled", ["ledgerly-cloud"])]
    assert catalog["subscriptions"][0]["starts_at"] == "2026-11-10T12:00:00+00:00"  # before it was recorded
    assert "backdated" in text and "PATCH /v1/subscriptions" in text and "DELETE /v1/subscriptions" in text
    assert [(line["customer"], line["description"], line["amount"], line["platform_fee"], line["profit"])
            for line in catalog["lines"]] == [
        ("bakery-42", "Hosting — Ledgerly Cloud, 10 of 31 days", "11.29", "6.45", "4.84"),
        ("bakery-42", "Hosting — Ledgerly Cloud Plus, 5 of 31 days", "8.06", "3.23", "4.83"),
        ("bakery-42", "Hosting — Ledgerly Cloud Plus", "50.00", "20.00", "30.00"),  # the next period, in advance
        ("studio-9", "Hosting — Ledgerly Cloud, 6 of 31 days", "6.77", "3.87", "2.90")]
    upcoming = catalog["upcoming"]  # before the close, what it would invoice: what it did
    assert (upcoming["total"], upcoming["currency"]) == ("430.85", "USD")
    assert sum(line["source"] == "subscription" for line in upcoming["lines"]) == 3
    bakery = next(pdf for pdf in made["pdfs"] if pdf.stem == catalog["lines"][0]["invoice"])
    bakery_text = " ".join(" ".join(page.extract_text() for page in PdfReader(bakery).pages).split())
    assert "Hosting — Ledgerly Cloud, 10 of 31 days" in bakery_text
    assert "Billed in advance Prorated: 10 of 31 days" in bakery_text  # the plan fee's rating, in words
    start = date.fromisoformat(made["invoices"][0]["period"]["start"])
    period = f"{format_date(start, 'medium', locale='en_AU')} – "  # the tenant's locale, from its country
    assert "Ledgerly Pro plan " + period in bakery_text  # a bill sent with its service period shows it
    assert made["events"]["plan.created"] == 4 and made["events"]["subscription.canceled"] == 1
    # Ledgerly's USD payout: the platform fee is its 30 % of 63.00 in bills plus the parent fees
    ledgerly = catalog["plans"][1]["owner"]
    [payout] = [p for p in made["payouts"] if p["provider"] == ledgerly and p["currency"] == "USD"]
    assert (payout["gross"], payout["fee"]) == ("139.12", "52.45")
    cloudnest = made["metered"]["provider"]  # its VM's fee, without a parent: its revenue share (10 %)
    assert sorted((r["provider"], r["currency"], r["plan_gross"], r["plan_fee"], r["plan_profit"])
                  for r in made["plan_revenue"]) == sorted([(ledgerly, "USD", "76.12", "33.55", "42.57"),
                                                            (cloudnest, "EUR", "64.30", "6.43", "57.87")])
    assert "what the providers' plans brought in" in text


def test_near_a_periods_end_the_demo_starts_with_the_next_period(app, tmp_path, monkeypatch, clock):
    clock.set(datetime(2026, 11, 20, 12, tzinfo=timezone.utc))  # 4 days left: no room for the plans' story
    monkeypatch.setattr(localstripe, "executable", lambda: None)
    made, text = _run(app, tmp_path)
    assert "the story starts with the next one" in text
    assert [i["period"]["start"] for i in made["invoices"]] == ["2026-11-25"] * 3
    assert [line["description"] for line in made["catalog"]["lines"]] == [
        "Hosting — Ledgerly Cloud, 20 of 30 days", "Hosting — Ledgerly Cloud Plus, 10 of 30 days",
        "Hosting — Ledgerly Cloud Plus", "Hosting — Ledgerly Cloud, 10 of 30 days"]
    assert [i["status"] for i in made["charging"]["invoices"]] == ["paid"] * 3


def test_without_localstripe_the_demo_pays_every_invoice_by_bank_transfer(app, tmp_path, monkeypatch):
    monkeypatch.setattr(localstripe, "executable", lambda: None)
    made, text = _run(app, tmp_path)
    charging = made["charging"]
    assert not charging["by_card"] and "every invoice is paid by bank transfer" in text
    assert [i["status"] for i in charging["invoices"]] == ["paid"] * 3
    assert sorted((p["method"], p["status"]) for p in charging["payments"]) == [("bank_transfer", "succeeded")] * 3
    assert sorted(e["kind"] for e in charging["emails"]) == ["receipt"] * 3


def test_the_demos_localstripe_is_stopped_when_the_story_fails(app, tmp_path, monkeypatch):
    import aggregator.demo as demo

    started = []

    class Recorded(localstripe.LocalStripe):
        def __init__(self, program):
            super().__init__(program)
            started.append(self)

    def charge_day_fails(*args):
        raise demo.DemoFailed("the charge day went wrong")

    monkeypatch.setattr(localstripe, "LocalStripe", Recorded)
    monkeypatch.setattr(demo, "_invoices_by_customer", charge_day_fails)
    with pytest.raises(demo.DemoFailed):
        _run(app, tmp_path)
    [server] = started
    assert server.process.poll() is not None  # the process was ended


def test_the_demo_pays_the_providers_and_writes_the_report_beside_the_invoices(demo_with_cards):
    made, text = demo_with_cards
    assert "Paying the providers" in text and made["reconciled"]
    assert {p["status"] for p in made["payouts"]} == {"paid"} and len(made["payouts"]) >= 3
    report = made["payout_report"]
    assert report.parent == made["pdfs"][0].parent
    report_text = "\n".join(page.extract_text() for page in PdfReader(report).pages)
    assert "Ledgerly" in report_text and "Reconciliation" in report_text
    assert set(made["ledger_sums"].values()) == {0}  # each currency's books balance
    assert "charges + credits = gross" in text and "= gross" in text
    # the books of the whole story, for an accountant's tools: bean-check accepts them
    books = made["books"]
    assert books.parent == report.parent and books.read_text().count(" open ") > 3
    checked = subprocess.run([str(Path(sys.executable).with_name("bean-check")), str(books)],  # nosec B603
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_demo_meters_a_vm_with_included_bandwidth_thresholds_and_hourly_maxima(demo_with_cards):
    """CloudNest's VM for cafe-lune: PLATFORMA's bandwidth (100 GB included, then 0.05 and 0.03 a
    GB) crossing 80, 90 and 100 %; Omnistrate's instance resources, the hourly maximum of samples
    every 15 minutes, priced per resource; the usage so far, then the lines at the close."""
    made, text = demo_with_cards
    metered = made["metered"]
    assert [m["code"] for m in metered["meters"]] == ["bandwidth", "instance-resources"]
    assert [r["status"] for r in metered["sent"]] == [201] * 39
    assert metered["thresholds"] == [80, 90, 100]
    assert [(u["name"], u["quantity"], u["percent_used"], u["amount"]) for u in metered["usage"]["data"]] == [
        ("Bandwidth", "105.5", "105.5", "0.28"), ("CPU", "16", None, "0.64"), ("Memory", "64", None, "0.32"),
        ("Storage", "390", None, "0.08")]
    # in the tenant's locale, en_AU (from its country): CLDR writes euros "EUR" there
    assert [(line["description"], line["amount"]) for line in metered["lines"]] == [
        ("Cloud VM — Cloud VM, 5 of 31 days", "8.06"),
        ("Bandwidth — 1,340 GB: 100 GB included, 900 × EUR0.05, 340 × EUR0.03 = EUR55.20", "55.20"),
        ("CPU — 16 unit-hours × EUR0.04 = EUR0.64", "0.64"), ("Memory — 64 unit-hours × EUR0.005 = EUR0.32", "0.32"),
        ("Storage — 390 unit-hours × EUR0.0002 = EUR0.08", "0.08")]
    assert {line["invoice"] for line in metered["lines"]} == {made["charging"]["invoices"][2]["number"]}
    assert "usage.threshold_reached" in text and "GET /v1/subscriptions/{id}/usage" in text


def test_each_demo_invoice_is_an_einvoice_too(demo_with_cards):
    from tests.support.einvoices import assert_valid_einvoice

    made, text = demo_with_cards
    assert "Each PDF is also an e-invoice" in text
    for pdf in made["pdfs"]:
        xml = pdf.with_suffix(".xml").read_bytes()  # written beside it from GET /v1/invoices/{id}/einvoice
        # the XML in the PDF, valid against the Factur-X EN 16931 XSD and (where Saxon is installed)
        # EN 16931's rules: the demo's tenant and customers have what they ask for
        assert facturx.get_facturx_xml_from_pdf(pdf.read_bytes(), check_xsd=True) == ("factur-x.xml", xml)
        assert_valid_einvoice(xml)


def test_the_demo_corrects_a_paid_invoice_by_a_credit_note(demo_with_cards):
    made, text = demo_with_cards
    note = made["credit_note"]
    assert "A correction: a credit note, not a void" in text and note["number"] in text
    assert note["number"].endswith("-CN-2026-000001") and note["total"] == "5.00" and note["refund"]
    pdf_text = "\n".join(page.extract_text() for page in PdfReader(note["pdf"]).pages)
    assert "Credit note" in pdf_text and "Two days of downtime" in pdf_text
