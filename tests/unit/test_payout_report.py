"""The payout report's figures, without a database: rows per provider and currency, totals, and a
reconciliation that balances exactly for any invoice and any sequence of payments and refunds."""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.payouts.report_service import (
    OutstandingInvoice,
    PayoutFigures,
    PayoutReport,
    currency_totals,
    provider_rows,
    reconcile,
    report_csv,
)
from aggregator.revenue import shares
from tests.support.revenue import bill, invoices, parts_of


def figures(id: str, provider: str, status: str, net: int, currency: str = "AUD", bills: int = 1) -> PayoutFigures:
    return PayoutFigures(id=id, provider_id=provider, currency=currency, status=status, line_count=bills, gross=net,
                         revenue_share_gross=net, pass_through_gross=0, fee=0, credits=0, clawback=0,
                         brought_forward=0, net=net, amount=max(net, 0))


def test_a_providers_payouts_of_a_period_make_one_row_per_currency_with_mixed_status_when_they_differ():
    rows = provider_rows([figures("po_2", "prov_a", "approved", 500), figures("po_1", "prov_a", "paid", 700),
                          figures("po_3", "prov_b", "canceled", -100), figures("po_4", "prov_a", "paid", 9, "USD")],
                         {"prov_a": "Zeta App", "prov_b": "Alpha App"})
    assert [(r.currency, r.provider_name, r.net, r.amount, r.bills, r.status, r.payout_ids) for r in rows] == [
        ("AUD", "Alpha App", -100, 0, 1, "canceled", ("po_3",)),
        ("AUD", "Zeta App", 1200, 1200, 2, "mixed", ("po_1", "po_2")),
        ("USD", "Zeta App", 9, 9, 1, "paid", ("po_4",))]
    totals = currency_totals(rows)
    assert [(t.currency, t.providers, t.bills, t.net, t.amount) for t in totals] == [
        ("AUD", 2, 3, 1100, 1200), ("USD", 1, 1, 9, 9)]


def test_a_converted_bill_leaves_the_invoice_currency_and_the_rounding_is_the_fx_difference():
    # a USD 10.00 bill (30% share) on an AUD invoice at 1.5: 15.00 AUD; 10.00 AUD collected of it
    invoice = parts_of([bill("b1", 1000, "USD")], {"b1": (True, Decimal("0.30"))}, "AUD",
                       fx={("USD", "AUD"): Decimal("1.5")})
    lines = shares.payment_lines(invoice, 0, 1000)
    (usd_line,) = lines.bills
    assert (usd_line.amount, usd_line.fee, usd_line.net) == (667, 200, 467)  # 2/3 of 10.00 USD
    aud, usd = reconcile([(invoice, lines)], {"USD": 467})
    assert (aud.currency, aud.collected, aud.converted_out, aud.fx_difference) == ("AUD", 1000, 1001, -1)
    assert (usd.currency, usd.converted_in, usd.provider_payouts, usd.platform_revenue) == ("USD", 667, 467, 200)
    assert aud.balanced and usd.balanced


def test_the_reconciliation_is_not_balanced_when_the_payouts_disagree_with_the_money():
    invoice = parts_of([bill("b1", 1000, "AUD")], {"b1": (False, Decimal(0))}, "AUD")
    (aud,) = reconcile([(invoice, shares.payment_lines(invoice, 0, 1000))], {"AUD": 999})
    assert aud.provider_payouts == 1000 and aud.payouts_net == 999 and not aud.balanced


def test_open_and_uncollectible_invoices_are_listed_with_what_is_still_due():
    outstanding = [("open", OutstandingInvoice("inv_1", "INV-1", "One", "AUD", 3300)),
                   ("uncollectible", OutstandingInvoice("inv_2", "INV-2", "Two", "AUD", 4000)),
                   ("open", OutstandingInvoice("inv_3", None, "cust-3", "EUR", 5))]
    aud, eur = reconcile([], {}, outstanding)
    assert (aud.uncollected, aud.uncollectible) == (3300, 4000)
    assert [i.number for i in aud.uncollectible_invoices] == ["INV-2"]
    assert (eur.uncollected, eur.collected, eur.balanced) == (5, 0, True)


