"""What the consolidate area registers with aggregator.due: its due kinds (a period's close at
its end; a draft's finalization at its review deadline) and its queue (PDFs to render)."""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from ..db import db
from ..due import CatchUp, Kind, Lane, Queue, Unit, Worked
from ..periods.models import PeriodRecord
from . import close_service, invoice_service, pdf_service

CLOSE = "period.close"
FINALIZE = "invoice.finalize"


def _next_close(lane: Lane) -> Unit | None:
    """The earliest period of the lane that has not been closed (nor waits for something an
    operator must supply), due at its end."""
    row = db.session.execute(sa.select(PeriodRecord.start, PeriodRecord.end_at).where(
        PeriodRecord.tenant_id == lane.tenant_id, PeriodRecord.livemode == lane.livemode,
        PeriodRecord.status != "closed", PeriodRecord.waiting.is_(None))
        .order_by(PeriodRecord.start).limit(1)).first()
    return Unit(CLOSE, row.end_at, (row.start,)) if row else None


def _run_close(lane: Lane, unit: Unit, adapters) -> close_service.CloseReport:
    return close_service.close_period(lane.tenant_id, lane.livemode, unit.key[0], unit.due_at)


def _next_finalization(lane: Lane) -> Unit | None:
    deadline = invoice_service.oldest_draft_deadline(lane.tenant_id, lane.livemode)
    return Unit(FINALIZE, deadline) if deadline else None


def _run_finalization(lane: Lane, unit: Unit, adapters) -> int:
    return invoice_service.finalize_drafts_due(lane.tenant_id, lane.livemode, unit.due_at)


KINDS = [Kind(CLOSE, _next_close, _run_close), Kind(FINALIZE, _next_finalization, _run_finalization)]


def _render_batch(adapters, now, limit: int, lane: Lane | None) -> Worked:
    scope = {} if lane is None else {"tenant_id": lane.tenant_id, "livemode": lane.livemode}
    ids = pdf_service.claim_pdfs(now, limit, **scope)
    report = pdf_service.render_claimed(ids, adapters) if ids else pdf_service.RenderReport()
    return Worked(report.rendered, report.failed)


# Small claims (5 invoices, ~0.5 s of rendering): worker processes finish together, none left
# rendering a large last batch while the others idle (a claim is one cheap UPDATE).
PDF_QUEUE = Queue("pdf.render", _render_batch, batch=5, backlog=pdf_service.backlog)
QUEUES = [PDF_QUEUE]


@dataclass
class DueWorkSummary:
    """What a test clock advance ran, as its answer shows it."""

    closes: list[close_service.CloseReport]
    finalized: int
    pdfs: pdf_service.RenderReport


def summary(caught_up: CatchUp, pdfs: Worked) -> DueWorkSummary:
    return DueWorkSummary(caught_up.reports(CLOSE), sum(caught_up.reports(FINALIZE)),
                          pdf_service.RenderReport(pdfs.done, pdfs.failed))
