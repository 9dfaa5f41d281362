"""What the payout emails and the provider's statement say, from plain values: amounts and days in
the tenant's locale, the method with its reference, and a statement of very many lines kept to
its first STATEMENT_LINES and a sum of the rest."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pypdf

from aggregator.consolidate.render import WeasyPrintRenderer
from aggregator.mail import messages
from aggregator.mail.payout_notices import CurrencyTotal, PayoutReview, ProviderPayout
from aggregator.payouts import statement
from aggregator.payouts.service import PayoutLine


def _settings(**overrides):
    values = {"name": "Market", "legal_name": "Market Pty Ltd", "locale": "en", "timezone": "Australia/Sydney",
              "email_reply_to": None, "livemode": False}
    return SimpleNamespace(**{**values, **overrides})


RUN = SimpleNamespace(payout_date=date(2026, 12, 10), period_start=date(2026, 10, 25))
PROVIDER = SimpleNamespace(id="prov_1", name="Accounting <App>")


def _payout(**overrides):
    values = {"id": "po_1", "currency": "AUD", "line_count": 2, "gross": 11001, "fee": 3000, "credits": 0,
              "clawback": 0, "net": 8001, "brought_forward": -1000, "amount": 7001, "carry": 0,
              "method": "bank_transfer", "reference": "SEPA-42", "stripe_transfer_id": None,
              "paid_at": datetime(2026, 12, 10, 22, 0, tzinfo=timezone.utc), "run": RUN,
              "failure_code": None, "failure_message": None, "stripe_account_id": None}
    return SimpleNamespace(**{**values, **overrides})


def _line(n: int, amount: int = 10000, fee: int = 3000) -> PayoutLine:
    return PayoutLine(f"bill_{n}", "inv_1", "pay_1", True, "AUD", amount, fee, amount - fee)


def test_a_statement_shows_its_lines_totals_and_how_it_was_sent_in_the_tenants_locale():
    lines = [PayoutLine("bill_1", "inv_1", "pay_1", True, "AUD", 10000, 3000, 7000, "Bakery 42", "Hosting — Cloud",
                        date(2026, 10, 25), date(2026, 11, 24)),
             PayoutLine("bill_2", "inv_1", "pay_1", False, "AUD", 1001, 0, 1001)]
    context = statement.statement_context(_payout(), RUN, PROVIDER, lines, {"inv_1": "INV-7"}, _settings())
    assert (context["payout_date"], context["period"]) == ("Dec 10, 2026", "Oct 25, 2026 – Nov 24, 2026")
    assert context["lines"][0] == {"bill": "bill_1", "invoice": "INV-7", "customer": "Bakery 42",
                                   "description": "Hosting — Cloud (Oct 25, 2026 – Nov 24, 2026)",
                                   "kind": "revenue share", "gross": "A$100.00", "fee": "A$30.00", "net": "A$70.00"}
    assert (context["gross"], context["fee"], context["net"]) == ("A$110.01", "A$30.00", "A$80.01")
    assert (context["brought_forward"], context["amount"]) == ("-A$10.00", "A$70.01")
    assert context["method"] == "Bank transfer SEPA-42" and context["rest"] is None
    assert context["paid_on"] == "Dec 11, 2026"  # 22:00 UTC is the next morning in Sydney
    stripe = statement.statement_context(_payout(method="stripe", reference=None, stripe_transfer_id="tr_9"),
                                         RUN, PROVIDER, lines, {}, _settings(locale="de_DE"))
    assert stripe["method"] == "Stripe transfer tr_9" and stripe["amount"] == "70,01\xa0AU$"
    assert stripe["lines"][0]["invoice"] == "inv_1"  # no number known: its id


def test_a_statement_adds_up_on_its_face_credits_inside_gross_and_names_each_lines_customer():
    """Issue 20's example: gross 63.00 with a credit of -5.00 inside it, fee 18.90, net 44.10 —
    shown as charges 68.00 + credits -5.00 = gross 63.00; - fee 18.90 = net 44.10."""
    payout = _payout(line_count=3, gross=6300, fee=1890, credits=-500, net=4410, brought_forward=0, amount=4410)
    hosting = ("Bakery 42", "Hosting — Cloud")
    lines = [PayoutLine("bill_01jdw8m1x2y3z4a5b6c7d8e9f0", "inv_1", "pay_1", True, "AUD", 6800, 2040, 4760, *hosting),
             PayoutLine("bill_2", "inv_1", "pay_1", True, "AUD", -500, -150, -350, "studio-9", "Goodwill credit"),
             PayoutLine("bill_01jdw8m1x2y3z4a5b6c7d8e9f0", "inv_2", "re_1", True, "AUD", -100, -30, -70, *hosting)]
    context = statement.statement_context(payout, RUN, PROVIDER, lines, {"inv_1": "INV-7"}, _settings(),
                                          {"pay_1": "payment", "re_1": "refund"})
    assert [(s["label"], s["amount"], s["kind"]) for s in context["arithmetic"]] == [
        ("Charges", "A$68.00", "term"), ("Credits", "-A$5.00", "term"), ("Gross", "A$63.00", "subtotal"),
        ("Platform fee", "-A$18.90", "term"), ("Clawback (refunds)", "A$0.00", "term"),
        ("Net", "A$44.10", "subtotal"), ("Brought forward", "A$0.00", "term"),
        ("Amount transferred", "A$44.10", "total")]
    assert [(line["customer"], line["description"]) for line in context["lines"]] == [
        ("Bakery 42", "Hosting — Cloud"), ("studio-9", "Goodwill credit"), ("Bakery 42", "Refund: Hosting — Cloud")]
    pdf = WeasyPrintRenderer().render(statement.TEMPLATE, context)
    text = " ".join(pypdf.PdfReader(io.BytesIO(pdf)).pages[0].extract_text().split())
    for shown in ("Charges A$68.00", "Credits -A$5.00", "Gross = charges + credits A$63.00",
                  "Platform fee -A$18.90", "Net = gross − fee + clawback A$44.10", "Amount transferred",
                  "Bakery 42", "Refund: Hosting — Cloud", "bill_01jdw8m1x2y3z4a5b6c7d8e9f0"):
        assert shown in text, (shown, text)


def test_a_negative_balance_carried_brings_the_transfer_to_zero_on_the_statement():
    payout = _payout(gross=1000, fee=300, clawback=-1500, net=-800, brought_forward=0, amount=0, carry=-800)
    context = statement.statement_context(payout, RUN, PROVIDER, [], {}, _settings())
    assert [(s["label"], s["amount"]) for s in context["arithmetic"]][-3:] == [
        ("Brought forward", "A$0.00"), ("Negative balance carried to the next payout", "A$8.00"),
        ("Amount transferred", "A$0.00")]


def test_a_statement_of_very_many_lines_lists_the_first_and_sums_the_rest():
    count = statement.STATEMENT_LINES + 100
    lines = [_line(n) for n in range(statement.STATEMENT_LINES + 1)]  # one more than it lists
    payout = _payout(line_count=count, gross=count * 10000, fee=count * 3000, net=count * 7000, brought_forward=0,
                     amount=count * 7000)
    context = statement.statement_context(payout, RUN, PROVIDER, lines, {}, _settings())
    assert len(context["lines"]) == statement.STATEMENT_LINES
    assert context["rest"] == {"count": 100, "net": "A$7,000.00"}
    html = WeasyPrintRenderer().html(statement.TEMPLATE, context)
    assert "100 more lines, not listed here (the first 500 of 600 are)" in html
    assert "Accounting &lt;App&gt;" in html  # autoescaped
    subject, text, _ = messages.render("payout_statement", context)
    assert subject == "[test] Payout of A$42,000.00 from Market Pty Ltd for Dec 10, 2026"
    assert "its 600 lines (the first 500 listed, the rest summed in one)" in text


def test_finance_is_told_what_awaits_review_per_currency_and_provider_and_where_to_review_it():
    review = PayoutReview("prun_1", date(2026, 12, 10), date(2026, 10, 25),
                          [CurrencyTotal("AUD", 2, 10501), CurrencyTotal("EUR", 1, 900)],
                          [ProviderPayout("Accounting App", "AUD", 8001, "pending_review"),
                           ProviderPayout("SMS Gateway", "AUD", 2500, "pending_review")], 1)
    context = messages.payouts_awaiting_review_context(review, _settings(livemode=True))
    subject, text, html = messages.render("payouts_awaiting_review", context)
    assert subject == "Payouts await your review: 3 for Dec 10, 2026, A$105.01, €9.00"
    assert "Period:     Oct 25, 2026 – Nov 24, 2026" in text
    assert "AUD: 2 payouts, A$105.01 to transfer" in text and "Accounting App: A$80.01 (AUD, pending review)" in text
    assert "… and 1 more payout (GET /v1/payouts?period=2026-10-25)" in text
    assert "/finance" in text and 'POST /v1/payouts/approve {"period": "2026-10-25"}' in text
    assert '<a href="/finance" style=' in html and "SMS Gateway" in html


def test_a_failed_payout_tells_finance_the_reason_provider_and_amount():
    payout = _payout(method="stripe", failure_code="insufficient_funds", failure_message=None,
                     stripe_account_id="acct_1")
    context = messages.payout_failed_context(payout, SimpleNamespace(id="prov_1", name="SMS Gateway"), _settings())
    subject, text, html = messages.render("payout_failed", context)
    assert subject == "[test] Payout to SMS Gateway failed: A$70.01"
    assert "Reason:     insufficient funds" in text and "Stripe account acct_1" in text
    assert "brought into the provider's next payout in AUD" in text and "<table" in html
