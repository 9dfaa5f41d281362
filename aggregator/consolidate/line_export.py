"""An invoice's lines as CSV: every line, one row each, in the invoice's order. What
`GET /v1/invoices/{id}/lines.csv` streams and what a very large invoice's PDF carries attached
(the same bytes: one function writes both). Cells go through csv_cells (no formulas)."""
from __future__ import annotations

import io
from typing import Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa

from .. import csv_cells, money
from ..accounts.models import Provider
from ..auth import Principal
from ..db import db
from .invoice_service import find_invoice, rate_text
from .invoices import Line
from .lines import invoice_lines
from .models import Invoice

COLUMNS = ("line", "kind", "provider", "provider_name", "bill", "description", "service_start", "service_end",
           "amount", "currency", "original_amount", "original_currency", "fx_rate")
ROWS_PER_CHUNK = 1000


def csv_rows(lines: Sequence[Line], provider_names: Mapping[str, str]) -> Iterator[list]:
    """The rows after the header: amounts as the API's decimal strings, dates in ISO 8601."""
    for position, line in enumerate(lines, start=1):
        yield [position, line.kind, line.provider_id or "", provider_names.get(line.provider_id or "", ""),
               line.bill_id or "", line.description,
               line.service_start.isoformat() if line.service_start else "",
               line.service_end.isoformat() if line.service_end else "",
               money.format_amount(line.amount, line.currency), line.currency,
               money.format_amount(line.original_amount, line.original_currency)
               if line.original_currency and line.original_amount is not None else "",
               line.original_currency or "", rate_text(line.fx_rate) or ""]


def csv_chunks(lines: Sequence[Line], provider_names: Mapping[str, str]) -> Iterator[str]:
    """The CSV text, header first, ROWS_PER_CHUNK rows a chunk."""
    rows: Iterable[list] = csv_rows(lines, provider_names)
    buffer = io.StringIO()
    out = csv_cells.writer(buffer, lineterminator="\n")
    out.writerow(COLUMNS)
    for n, row in enumerate(rows, start=1):
        out.writerow(row)
        if n % ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def lines_csv_bytes(lines: Sequence[Line], provider_names: Mapping[str, str]) -> bytes:
    return "".join(csv_chunks(lines, provider_names)).encode()


def file_name(invoice: Invoice) -> str:
    return f"{invoice.number or invoice.id}-lines.csv"


def provider_names(provider_ids: Iterable[str | None]) -> dict[str, str]:
    ids = sorted({p for p in provider_ids if p})
    if not ids:
        return {}
    return dict(db.session.execute(sa.select(Provider.id, Provider.name).where(Provider.id.in_(ids))).all())


def invoice_lines_csv(principal: Principal, invoice_id: str) -> tuple[str, Iterator[str]]:
    """The file name and the CSV chunks of one of the principal's invoices (any status)."""
    invoice = find_invoice(principal, invoice_id)
    lines = invoice_lines([invoice])[invoice.id]
    return file_name(invoice), csv_chunks(lines, provider_names(line.provider_id for line in lines))
