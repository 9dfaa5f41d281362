"""Email messages: the values each kind of email shows (formatted in the tenant's locale, amounts
through money.display as on the invoice PDF), rendered from `templates/emails/<kind>.subject.txt`,
`<kind>.txt` and `<kind>.html` (Jinja2; HTML autoescaped), built as a MIME message with a text
and an HTML part and any attachments."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from email import encoders
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
import secrets
from functools import cache
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import jinja2
from babel.dates import format_date

from .. import money
from ..config import PROJECT_ROOT

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


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str = "application"
    subtype: str = "pdf"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                              autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(kind: str, context: Mapping[str, Any]) -> tuple[str, str, str]:
    """-> (subject, text, html) of an email of this kind."""
    env = _environment()
    subject = " ".join(env.get_template(f"{kind}.subject.txt").render(context).split())
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
    deduplicate on it see a resend after a crash as the same message)."""
    return f"<{delivery_id}@{domain}>"


# --- what each kind shows ---------------------------------------------------------------------

def _day(value: date | None, locale: str) -> str:
    return format_date(value, "medium", locale=locale) if value else ""


def invoice_context(invoice, settings) -> dict[str, Any]:
    """A customer's invoice: what the email says of it (the PDF says the rest)."""
    locale, currency = settings.locale, invoice.currency
    issued = (invoice.finalized_at or invoice.created_at).astimezone(ZoneInfo(settings.timezone)).date()
    customer = invoice.customer
    return {
        "tenant_name": settings.legal_name or settings.name,
        "customer_name": customer.name or customer.external_id,
        "number": invoice.number,
        "issue_date": _day(issued, locale),
        "period": f"{_day(invoice.period_start, locale)} – {_day(invoice.period_end, locale)}",
        "due_date": _day(invoice.due_date, locale),
        "total": money.display(invoice.total, currency, locale),
        "amount_due": money.display(invoice.amount_due, currency, locale),
        "carried_credit": money.display(invoice.carried_credit, currency, locale) if invoice.carried_credit else "",
        "currency": currency,
        "reply_to": settings.email_reply_to,
    }


def period_summary_context(summary, settings) -> dict[str, Any]:
    """A closed period, for the tenant's finance address (see delivery_service.PeriodSummary)."""
    locale = settings.locale
    return {
        "tenant_name": settings.legal_name or settings.name,
        "mode": "live" if settings.livemode else "test",
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
        "tenant_name": settings.legal_name or settings.name,
        "mode": "live" if settings.livemode else "test",
        "endpoint_id": endpoint.get("id") or "",
        "url": endpoint.get("url") or "",
        "reason": endpoint.get("disabled_reason") or endpoint.get("last_error") or "repeated delivery failures",
        "last_error": endpoint.get("last_error") or "",
    }