@settings(max_examples=150, deadline=None)
@given(invoice=invoices(), data=st.data())
def test_every_currency_balances_exactly_for_any_payments_and_refunds(invoice, data):
    """collected + converted_in == tax + provider nets + fees + credits + fx + converted_out, per
    currency, whatever was collected and given back in whatever steps (a settled invoice too)."""
    steps, collected = [], 0
    if not invoice.total:
        steps.append((invoice, shares.lines_of_source(invoice, 0, 0, settled=True)))
    for target in data.draw(st.lists(st.integers(0, invoice.total), max_size=4)) + [invoice.total]:
        steps.append((invoice, shares.lines_of_source(invoice, collected, target - collected)))
        collected = target
    nets: dict[str, int] = {}
    for _, lines in steps:
        for line in lines.bills:
            nets[line.currency] = nets.get(line.currency, 0) + line.net
    for reconciliation in reconcile(steps, nets):
        assert reconciliation.balanced, reconciliation


def test_the_csv_has_a_line_per_provider_and_a_total_per_currency_in_decimal_strings():
    rows = provider_rows([figures("po_1", "prov_a", "approved", 8600, bills=5),
                          figures("po_2", "prov_b", "canceled", 2400)],
                         {"prov_a": "Accounting, Inc.", "prov_b": "SMS"})
    report = PayoutReport("ten_1", False, "Acme", date(2026, 10, 25), date(2026, 11, 24), rows,
                          currency_totals(rows), [])
    lines = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert [(line["provider_name"], line["bills"], line["net"], line["amount"], line["payout_ids"])
            for line in lines] == [
        ("Accounting, Inc.", "5", "86.00", "86.00", "po_1"), ("SMS", "1", "24.00", "24.00", "po_2"),
        ("2 providers", "6", "110.00", "110.00", "")]


def test_the_charts_negative_bars_go_left_of_zero_in_red_and_positive_ones_right_in_blue(caplog):
    """WeasyPrint's SVG ignores CSS fill and stroke: the colors are attributes, and it warns of nothing."""
    import pypdf

    from aggregator.consolidate.render import WeasyPrintRenderer
    from aggregator.payouts.report_service import TEMPLATE, report_document

    payouts = [figures("po_1", "prov_a", "paid", 4410), figures("po_2", "prov_b", "paid", -800)]
    rows = provider_rows(payouts, {"prov_a": "Accounting App", "prov_b": "SMS Gateway"})
    report = PayoutReport("ten_1", False, "Market", date(2026, 10, 25), date(2026, 11, 24), rows,
                          currency_totals(rows), reconcile([], {"AUD": 3610}), "en_AU")
    html = WeasyPrintRenderer().html(TEMPLATE, report_document(report))
    bars = {cls: line for line in html.split("<rect")[1:] for cls in ("positive", "negative") if cls in line}
    assert 'fill="#2f6690"' in bars["positive"] and 'fill="#c0392b"' in bars["negative"]
    x = lambda bar: float(bar.split('x="')[1].split('"')[0])  # noqa: E731
    width = lambda bar: float(bar.split('width="')[1].split('"')[0])  # noqa: E731
    assert x(bars["negative"]) + width(bars["negative"]) == x(bars["positive"])  # both meet at zero
    caplog.set_level("WARNING", logger="weasyprint")
    pdf = pypdf.PdfReader(io.BytesIO(WeasyPrintRenderer().render(TEMPLATE, report_document(report))))
    assert [r.getMessage() for r in caplog.records if r.name.startswith("weasyprint")] == []
    content = pdf.pages[0].get_contents().get_data().decode("latin-1")
    assert "0.184314 0.4 0.564706 rg" in content and "0.752941 0.223529 0.168627 rg" in content
