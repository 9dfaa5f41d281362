"""An invoice's parts as the database holds them (shares.InvoiceParts): its bill lines derived
like invoice_service.invoice_lines, each with its revenue share and its provider's recorded rate
for the invoice's period, its tax and its applied credits. Read by the ledger (journals of
payments, refunds, write-offs) and by the payouts (the lines of partial collections, a payout's
lines, the period's payout report)."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator, Sequence

import sqlalchemy as sa

from ..consolidate.invoice_service import invoice_lines
from ..consolidate.invoices import InvoiceDraft, Totals
from ..consolidate.models import Invoice
from ..db import db, in_ids, run
from ..ingest.models import Bill
from . import shares, terms
from .models import PayoutSource


def invoice_parts_of(invoices: Sequence[Invoice]) -> dict[str, shares.InvoiceParts]:
    """invoice id -> its parts (two queries per period, plus one for the bills' terms)."""
    lines = invoice_lines(list(invoices))
    bill_ids = [line.bill_id for ls in lines.values() for line in ls if line.bill_id]
    revenue_share = dict(run(sa.select(Bill.id, Bill.revenue_share).where(in_ids(Bill.id, bill_ids))).all()) \
        if bill_ids else {}
    rates: dict[tuple, dict[str, Decimal]] = {}
    parts = {}
    for invoice in invoices:
        key = (invoice.tenant_id, invoice.livemode, invoice.period_start)
        if key not in rates:
            rates[key] = terms.rates_of(*key)
        period_rates = rates[key]
        invoice_terms = {line.bill_id: (revenue_share[line.bill_id], period_rates.get(line.provider_id, Decimal(0)))
                         for line in lines[invoice.id] if line.bill_id}
        draft = InvoiceDraft(invoice.currency, Decimal(invoice.tax_rate), tuple(lines[invoice.id]),
                             Totals(invoice.subtotal, invoice.tax, invoice.total, invoice.carried_credit))
        parts[invoice.id] = shares.invoice_parts(draft, invoice_terms)
    return parts


def source_lines(sources: Sequence[PayoutSource], batch: int = 200
                 ) -> Iterator[tuple[PayoutSource, shares.InvoiceParts, shares.Collection]]:
    """Each source paid out, with its invoice's parts and its lines (shares.lines_of_source: a
    payment's or refund's after what its invoice had collected before it, a settled invoice's
    whole split), which is what build_payouts paid out of it. Invoices are read `batch` sources
    at a time."""
    for start in range(0, len(sources), batch):
        chunk = sources[start:start + batch]
        invoices = db.session.scalars(sa.select(Invoice).where(in_ids(Invoice.id, {s.invoice_id for s in chunk}))).all()
        parts = invoice_parts_of(list(invoices))
        for source in chunk:
            invoice = parts[source.invoice_id]
            yield source, invoice, shares.lines_of_source(invoice, source.collected_before, source.amount,
                                                          settled=source.kind == "settled")
