"""How every email reads, from plain values: one shared layout with its styles inline (no style
sheet a mail client would drop), a plain-text part beside it, `[test]` on every test-mode
subject (customers' too), counted nouns by Babel's plural rules, times with their time zone, a
payment-failed email that says how to fix it, and Message-IDs under the sender's domain."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest

from aggregator import plurals
from aggregator.mail import html_style, messages
from aggregator.mail.delivery_service import CurrencySummary, PeriodSummary
from aggregator.mail.payout_notices import CurrencyTotal, PayoutReview, ProviderPayout
from aggregator.payouts import statement
from aggregator.payouts.service import PayoutLine

UTC = timezone.utc


def _settings(**overrides):
    values = {"name": "Market", "legal_name": "Market Pty Ltd", "locale": "en_AU", "timezone": "Australia/Sydney",
              "email_reply_to": "help@market.example", "livemode": False, "email_from": None,
              "email_from_name": None, "payment_instructions": None}
    return SimpleNamespace(**{**values, **overrides})


CUSTOMER = SimpleNamespace(name="Ann", external_id="cust-1", email="ann@example.com")


def _invoice(**overrides):
    values = {"id": "inv_1", "number": "INV-1", "currency": "AUD", "total": 1999, "amount_due": 1999,
              "amount_paid": 1999, "amount_remaining": 1999, "carried_credit": 0, "attempt_count": 2,
              "period_start": date(2026, 10, 25), "period_end": date(2026, 11, 24), "due_date": date(2026, 12, 2),
              "finalized_at": datetime(2026, 11, 25, 1, tzinfo=UTC), "created_at": datetime(2026, 11, 25, tzinfo=UTC),
              "paid_at": datetime(2026, 12, 1, 22, tzinfo=UTC), "customer": CUSTOMER}
    return SimpleNamespace(**{**values, **overrides})


PAYMENT = SimpleNamespace(method="card", reference=None, amount=1999)
RUN = SimpleNamespace(payout_date=date(2026, 12, 10), period_start=date(2026, 10, 25))
PROVIDER = SimpleNamespace(id="prov_1", name="Accounting App")


def _payout():
    return SimpleNamespace(id="po_1", currency="AUD", line_count=1, gross=11001, fee=3000, credits=0, clawback=0,
                           net=8001, brought_forward=0, amount=8001, carry=0, method="stripe", reference=None,
                           stripe_transfer_id="tr_1", paid_at=datetime(2026, 12, 10, 22, tzinfo=UTC), run=RUN,
                           failure_code="insufficient_funds", failure_message=None, stripe_account_id="acct_1")


def _spaced(text: str) -> str:
    """Babel (CLDR 42+) puts a narrow no-break space before AM/PM: read as a space here."""
    return text.replace("\u202f", " ")


def _failed(**data):
    return {"next_retry_at": datetime(2026, 12, 4, 22, tzinfo=UTC).isoformat(), "final": False,
            "hard_decline": False, "failure_message": "Your card has insufficient funds.", **data}


def _every_kind(settings) -> dict[str, dict]:
    """A context of each kind of email, as delivery_service builds them."""
    invoice = _invoice()
    refund = SimpleNamespace(amount=500, currency="AUD", settled_at=None, created_at=datetime(2026, 12, 5, tzinfo=UTC),
                             reason="requested_by_customer")
    summary = PeriodSummary(date(2026, 10, 25), date(2026, 11, 24), [CurrencySummary("AUD", 1, 1, 0, 1999, 1999)],
                            1, 0, [])
    review = PayoutReview("prun_1", date(2026, 12, 10), date(2026, 10, 25), [CurrencyTotal("AUD", 1, 8001)],
                          [ProviderPayout("Accounting App", "AUD", 8001, "pending_review")], 1)
    crossing = {"period": "2026-10-25", "period_end": "2026-11-24", "threshold": 80, "included_units": "100",
                "quantity": "80", "unit": "GB", "reached_at": "2026-11-10T12:00:00+00:00", "plan_name": "Cloud",
                "name": "Bandwidth", "external_billing_id": "sub-1"}
    line = PayoutLine("bill_1", "inv_1", "pay_1", True, "AUD", 11001, 3000, 8001)
    return {
        "invoice": messages.invoice_context(invoice, settings),
        "receipt": messages.receipt_context(invoice, PAYMENT, settings),
        "payment_failed": messages.payment_failed_context(invoice, PAYMENT, _failed(), settings),
        "payment_action_required": messages.action_required_context(invoice, PAYMENT, settings),
        "invoice_overdue": messages.overdue_context(invoice, settings),
        "refund": messages.refund_context(invoice, refund, PAYMENT, settings),
        "usage_threshold": messages.usage_threshold_context(crossing, CUSTOMER, settings),
        "invoice_uncollectible": messages.uncollectible_context(invoice, "Declined.", settings),
        "invoice_disputed": messages.dispute_context({"id": "inv_1", "number": "INV-1", "currency": "AUD",
                                                      "total": "19.99"}, {"amount": 1999, "id": "dp_1"},
                                                     CUSTOMER, settings),
        "period_summary": messages.period_summary_context(summary, settings),
        "webhook_endpoint_disabled": messages.endpoint_disabled_context({"id": "we_1", "url": "https://x.example"},
                                                                        settings),
        "payouts_awaiting_review": messages.payouts_awaiting_review_context(review, settings),
        "payout_failed": messages.payout_failed_context(_payout(), PROVIDER, settings),
        "payout_statement": {**statement.statement_context(_payout(), RUN, PROVIDER, [line], {"inv_1": "INV-1"},
                                                           settings), "locale": settings.locale},
    }


KINDS = sorted(_every_kind(_settings()))
CUSTOMER_KINDS = ["invoice", "receipt", "payment_failed", "payment_action_required", "invoice_overdue", "refund",
                  "usage_threshold"]


def test_every_kind_with_a_template_is_covered_here():
    templates = {p.name.removesuffix(".subject.txt") for p in messages.TEMPLATE_DIR.glob("*.subject.txt")}
    assert templates >= set(KINDS)


def test_every_html_email_is_the_shared_layout_and_every_tag_of_it_can_be_styled():
    for path in messages.TEMPLATE_DIR.glob("*.html"):
        source = path.read_text()
        if not path.name.startswith("_"):
            assert source.startswith('{% extends "_layout.html" %}'), path.name
        # a tag whose attributes a Jinja statement writes is not seen by html_style.inline
        assert not re.search(r"<[a-z0-9]+\{", source), path.name


@pytest.mark.parametrize("kind", KINDS)
def test_each_email_is_styled_inline_with_a_plain_text_part_beside_it(kind):
    subject, text, html = messages.render(kind, _every_kind(_settings(livemode=True))[kind])
    assert "<style" not in html and "<link" not in html
    for tag in ("p", "table", "th", "td", "a", "h1", "code"):
        for opening in re.findall(rf"<{tag}(?:\s[^>]*)?>", html):
            assert 'style="' in opening, (kind, opening)
    assert html.count("max-width: 600px") == 1  # the layout's card
    assert "Market Pty Ltd" in html and "<h1" in html
    assert text.strip() and "<" not in text.replace("<App>", "")  # plain text, no markup
    assert subject and not subject.startswith("[test]") and "Test mode" not in html


@pytest.mark.parametrize("kind", KINDS)
def test_every_test_mode_email_is_marked_in_its_subject_and_body(kind):
    subject, _, html = messages.render(kind, _every_kind(_settings(livemode=False))[kind])
    assert subject.startswith("[test] ") and not subject.startswith("[test] [test]")
    assert "Test mode: no real money moves" in html


def test_a_customers_test_mode_email_is_marked_like_finances():
    for kind in CUSTOMER_KINDS:
        subject, _, _ = messages.render(kind, _every_kind(_settings())[kind])
        assert subject.startswith("[test] "), kind


def test_a_style_written_in_the_template_stays_and_classes_add_to_the_tags_style():
    html = html_style.inline('<table style="width: 1px"><tr class="total"><td class="num">1</td></tr></table>'
                             '<p class="note">x</p><pre>y</pre><br/>')
    assert '<table style="width: 1px">' in html
    assert f'<td class="num" style="{html_style.style_of("td", "num")}">' in html
    assert "text-align: right" in html_style.style_of("td", "num")
    assert f'<p class="note" style="{html_style.style_of("p", "note")}">' in html and "<pre>y</pre>" in html


# --- how the invoice gets paid ---------------------------------------------------------------------

def test_an_invoice_charged_to_a_card_says_when_and_that_nothing_is_to_be_done():
    _, text, html = messages.render("invoice", messages.invoice_context(_invoice(), _settings(), charged=True))
    assert "Charge date:    2 Dec 2026" in text and "Due date" not in text
    assert "We will charge $19.99 to your payment method on file on 2 Dec 2026" in text and "IBAN" not in html


def test_an_invoice_paid_by_transfer_gives_the_bank_details_and_the_reference_to_quote():
    settings = _settings(payment_instructions={"account_holder": "Market Pty Ltd", "iban": "DE89370400440532013000",
                                               "bic": "COBADEFFXXX", "bsb": None, "reference": None})
    _, text, html = messages.render("invoice", messages.invoice_context(_invoice(), settings, charged=False))
    assert "Due date:       2 Dec 2026" in text and "Charge date" not in text and "will charge" not in text
    assert "Please pay $19.99 by bank transfer by 2 Dec 2026, quoting the invoice number INV-1" in text
    assert "  IBAN:           DE89 3704 0044 0532 0130 00\n" in text and "  Reference:      INV-1\n" in text
    assert "Account holder" in html and "COBADEFFXXX" in html and "BSB" not in html
    australian = messages.bank_details({"account_holder": "Market", "bsb": "062-000", "account_number": "12345678"})
    assert australian == [("Account holder", "Market"), ("BSB", "062-000"), ("Account number", "12345678")]


def test_without_a_card_or_bank_details_the_invoice_says_when_it_is_due_and_how_to_ask():
    settings = _settings(payment_instructions={"account_holder": "Market"})  # no account to pay to
    _, text, _ = messages.render("invoice", messages.invoice_context(_invoice(), settings))
    assert "Please pay $19.99 by 2 Dec 2026. To ask how, reply to this email or write to help@market.example." in text
    assert "Charge date" not in text


def test_an_invoice_with_nothing_due_asks_for_nothing():
    context = messages.invoice_context(_invoice(amount_due=0, carried_credit=1999), _settings(), charged=True)
    subject, text, _ = messages.render("invoice", context)
    assert subject.endswith("nothing to pay") and "Nothing is due" in text and "charge" not in text.lower()


# --- the payment-failed email ---------------------------------------------------------------------

def test_a_failed_payment_says_when_it_is_retried_with_the_time_zone_and_how_to_change_the_card():
    context = messages.payment_failed_context(_invoice(), PAYMENT, _failed(), _settings())
    subject, text, html = (_spaced(part) for part in messages.render("payment_failed", context))
    assert "We will try again on 5 Dec 2026 at 9:00 am AEDT." in text
    assert "Next attempt:   5 Dec 2026 at 9:00 am AEDT" in text
    assert "reply to this email or write to help@market.example and we will help you switch before then" in text
    assert 'write to <a href="mailto:help@market.example"' in html and "9:00 am AEDT" in html
    assert subject == "[test] Payment of $19.99 for invoice INV-1 failed: we will try again on 5 Dec 2026"


def test_a_hard_decline_asks_for_a_new_payment_method_and_says_how():
    context = messages.payment_failed_context(_invoice(), PAYMENT, _failed(hard_decline=True, next_retry_at=None),
                                              _settings(email_reply_to=None))
    _, text, _ = messages.render("payment_failed", context)
    assert "please update your payment method" in text
    assert "To set a new one, reply to this email and we will help you." in text and "write to" not in text


def test_after_the_last_attempt_the_customer_is_told_to_pay_by_other_means_and_how():
    context = messages.payment_failed_context(_invoice(), PAYMENT, _failed(final=True, next_retry_at=None),
                                              _settings())
    _, text, _ = messages.render("payment_failed", context)
    assert "This was our last attempt" in text and "reply to this email or write to help@market.example" in text


@pytest.mark.parametrize("zone, locale, shown", [
    ("Australia/Sydney", "en", "9:00 AM AEDT"),       # the time zone database's abbreviation
    ("Australia/Sydney", "en_AU", "9:00 am AEDT"),
    ("Europe/Berlin", "de_DE", "09:00 MEZ"),          # the locale's own
    ("America/New_York", "en", "9:00 AM EST"),
    ("Asia/Dubai", "en", "9:00 AM UTC+04:00"),        # no abbreviation: the offset
    ("Asia/Kolkata", "en", "9:00 AM IST"),
    ("UTC", "en", "9:00 AM UTC"),
])
def test_a_time_is_told_with_its_time_zone(zone, locale, shown):
    from zoneinfo import ZoneInfo

    assert _spaced(messages.clock_time(datetime(2026, 12, 7, 9, tzinfo=ZoneInfo(zone)), locale)) == shown


# --- counted nouns ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, locale, shown", [
    (0, "en", "0 invoices"), (1, "en", "1 invoice"), (2, "en", "2 invoices"), (1250, "en", "1,250 invoices"),
    (1250, "de_DE", "1.250 invoices"), (0, "fr_FR", "0 invoices"), (1, "fr_FR", "1 invoice"),
])
def test_counted_nouns_follow_englishs_plural_rule_with_the_number_in_the_readers_locale(n, locale, shown):
    assert plurals.counted(n, "invoice", "invoices", locale) == shown


def test_a_language_with_more_categories_picks_its_form():
    forms = {"one": "faktura", "few": "faktury", "many": "faktur"}
    assert [plurals.word(n, "faktura", "faktury", forms=forms, language="pl") for n in (1, 2, 5, 22)] == [
        "faktura", "faktury", "faktur", "faktury"]


def test_no_email_says_1_of_a_plural_noun():
    settings = _settings()
    one = _every_kind(settings)
    one["period_summary"] = messages.period_summary_context(
        PeriodSummary(date(2026, 10, 25), date(2026, 11, 24), [CurrencySummary("AUD", 1, 1, 0, 1999, 1999)], 0, 0,
                      []), settings)
    for kind, context in one.items():
        for part in messages.render(kind, context):
            assert not re.search(r"\b1 (invoices|payouts|payments|lines|drafts|attempts|more payouts)\b", part), \
                (kind, part)
    subject, text, _ = messages.render("period_summary", one["period_summary"])
    assert subject.endswith("closed: 1 invoice") and "AUD: 1 invoice (1 open" in text


# --- the sender ---------------------------------------------------------------------------------------

def test_the_message_id_is_under_the_senders_domain():
    tenant = messages.Sender.of(_settings(email_from="billing@Market.example"), "billing@operator.example")
    operator = messages.Sender.of(_settings(), "billing@operator.example")
    assert messages.message_id("edl_1", tenant.domain) == "<edl_1@market.example>"
    assert messages.message_id("edl_1", operator.domain) == "<edl_1@operator.example>"


def test_documents_count_nouns_by_the_same_rule(tmp_path):
    from aggregator.consolidate.render import WeasyPrintRenderer

    (tmp_path / "t.html").write_text('{{ n|counted("payment", "payments") }}')
    renderer = WeasyPrintRenderer(tmp_path)
    assert [renderer.html("t.html", {"n": n}) for n in (1, 2)] == ["1 payment", "2 payments"]
    assert renderer.html("t.html", {"n": 1250, "locale": "de_DE"}) == "1.250 payments"
