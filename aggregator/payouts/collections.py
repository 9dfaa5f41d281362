"""What an invoice is made of, read from the database for the share rules (revenue/): its
bill lines (derived as the invoice shows them, invoice_service.invoice_lines), each bill's split
at the rate its provider's bills of that period were invoiced on (terms.rates_of), its tax and
its applied credits. The ledger's journals and the payouts (the lines of partial collections, a
payout's lines, the period's payout report) both start from here."""
from __future__ import annotations

from decimal import Decimal
from typing import Iterator, Sequence

import sqlalchemy as sa

from ..consolidate.invoice_service import invoice_lines
from ..consolidate.models import Invoice
from ..db import db, in_ids, run
from ..ingest.models import Bill
from ..revenue import shares
from ..revenue.parts import InvoiceParts, invoice_parts
from . import terms
from .models import PayoutSource


def invoice_parts_of(invoice: Invoice) -> InvoiceParts:
    """The parts of one invoice (see invoice_parts_of_many)."""
    return invoice_parts_of_many([invoice])[invoice.id]


def invoice_parts_of_many(invoices: Sequence[Invoice]) -> dict[str, InvoiceParts]:
    """invoice id -> its parts: one query for the lines per period, one for the bills' terms and
    one for the recorded rates per period."""
    lines = invoice_lines(list(invoices))
    bill_ids = sorted({line.bill_id for ls in lines.values() for line in ls if line.bill_id is not None})
    bills = Bill.__table__.c
    revenue_share = dict(run(sa.select(bills.id, bills.revenue_share).where(in_ids(bills.id, bill_ids))).all()) \
        if bill_ids else {}
    rates: dict[tuple[str, bool, object], dict[str, Decimal]] = {}
    parts = {}
    for invoice in invoices:
        key = (invoice.tenant_id, invoice.livemode, invoice.period_start)
        if key not in rates:
            rates[key] = terms.rates_of(*key)
        period_rates = rates[key]
        its_lines = lines[invoice.id]
        parts[invoice.id] = invoice_parts(invoice.currency, its_lines, invoice.tax, {
            line.bill_id: (revenue_share[line.bill_id], period_rates[line.provider_id])
            for line in its_lines if line.bill_id is not None})
    return parts


def source_lines(sources: Sequence[PayoutSource], batch: int = 200
                 ) -> Iterator[tuple[PayoutSource, InvoiceParts, shares.Collection]]:
    """Each source paid out, with its invoice's parts and its lines (shares.lines_of_source: a
    payment's or refund's after what its invoice had collected before it, a settled invoice's
    whole split), which is what build_payouts paid out of it. Invoices are read `batch` sources
    at a time."""
    for start in range(0, len(sources), batch):
        chunk = sources[start:start + batch]
        invoices = db.session.scalars(sa.select(Invoice).where(in_ids(Invoice.id, {s.invoice_id for s in chunk}))).all()
        parts = invoice_parts_of_many(list(invoices))
        for source in chunk:
            invoice = parts[source.invoice_id]
            yield source, invoice, shares.lines_of_source(invoice, source.collected_before, source.amount,
                                                          settled=source.kind == "settled")
