"""A provider's payout statement: what one payout paid it and why, as the PDF attached to the
email it gets when the payout is paid (`templates/invoices/payout_statement.html`, rendered by
the invoice renderer adapter).

`statement_context` is a pure function of plain values (the payout, its run, its provider, its
first lines and what the provider knows them by): amounts through money.display and dates in the
tenant's locale, as on invoices. Each line says which customer it is for and what it was (the
bill's description and service period, a refund's clawback), so that a provider can match it
to its own records. The lines are bounded: the first STATEMENT_LINES are listed, the rest summed
into one line (their count and net: a payout's net is the sum of all its lines' nets), and the
statement says where the full list is (`GET /v1/payouts/{id}/lines`). The totals are the
payout's own, as arithmetic a reader can follow (payouts/arithmetic.py)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from babel.dates import format_date

from .. import money
from ..accounts.models import Provider, TenantSettings
from ..auth import Principal
from ..consolidate.models import Invoice
from ..db import db, in_ids
from ..periods import calendar as C
from . import arithmetic
from .models import Payout, PayoutSource
from .service import PayoutLine, payout_lines

TEMPLATE = "payout_statement.html"
#: Lines listed on a statement; any beyond are summed into one line.
STATEMENT_LINES = 500

#: How a payout's method reads on its statement.
METHOD_WORDS = {"stripe": "Stripe transfer", "bank_transfer": "Bank transfer", "none": "Nothing to transfer"}


def period_words(period_start, timezone: str, locale: str) -> str:
    """A payout run's invoicing period, "Oct 25, 2026 – Nov 24, 2026" (its end from its own
    start day: the anchor may have changed since)."""
    period = C.period_starting(period_start, period_start.day, timezone)
    return f"{format_date(period.start, 'medium', locale=locale)} – {format_date(period.end, 'medium', locale=locale)}"


def method_words(payout) -> str:
    """How the payout was sent, with the transfer's id or the bank's reference."""
    words = METHOD_WORDS.get(payout.method, payout.method)
    reference = payout.stripe_transfer_id if payout.method == "stripe" else payout.reference
    return f"{words} {reference}" if reference else words


def about_payout(payout, run, provider, settings) -> dict[str, Any]:
    """What every email and document about one payout shows of it."""
    locale = settings.locale
    return {
        "tenant_name": settings.legal_name or settings.name,
        "mode": "live" if settings.livemode else "test",
        "provider_name": provider.name,
        "provider_id": provider.id,
        "payout_id": payout.id,
        "payout_date": format_date(run.payout_date, "medium", locale=locale),
        "period": period_words(run.period_start, settings.timezone, locale),
        "currency": payout.currency,
        "amount": money.display(payout.amount, payout.currency, locale),
    }


def _what(line: PayoutLine, source_kind: str | None, locale: str) -> str:
    """What a line was: its bill's description and service period; a refund's line says so."""
    words = line.description or "Bill"
    if line.service_period_start and line.service_period_end:
        words += (f" ({format_date(line.service_period_start, 'medium', locale=locale)} – "
                  f"{format_date(line.service_period_end, 'medium', locale=locale)})")
    return f"Refund: {words}" if source_kind == "refund" else words


def statement_context(payout, run, provider, lines: Sequence[PayoutLine], invoice_numbers: Mapping[str, str],
                      settings, source_kinds: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The statement of `payout` (paid in `run`, to `provider`), listing `lines`: its first
    lines, at most STATEMENT_LINES of them (more are summed into `rest`), each with its bill's
    customer and description and whether it is a refund (`source_kinds`, source id -> payment,
    refund or settled)."""
    locale, currency = settings.locale, payout.currency
    source_kinds = source_kinds or {}

    def amount(minor: int) -> str:
        return money.display(minor, currency, locale)

    shown = list(lines[:STATEMENT_LINES])
    rest_count = max(payout.line_count - len(shown), 0)
    rest_net = payout.net - sum(line.net for line in shown)
    return {
        **about_payout(payout, run, provider, settings),
        "lines": [{"bill": line.bill_id, "invoice": invoice_numbers.get(line.invoice_id) or line.invoice_id,
                   "customer": line.customer,
                   "description": _what(line, source_kinds.get(line.source_id), locale),
                   "kind": "revenue share" if line.revenue_share else "pass-through",
                   "gross": amount(line.amount), "fee": amount(line.fee), "net": amount(line.net)}
                  for line in shown],
        "line_count": payout.line_count,
        "rest": {"count": rest_count, "net": amount(rest_net)} if rest_count else None,
        "arithmetic": [{"label": step.label, "amount": amount(step.amount), "kind": step.kind,
                        "formula": step.formula} for step in arithmetic.steps(payout)],
        "charges": amount(arithmetic.charges(payout)),
        "gross": amount(payout.gross),
        "fee": amount(payout.fee),
        "credits": amount(payout.credits),
        "clawback": amount(payout.clawback),
        "net": amount(payout.net),
        "brought_forward": amount(payout.brought_forward),
        "carry": amount(payout.carry) if payout.carry else "",
        "method": method_words(payout),
        "paid_on": format_date(payout.paid_at.astimezone(ZoneInfo(settings.timezone)).date(), "medium",
                               locale=locale) if payout.paid_at else "",
    }


def statement_of(payout_id: str) -> dict[str, Any]:
    """The statement of a stored payout, read as its provider would (its own lines only)."""
    payout = db.session.get(Payout, payout_id)
    provider = db.session.get(Provider, payout.provider_id)
    settings = db.session.get(TenantSettings, (payout.tenant_id, payout.livemode))
    as_provider = Principal(payout.tenant_id, payout.livemode, "provider", payout.provider_id, "statement")
    lines = payout_lines(as_provider, payout.id, STATEMENT_LINES).data
    invoice_ids = sorted({line.invoice_id for line in lines})
    numbers = dict(db.session.execute(sa.select(Invoice.id, Invoice.number)
                                      .where(in_ids(Invoice.id, invoice_ids))).all()) if invoice_ids else {}
    return statement_context(payout, payout.run, provider, lines, numbers, settings, source_kinds(lines))


def source_kinds(lines: Sequence[PayoutLine]) -> dict[str, str]:
    """source id -> payment, refund or settled, for the lines shown."""
    source_ids = sorted({line.source_id for line in lines})
    if not source_ids:
        return {}
    return dict(db.session.execute(sa.select(PayoutSource.source_id, PayoutSource.kind)
                                   .where(in_ids(PayoutSource.source_id, source_ids))).all())


def statement_filename(context: dict[str, Any]) -> str:
    return f"payout-statement-{context['payout_id']}.pdf"


def render_statement(renderer, context: dict[str, Any]) -> bytes:
    """The statement's PDF, by the renderer adapter (consolidate.render)."""
    return renderer.render(TEMPLATE, context)
