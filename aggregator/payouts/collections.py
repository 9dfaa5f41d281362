"""What each source of a payout collected of its invoice's bills: the invoice's parts
(consolidate/lines.py) and the share rules of revenue/ (the lines of partial collections, a
payout's lines, the period's payout report all start from here)."""
from __future__ import annotations

from typing import Iterator, Sequence

import sqlalchemy as sa

from ..consolidate.lines import invoice_parts_of_many
from ..consolidate.models import Invoice
from ..db import db, in_ids
from ..revenue import shares
from ..revenue.parts import InvoiceParts
from .models import PayoutSource


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
