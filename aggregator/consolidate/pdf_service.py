"""Invoice PDFs: rendered once an invoice is finalized, by whichever worker claims it, stored
once, announced by `invoice.pdf_ready`. Rendering never blocks finalization: a failure is
recorded on the invoice and retried with backoff."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from .. import due
from ..accounts.logos import logo_problem
from ..accounts.models import TenantSettings
from ..auth import Principal
from ..catalog.models import SubscriptionCharge
from ..db import db, in_ids, run, skip_locked
from ..errors import NotFound
from ..events.service import NewEvent, record_one
from ..faults import crash_point
from ..metering.models import UsageCharge
from ..testmode import TestClockRecord
from .document import DocumentLine, Payment, address_lines, invoice_document, plan_fee_details, usage_details
from .einvoice_service import with_einvoice
from .invoice_service import find_invoice, invoice_lines, rate_text
from .line_export import file_name, lines_csv_bytes, provider_names
from .models import Invoice
from .parties import payment_of, treatment_of
from .render import Attachment
from .snapshots import columns, invoice_snapshot

log = logging.getLogger(__name__)

RENDER_BATCH_PER_PROCESS = 20  # invoices per rendering process per claim
_RETRY_BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
                  timedelta(hours=6))  # then every 6 hours


@dataclass
class RenderReport:
    rendered: int = 0
    failed: int = 0


def _lease(count: int) -> timedelta:
    """How long a claim of `count` invoices lasts: well beyond rendering them (~0.1 s each)."""
    return due.lease(timedelta(seconds=60 + 2 * count))


def claim_pdfs(now: datetime, limit: int, *, tenant_id: str | None = None, livemode: bool | None = None,
               only: Sequence[str] | None = None, retry_now: bool = False) -> list[str]:
    """Claim up to `limit` finalized invoices that have no PDF, are not claimed by a worker, and
    (unless `retry_now`) are not waiting to retry a failure; and commit. Several workers
    claiming at once each get others (SKIP LOCKED on PostgreSQL; SQLite serializes writers)."""
    invoices = Invoice.__table__.c
    ready = (sa.select(invoices.id)
             .where(invoices.number.is_not(None), invoices.pdf_sha256.is_(None),
                    sa.or_(invoices.pdf_locked_until.is_(None), invoices.pdf_locked_until < now))
             .order_by(invoices.id).limit(limit))
    if not retry_now:
        ready = ready.where(sa.or_(invoices.pdf_retry_at.is_(None), invoices.pdf_retry_at <= now))
    if tenant_id is not None:
        ready = ready.where(invoices.tenant_id == tenant_id, invoices.livemode == livemode)
    if only is not None:
        ready = ready.where(invoices.id.in_(list(only)))
    ready = skip_locked(ready)
    ids = db.session.execute(sa.update(Invoice.__table__).where(invoices.id.in_(ready))
                             .values(pdf_locked_until=now + _lease(limit))
                             .returning(invoices.id)).scalars().all()
    db.session.commit()
    if ids:
        crash_point("pdf.claim.after_commit")
    return sorted(ids)


def render_claimed(invoice_ids: Sequence[str], adapters, processes: int = 1) -> RenderReport:
    """Render and store the PDFs of claimed invoices (on `processes` processes when more than
    one: see the renderer's render_many)."""
    report = RenderReport()
    invoices = [db.session.get(Invoice, invoice_id) for invoice_id in invoice_ids]
    jobs, built = [], []
    for invoice in invoices:
        try:
            jobs.append((invoice.template, with_einvoice(invoice, invoice_document_for(invoice))))
            built.append(invoice)
        except Exception as exc:  # a document that cannot be built: recorded like a failed render
            _record_failure(invoice, exc, report, adapters.clocks.base.now())
    for invoice, result in zip(built, adapters.renderer.render_many(jobs, processes=processes)):
        _store(invoice, result, adapters, report)
    return report


def render_pending(adapters, *, tenant_id: str | None = None, livemode: bool | None = None,
                   only: Sequence[str] | None = None, processes: int = 1, retry_now: bool = False,
                   on_batch: Callable[[RenderReport], None] | None = None) -> RenderReport:
    """Claim and render, batch after batch, every PDF that is due (of one lane, or only of the
    invoices given): what the CLI, the API and the test clock run in their own process.
    `on_batch` is told the report so far after each batch (a progress bar)."""
    report, batch = RenderReport(), RENDER_BATCH_PER_PROCESS * max(1, processes)
    while ids := claim_pdfs(adapters.clocks.base.now(), batch, tenant_id=tenant_id, livemode=livemode,
                            only=only, retry_now=retry_now):
        done = render_claimed(ids, adapters, processes)
        report.rendered += done.rendered
        report.failed += done.failed
        retry_now = False  # a failure in this run waits for its backoff
        if on_batch:
            on_batch(report)
    return report


def pdfs_pending(tenant_id: str, livemode: bool) -> int:
    """How many finalized invoices of the lane have no PDF yet (rendering's work left)."""
    invoices = Invoice.__table__.c
    return db.session.scalar(sa.select(sa.func.count()).where(
        invoices.tenant_id == tenant_id, invoices.livemode == livemode, invoices.number.is_not(None),
        invoices.pdf_sha256.is_(None)))


def backlog() -> tuple[int, datetime | None]:
    """Finalized invoices without a PDF, and when the oldest live-mode one was finalized (test
    mode's instants are its clocks', not real time)."""
    invoices = Invoice.__table__.c
    row = db.session.execute(sa.select(sa.func.count(),
                                       sa.func.min(sa.case((invoices.livemode, invoices.finalized_at))))
                             .where(invoices.number.is_not(None), invoices.pdf_sha256.is_(None))).one()
    return row[0], row[1]


def _store(invoice: Invoice, result: bytes | Exception, adapters, report: RenderReport) -> None:
    now = adapters.clocks.base.now()
    if isinstance(result, Exception):
        _record_failure(invoice, result, report, now)
        return
    digest = hashlib.sha256(result).hexdigest()
    key = f"invoices/{invoice.tenant_id}/{'live' if invoice.livemode else 'test'}/{invoice.id}-{digest[:16]}.pdf"
    try:
        adapters.storage.put(key, result)
    except Exception as exc:  # storage trouble: record it, carry on, retry later
        _record_failure(invoice, exc, report, now)
        return
    crash_point("pdf.store.after_file")
    # Once stored, a PDF never changes: the conditional update keeps the first one recorded.
    stored = db.session.execute(
        sa.update(Invoice).where(Invoice.id == invoice.id, Invoice.pdf_sha256.is_(None))
        .values(pdf_path=key, pdf_sha256=digest, pdf_error=None, pdf_locked_until=None, pdf_retry_at=None)
        .execution_options(synchronize_session=False)).rowcount
    if stored:
        db.session.refresh(invoice)
        record_one(invoice.tenant_id, invoice.livemode, _ready_at(invoice, now),
                   NewEvent("invoice.pdf_ready", invoice.id,
                            {"object": invoice_snapshot(columns(invoice), invoice.customer.external_id)}))
    db.session.commit()
    crash_point("pdf.store.after_commit")
    report.rendered += 1


def _ready_at(invoice: Invoice, now: datetime) -> datetime:
    """When `invoice.pdf_ready` happened in the tenant's time: now in live mode; in test mode the
    test clock's time, which a PDF rendered right after its invoice was finalized never precedes."""
    if invoice.livemode:
        return now
    clock = db.session.get(TestClockRecord, invoice.tenant_id)
    return max(clock.now if clock else now, invoice.finalized_at)


def _record_failure(invoice: Invoice, exc: BaseException, report: RenderReport, now: datetime) -> None:
    log.error("rendering or storing the PDF of invoice %s failed: %s: %s", invoice.id, type(exc).__name__, exc,
              exc_info=exc)
    attempts = invoice.pdf_attempts + 1
    invoice.pdf_error = f"{type(exc).__name__}: {exc}"[:500]
    invoice.pdf_attempts = attempts
    invoice.pdf_retry_at = now + _RETRY_BACKOFF[min(attempts, len(_RETRY_BACKOFF)) - 1]
    invoice.pdf_locked_until = None
    db.session.commit()
    report.failed += 1


# --- the document ----------------------------------------------------------------------------

#: Templates that show the v3 document: parties, tax summary, payment, the summarized detail.
_SUMMARIZING_TEMPLATES = frozenset({"invoice_v3.html"})


def invoice_document_for(invoice: Invoice) -> dict:
    """The template values of the invoice's PDF: who issued it to whom as recorded at its
    finalization (invoices.parties; the live settings for an invoice finalized before), its tax
    treatment, how it is paid, each plan or usage line's rating in words; past the tenant's line
    limit (v3), every line attached as CSV (render.Attachment, "Supplement")."""
    settings = db.session.get(TenantSettings, (invoice.tenant_id, invoice.livemode))
    lines = invoice_lines([invoice])[invoice.id]
    names = provider_names(line.provider_id for line in lines)
    customer = invoice.customer
    issued = invoice.finalized_at or invoice.created_at
    v3 = invoice.template in _SUMMARIZING_TEMPLATES
    bill_count = sum(1 for line in lines if line.kind == "bill")
    large = v3 and bill_count > settings.invoice_line_limit
    details = {} if large or not v3 else _rating_details([line.bill_id for line in lines if line.bill_id])
    document = invoice_document(
        invoice={"number": invoice.number, "currency": invoice.currency,
                 "issue_date": issued.astimezone(ZoneInfo(settings.timezone)).date(),
                 "period_start": invoice.period_start, "period_end": invoice.period_end,
                 "due_date": invoice.due_date, "subtotal": invoice.subtotal, "tax": invoice.tax,
                 "tax_rate": invoice.tax_rate, "total": invoice.total, "amount_due": invoice.amount_due,
                 "carried_credit": invoice.carried_credit},
        lines=[_document_line(line, details.get(line.bill_id, ())) for line in lines],
        provider_names=names,
        tenant={"legal_name": settings.legal_name or settings.name, "logo": _usable_logo(settings),
                "address_lines": address_lines(settings.address), "address": settings.address,
                "tax_ids": settings.tax_ids or [], "tax_name": settings.tax_name, "title": settings.invoice_title},
        customer={"name": customer.name or customer.external_id, "email": customer.email,
                  "external_id": customer.external_id, "address_lines": address_lines(customer.address),
                  "address": customer.address, "tax_ids": customer.tax_ids or []},
        locale=settings.locale,
        parties=invoice.parties,
        tax_treatment=treatment_of(invoice),
        payment=_payment(*payment_of(invoice, settings, customer)),
        line_limit=settings.invoice_line_limit if v3 else None,
        lines_file=file_name(invoice) if large else None,
    )
    if large:
        document["attachments"] = [Attachment(
            file_name(invoice), lines_csv_bytes(lines, names), "text/csv",
            f"Every line of invoice {invoice.number or invoice.id}", "Supplement")]
    return document


def _document_line(line, details: tuple[str, ...] | None) -> DocumentLine:
    """`details`: a plan fee's rating in words; None for a usage charge (its words are split)."""
    description = line.description
    if details is None:
        description, details = usage_details(description)
    return DocumentLine(line.kind, line.provider_id, description, line.service_start, line.service_end, line.amount,
                        line.original_amount, line.original_currency, rate_text(line.fx_rate), details)


def _payment(card: bool, instructions: dict | None) -> Payment:
    """Charged on the due date only when the tenant charges cards and the customer has one (as
    kept at finalization: parties.payment_of); else the tenant's bank details if it has some;
    else when it is due."""
    if card:
        return Payment("card")
    if instructions:
        return Payment("transfer", instructions)
    return Payment("due")


def _rating_details(bill_ids: list[str]) -> dict[str, tuple[str, ...] | None]:
    """bill id -> how it was rated, for the bills rated from plans and usage: a plan fee's
    timing, proration and quantity (subscription_charges); None for a usage charge, whose
    included units and tiers are in the words rating wrote (document.usage_details)."""
    if not bill_ids:
        return {}
    fees = SubscriptionCharge.__table__.c
    out: dict[str, tuple[str, ...] | None] = {
        row.bill_id: plan_fee_details(row.kind, row.days, row.period_days, row.quantity)
        for row in run(sa.select(fees.bill_id, fees.kind, fees.days, fees.period_days, fees.quantity)
                       .where(in_ids(fees.bill_id, bill_ids)))}
    usage = UsageCharge.__table__.c
    out.update((bill_id, None) for bill_id in run(sa.select(usage.bill_id).where(in_ids(usage.bill_id, bill_ids)))
               .scalars())
    return out


def _usable_logo(settings: TenantSettings) -> str | None:
    """The tenant's logo, or None if it cannot be read (stored before logos were checked): the
    invoice is rendered without it rather than not at all."""
    if settings.logo and (problem := logo_problem(settings.logo)):
        log.warning("tenant %s's logo is left out of its invoices: %s", settings.tenant_id, problem)
        return None
    return settings.logo


def invoice_pdf(principal: Principal, invoice_id: str, storage) -> bytes:
    invoice = find_invoice(principal, invoice_id)
    if invoice.pdf_path is None:
        raise NotFound("This invoice has no PDF yet: drafts have none, and a finalized invoice's "
                       "PDF is rendered shortly after finalization.", code="pdf_not_ready")
    return storage.get(invoice.pdf_path)
