"""Email messages: the values each kind of email shows (formatted in the tenant's locale, amounts
through money.display as on the invoice PDF, times with their time zone), rendered from
`templates/emails/<kind>.subject.txt`, `<kind>.txt` and `<kind>.html` (Jinja2; HTML autoescaped,
every kind in the one layout `_layout.html`, its styles written into the templates' tags by
`html_style` as they are loaded), built as a MIME message with a text and an HTML part and any
attachments.

Rules every kind follows, applied here once: a test-mode email's subject starts with `[test]`
(customers', providers' and finance's alike); counted nouns go through Babel's plural rules (the
`counted` filter: "1 invoice", "2 invoices"); the Message-ID's domain is the sender's."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from fractions import Fraction
from functools import cache
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date, format_interval, format_time, get_timezone_name
from stdnum import iban

from .. import money, plurals
from ..config import PROJECT_ROOT
from ..consolidate.credit_notes import SETTLEMENT_WORDS
from ..payouts.statement import about_payout, period_words
from . import html_style

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "emails"


@dataclass(frozen=True)
class Sender:
    """Who an email is from and where replies go (the tenant's settings in its mode, the
    operator's address when the tenant has none)."""

    address: str
    name: str | None = None
    reply_to: str | None = None

    @classmethod
    def of(cls, settings, default_from: str) -> "Sender":
        return cls(settings.email_from or default_from, settings.email_from_name or settings.name,
                   settings.email_reply_to)

    @property
    def domain(self) -> str:
        """The domain of the sender's address: its messages' Message-IDs end with it."""
        return self.address.rpartition("@")[2].strip().lower() or "localhost"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


#: The subject's mark of an email sent in test mode.
TEST_MARK = "[test]"


@jinja2.pass_context
def _counted(context, n: int, one: str, other: str) -> str:
    """`{{ n|counted("invoice", "invoices") }}`: "1 invoice", "1,250 invoices" (the number in the
    email's locale, the noun by English's plural rule)."""
    return plurals.counted(n, one, other, context.get("locale") or "en")


class _StyledLoader(jinja2.FileSystemLoader):
    """Loads the templates with the styles of `html_style` written into the HTML ones' tags, once
    per template (not per message: the values rendered into them carry no tags)."""

    def get_source(self, environment: jinja2.Environment, template: str):
        source, filename, uptodate = super().get_source(environment, template)
        return (html_style.inline(source) if template.endswith(".html") else source), filename, uptodate


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=_StyledLoader(str(TEMPLATE_DIR)),
                             autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["counted"] = _counted
    env.globals["frame"] = html_style.FRAME
    return env


def render(kind: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """-> (subject, text, html) of an email of this kind; in test mode (`mode` "test") the
    subject starts with TEST_MARK."""
    env = _environment()
    subject = " ".join(env.get_template(f"{kind}.subject.txt").render(context).split())
    if context.get("mode") == "test" and not subject.startswith(TEST_MARK):
        subject = f"{TEST_MARK} {subject}"
    return subject, env.get_template(f"{kind}.txt").render(context), env.get_template(f"{kind}.html").render(context)


def build(kind: str, context: Mapping[str, Any], *, sender: Sender, to: str, message_id: str, date_: datetime,
          attachments: Sequence[Attachment] = ()) -> Message:
    """The message, built with the `email.mime` classes (the compat32 policy): the same MIME as
    an `EmailMessage` gives, at a fifth of its cost (no header parsing and refolding on every
    assignment; bench/deliver_email.py). Headers that are not ASCII are RFC 2047 encoded."""
    subject, text, html = render(kind, context)
    body = MIMEMultipart("alternative", boundary=_boundary())
    body.attach(MIMEText(text, "plain", "utf-8"))
    body.attach(MIMEText(html, "html", "utf-8"))
    if attachments:
        message = MIMEMultipart("mixed", boundary=_boundary())
        message.attach(body)
        for attachment in attachments:
            part = MIMEBase(attachment.maintype, attachment.subtype)
            part.set_payload(attachment.content)
            encoders.encode_base64(part)
            part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
            message.attach(part)
    else:
        message = body
    message["Subject"] = _header(subject)
    message["From"] = formataddr((sender.name or "", sender.address), "utf-8")
    message["To"] = to
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    message["Date"] = format_datetime(date_)
    message["Message-ID"] = message_id
    return message


def _boundary() -> str:
    """A MIME boundary that cannot occur in the parts (all base64: "=" only pads a line's end), so
    the generator need not search each part for it (a regex compiled per message)."""
    return f"==aggregator_{secrets.token_hex(12)}"


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def message_id(delivery_id: str, domain: str) -> str:
    """Stable for a delivery: every attempt at it carries the same Message-ID (receivers that
    deduplicate on it see a resend after a crash as the same message). `domain`: the sender's
    (Sender.domain: the tenant's `email_from`, else the operator's AGGREGATOR_EMAIL_FROM), so
    that the ID is under a domain the sender answers for, as RFC 5322 asks, and spam filters
    do not score a foreign or `localhost` ID against it."""
    return f"<{delivery_id}@{domain}>"


# --- what each kind shows ---------------------------------------------------------------------

def _day(value: date | None, locale: str) -> str:
    return format_date(value, "medium", locale=locale) if value else ""


def _local_day(instant: datetime | None, settings) -> str:
    return _day(instant.astimezone(ZoneInfo(settings.timezone)).date(), settings.locale) if instant else ""


def clock_time(local: datetime, locale: str) -> str:
    """A time of day with its time zone, "9:00 AM AEDT" (`local`: an aware instant in the zone
    meant): the locale's short time, then the zone's short name in the locale (CLDR's, "MEZ"
    in de_DE) where it has one, else the time zone database's ("AEDT", "CET", "IST"), else the
    offset from UTC ("UTC+04:00")."""
    zone = get_timezone_name(local, "short", locale=locale)
    if not zone.isalpha():
        zone = local.strftime("%Z")
    if not zone.isalpha():
        offset = local.strftime("%z")
        zone = f"UTC{offset[:3]}:{offset[3:]}" if offset else "UTC"
    return f"{format_time(local, 'short', locale=locale)} {zone}"


def _tenant(settings) -> dict[str, Any]:
    """What every email shows of its tenant, and how: its name, its mode, its locale."""
    return {"tenant_name": settings.legal_name or settings.name, "mode": "live" if settings.livemode else "test",
            "locale": settings.locale}


def _period(invoice, locale: str) -> str:
    return f"{_day(invoice.period_start, locale)} – {_day(invoice.period_end, locale)}"


def _about_invoice(invoice, settings) -> dict[str, Any]:
    """What every email about a customer's invoice shows of it."""
    customer = invoice.customer
    return {**_tenant(settings), "customer_name": customer.name or customer.external_id,
            "number": invoice.number, "period": _period(invoice, settings.locale), "currency": invoice.currency,
            "reply_to": settings.email_reply_to}


def invoice_context(invoice, settings, charged: bool = False, instructions: Any = "settings") -> dict[str, Any]:
    """A customer's invoice: what the email says of it (the PDF says the rest), and how it gets
    paid (`payment`): "card" when a charge run will charge the customer's card (`charged`), else
    "transfer" with the tenant's bank details (`instructions`; default: the settings') and the
    invoice number to quote when it has them, else "due" (pay by the due date, ask how);
    "nothing" when nothing is due. The delivery passes both as the invoice keeps them
    (consolidate.parties.payment_of), so the email says what its PDF says."""
    locale, currency = settings.locale, invoice.currency
    issued = (invoice.finalized_at or invoice.created_at).astimezone(ZoneInfo(settings.timezone)).date()
    customer = invoice.customer
    if instructions == "settings":
        instructions = settings.payment_instructions
    bank = bank_details(instructions) if not charged else []
    payment = "nothing" if invoice.amount_due <= 0 else "card" if charged else "transfer" if bank else "due"
    return {
        **_tenant(settings),
        "customer_name": customer.name or customer.external_id,
        "number": invoice.number,
        "issue_date": _day(issued, locale),
        "period": _period(invoice, locale),
        "due_date": _day(invoice.due_date, locale),
        "total": money.display(invoice.total, currency, locale),
        "amount_due": money.display(invoice.amount_due, currency, locale),
        "carried_credit": money.display(invoice.carried_credit, currency, locale) if invoice.carried_credit else "",
        "currency": currency,
        "reply_to": settings.email_reply_to,
        "payment": payment,
        "bank": bank,
    }


#: The tenant's payment instructions, in the order and words a customer's bank form asks them.
BANK_FIELDS = (("account_holder", "Account holder"), ("bank_name", "Bank"), ("iban", "IBAN"), ("bic", "BIC"),
               ("bsb", "BSB"), ("account_number", "Account number"))


def bank_details(instructions: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """(label, value) of the tenant's bank details that are set (an IBAN grouped by four, as it
    is printed: "DE89 3704 0044 …"); none without an account to pay to (an IBAN, or an account
    number)."""
    given = {key: str(value).strip() for key, value in (instructions or {}).items() if value}
    if not (given.get("iban") or given.get("account_number")):
        return []
    if given.get("iban"):
        given["iban"] = iban.format(given["iban"])
    return [(label, given[key]) for key, label in BANK_FIELDS if given.get(key)]


def period_summary_context(summary, settings) -> dict[str, Any]:
    """A closed period, for the tenant's finance address (see delivery_service.PeriodSummary)."""
    locale = settings.locale
    return {
        **_tenant(settings),
        "period": f"{_day(summary.start, locale)} – {_day(summary.end, locale)}",
        "currencies": [{"currency": c.currency, "invoices": c.invoices, "open": c.open, "drafts": c.drafts,
                        "total": money.display(c.total, c.currency, locale),
                        "amount_due": money.display(c.amount_due, c.currency, locale)}
                       for c in summary.currencies],
        "invoice_count": sum(c.invoices for c in summary.currencies),
        "drafts": sum(c.drafts for c in summary.currencies),
        "without_address": summary.without_address,
        "pdf_failures": summary.pdf_failures,
        "waiting": [{"period": _day(start, locale), "reason": reason.replace("_", " ")}
                    for start, reason in summary.waiting],
    }


def endpoint_disabled_context(endpoint: Mapping[str, Any], settings) -> dict[str, Any]:
    """A webhook endpoint disabled after failing for too long (the event's object)."""
    return {
        **_tenant(settings),
        "endpoint_id": endpoint.get("id") or "",
        "url": endpoint.get("url") or "",
        "reason": endpoint.get("disabled_reason") or endpoint.get("last_error") or "repeated delivery failures",
        "last_error": endpoint.get("last_error") or "",
    }


# --- the customer's payment emails ----------------------------------------------------------

#: How a payment's method reads in an email.
METHOD_WORDS = {"card": "card", "bank_transfer": "bank transfer", "cash": "cash", "check": "check",
                "other": "other means"}


def receipt_context(invoice, payment, settings) -> dict[str, Any]:
    """A paid invoice: what was paid, when and how (`payment`: its latest succeeded payment)."""
    return {**_about_invoice(invoice, settings),
            "amount_paid": money.display(invoice.amount_paid, invoice.currency, settings.locale),
            "paid_on": _local_day(invoice.paid_at, settings),
            "method": METHOD_WORDS.get(payment.method, payment.method) if payment else "",
            "reference": payment.reference if payment and payment.reference else ""}


def payment_failed_context(invoice, payment, data: Mapping[str, Any], settings) -> dict[str, Any]:
    """A declined charge (the data of its `invoice.payment_failed`): the amount, why in the
    bank's words, and what happens next: the next attempt (its date and time in the tenant's
    time zone), a new payment method needed (a hard decline), no more attempts (the last one
    failed), or payment by other means (nothing will retry it)."""
    locale, tz = settings.locale, ZoneInfo(settings.timezone)
    retry_at = datetime.fromisoformat(data["next_retry_at"]).astimezone(tz) if data.get("next_retry_at") else None
    amount = payment.amount if payment else max(invoice.amount_due - invoice.amount_paid, 0)
    return {**_about_invoice(invoice, settings),
            "amount": money.display(amount, invoice.currency, locale),
            "reason": data.get("failure_message") or data.get("hard_decline_reason") or _code_words(data)
            or "the payment was declined",
            "next_attempt_date": _day(retry_at.date(), locale) if retry_at else "",
            "next_attempt_time": clock_time(retry_at, locale) if retry_at else "",
            "hard_decline": bool(data.get("hard_decline")),
            "final": bool(data.get("final"))}


def _code_words(data: Mapping[str, Any]) -> str:
    code = data.get("decline_code") or data.get("failure_code")
    return code.replace("_", " ") if code else ""


def action_required_context(invoice, payment, settings) -> dict[str, Any]:
    """A charge that waits for the customer to authenticate it with their bank (3-D Secure)."""
    amount = payment.amount if payment else max(invoice.amount_due - invoice.amount_paid, 0)
    return {**_about_invoice(invoice, settings), "amount": money.display(amount, invoice.currency, settings.locale)}


def overdue_context(invoice, settings) -> dict[str, Any]:
    """An invoice still unpaid after its due date: what remains to pay, and since when it is due."""
    return {**_about_invoice(invoice, settings),
            "amount_remaining": money.display(invoice.amount_remaining, invoice.currency, settings.locale),
            "due_date": _day(invoice.due_date, settings.locale)}


#: How a refund's reason reads in an email.
REFUND_REASON_WORDS = {"duplicate": "a duplicate payment", "fraudulent": "a fraudulent payment",
                       "requested_by_customer": "your request"}


def refund_context(invoice, refund, payment, settings) -> dict[str, Any]:
    """Money given back from a payment of the invoice."""
    return {**_about_invoice(invoice, settings),
            "amount": money.display(refund.amount, refund.currency, settings.locale),
            "refunded_on": _local_day(refund.settled_at or refund.created_at, settings),
            "reason": REFUND_REASON_WORDS.get(refund.reason or "", ""),
            "method": METHOD_WORDS.get(payment.method, payment.method) if payment else ""}


def credit_note_context(note, settings) -> dict[str, Any]:
    """A credit note of one of the customer's invoices (the PDF attached says the rest)."""
    locale = settings.locale
    return {**_about_invoice(note.invoice, settings), "credit_note_number": note.number,
            "total": money.display(note.total, note.currency, locale),
            "issued_on": _local_day(note.created_at, settings),
            "settlement": SETTLEMENT_WORDS[note.settlement]}


# --- finance's payment emails -----------------------------------------------------------------

def uncollectible_context(invoice, last_failure: str | None, settings) -> dict[str, Any]:
    """An invoice given up on after its last retry failed."""
    customer = invoice.customer
    return {**_about_invoice(invoice, settings),
            "invoice_id": invoice.id,
            "customer_external_id": customer.external_id,
            "customer_email": customer.email or "",
            "amount": money.display(max(invoice.amount_due - invoice.amount_paid, 0), invoice.currency,
                                    settings.locale),
            "attempts": invoice.attempt_count,
            "last_failure": last_failure or ""}


def dispute_context(snapshot: Mapping[str, Any], dispute: Mapping[str, Any], customer, settings) -> dict[str, Any]:
    """A charge disputed with the customer's bank: from the invoice's snapshot in the event and
    what it tells of the dispute (any of its fields may be missing). A dispute's `amount` as a
    decimal string is in the currency's units ("12.50"), as an integer in Stripe's."""
    currency = snapshot.get("currency") or ""
    return {**_tenant(settings),
            "number": snapshot.get("number") or snapshot.get("id") or "",
            "invoice_id": snapshot.get("id") or "",
            "customer_name": (customer.name or customer.external_id) if customer else "",
            "customer_external_id": snapshot.get("customer_external_id") or "",
            "total": _snapshot_amount(snapshot.get("total"), currency, settings.locale),
            "disputed_amount": _snapshot_amount(dispute.get("amount"), currency, settings.locale),
            "reason": str(dispute.get("reason") or "").replace("_", " "),
            "dispute_id": str(dispute.get("id") or "")}


def _snapshot_amount(value: Any, currency: str, locale: str) -> str:
    try:
        if isinstance(value, bool) or value is None:
            return ""
        minor = money.from_stripe_amount(value, currency) if isinstance(value, int) \
            else money.parse_amount(value, currency)
        return money.display(minor, currency, locale)
    except (money.MoneyError, TypeError, ValueError):
        return ""


# --- payouts ----------------------------------------------------------------------------------

#: Where finance reviews payouts: the finance page, and the API.
FINANCE_PAGE = "/finance"


def payouts_awaiting_review_context(review, settings) -> dict[str, Any]:
    """A payout day's payouts awaiting finance's review (see payout_notices.PayoutReview)."""
    locale = settings.locale
    return {
        **_tenant(settings),
        "run_id": review.run_id,
        "payout_date": _day(review.payout_date, locale),
        "period": period_words(review.period_start, settings.timezone, locale),
        "period_start": review.period_start.isoformat(),
        "payout_count": sum(c.payouts for c in review.currencies),
        "currencies": [{"currency": c.currency, "payouts": c.payouts,
                        "amount": money.display(c.amount, c.currency, locale)} for c in review.currencies],
        "providers": [{"name": p.provider, "currency": p.currency, "status": p.status.replace("_", " "),
                       "amount": money.display(p.amount, p.currency, locale)} for p in review.providers],
        "more_providers": review.more_providers,
        "finance_page": FINANCE_PAGE,
    }


def payout_failed_context(payout, provider, settings) -> dict[str, Any]:
    """A payout whose transfer Stripe refused: nothing was sent; its amount is brought into the
    provider's next payout in the currency."""
    return {**about_payout(payout, payout.run, provider, settings), "locale": settings.locale,
            "reason": payout.failure_message or (payout.failure_code or "").replace("_", " ")
            or "the transfer was refused",
            "failure_code": payout.failure_code or "",
            "stripe_account_id": payout.stripe_account_id or ""}


# --- the customer's usage notice ---------------------------------------------------------------

def usage_threshold_context(crossing: Mapping[str, Any], customer, settings) -> dict[str, Any]:
    """A threshold of the included usage reached (the object of `usage.threshold_reached`):
    "You have used 80% of the 100 GB included in Cloud (Bandwidth) for the period Oct 25 – Nov
    24, 2026: 80 GB as of Nov 10, 2026 at 11:00 PM", in the tenant's locale and time zone."""
    locale = settings.locale
    unit = crossing.get("unit") or ""

    def quantity(value: Any) -> str:
        text = money.display_quantity(Fraction(str(value or "0")), locale, 9)
        return f"{text} {unit}".strip()

    start, end = (date.fromisoformat(crossing[k]) for k in ("period", "period_end"))
    reached_at = datetime.fromisoformat(crossing["reached_at"]).astimezone(ZoneInfo(settings.timezone))
    dimension = ", ".join(f"{k} {v}" for k, v in sorted((crossing.get("dimension") or {}).items()))
    return {**_tenant(settings),
            "customer_name": (customer.name or customer.external_id) if customer else "",
            "threshold": int(crossing["threshold"]),
            "included": quantity(crossing.get("included_units")),
            "quantity": quantity(crossing.get("quantity")),
            "plan_name": crossing.get("plan_name") or crossing.get("plan") or "",
            "component_name": crossing.get("name") or crossing.get("meter") or "",
            "dimension": dimension,
            "subscription": crossing.get("external_billing_id") or crossing.get("subscription") or "",
            "period": format_interval(start, end, "yMMMd", locale=locale),
            "reached_date": _day(reached_at.date(), locale),
            "reached_time": clock_time(reached_at, locale),
            "reply_to": settings.email_reply_to}
