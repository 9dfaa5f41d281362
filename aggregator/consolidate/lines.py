"""An invoice's lines as it shows them (`invoice_lines`: derived from its bills, not stored,
but for a void invoice's snapshot and the credit lines), and what it is made of for the share
rules of revenue/ (`invoice_parts_of_many`: its bill lines, each bill's split at the rate its
provider's bills of that period were invoiced on, its tax and its applied credits). The ledger's
journals (through the facts the transitions publish) and the payouts both start from here."""
from __future__ import annotations

import json
from decimal import Decimal
from itertools import groupby
from typing import Sequence

import sqlalchemy as sa

from ..db import in_ids, run
from ..ingest.models import Bill
from ..revenue.parts import InvoiceParts, invoice_parts
from .invoices import BillItem, Line, build_invoice
from .models import Invoice, InvoiceLine
from .period_rates import rates_of


def _recorded_rates(invoice: Invoice) -> dict[tuple[str, str], Decimal]:
    """The rates the close converted the invoice's bills at, as build_invoice takes them."""
    if not invoice.fx_rates:
        return {}
    return {(base, invoice.currency): Decimal(rate) for base, rate in json.loads(invoice.fx_rates).items()}


def _stored_line(row: InvoiceLine, currency: str) -> Line:
    return Line(row.kind, row.amount, currency, row.description, row.bill_id, row.provider_id, row.credit_id,
                row.service_start, row.service_end, row.original_amount, row.original_currency,
                Decimal(row.fx_rate) if row.fx_rate is not None else None)


def invoice_lines(invoices: list[Invoice]) -> dict[str, list[Line]]:
    """invoice id -> its lines. A void invoice's lines are its stored snapshot. Otherwise the
    bill lines are the bills of its customer and period that are not cancelled, built by the
    function that computed its totals at the close (build_invoice, with the recorded rates),
    followed by its stored credit lines. One query per period for all the invoices given."""
    lines = {i.id: [] for i in invoices}
    live = [i for i in invoices if i.status != "void"]
    bills = Bill.__table__.c
    for (tenant_id, livemode, start), group in groupby(
            sorted(live, key=lambda i: (i.tenant_id, i.livemode, i.period_start)),
            key=lambda i: (i.tenant_id, i.livemode, i.period_start)):
        by_customer = {i.customer_id: i for i in group}
        items: dict[str, list[BillItem]] = {c: [] for c in by_customer}
        for r in run(sa.select(bills.customer_id, bills.id, bills.provider_id, bills.amount, bills.currency,
                               bills.description, bills.service_period_start, bills.service_period_end)
                     .where(bills.tenant_id == tenant_id, bills.livemode == livemode,
                            bills.period_start == start, bills.status == "pending",
                            bills.customer_id.in_(list(by_customer)))):
            items[r[0]].append(BillItem(*r[1:]))
        for customer_id, invoice in by_customer.items():
            draft = build_invoice(invoice.currency, Decimal(invoice.tax_rate), items[customer_id], [],
                                  _recorded_rates(invoice))
            lines[invoice.id] = list(draft.lines)
    for invoice in invoices:
        lines[invoice.id] += [_stored_line(row, invoice.currency) for row in invoice.stored_lines
                              if invoice.status == "void" or row.kind == "credit"]
    return lines



def invoice_parts_of(invoice: Invoice) -> InvoiceParts:
    """The parts of one invoice (see invoice_parts_of_many)."""
    return invoice_parts_of_many([invoice])[invoice.id]


def invoice_parts_of_many(invoices: Sequence[Invoice]) -> dict[str, InvoiceParts]:
    """invoice id -> its parts: one query for the lines per period, one for the bills' terms and
    one for the recorded rates per period."""
    lines = invoice_lines(list(invoices))
    bill_ids = sorted({line.bill_id for ls in lines.values() for line in ls if line.bill_id is not None})
    bills = Bill.__table__.c
    terms = {row[0]: row[1:] for row in run(sa.select(bills.id, bills.revenue_share, bills.platform_fee)
                                             .where(in_ids(bills.id, bill_ids)))} if bill_ids else {}
    fees = {bill_id: fee for bill_id, (_, fee) in terms.items() if fee is not None}
    rates: dict[tuple[str, bool, object], dict[str, Decimal]] = {}
    parts = {}
    for invoice in invoices:
        key = (invoice.tenant_id, invoice.livemode, invoice.period_start)
        if key not in rates:
            rates[key] = rates_of(*key)
        period_rates = rates[key]
        its_lines = lines[invoice.id]
        parts[invoice.id] = invoice_parts(invoice.currency, its_lines, invoice.tax, {
            line.bill_id: (terms[line.bill_id][0], period_rates[line.provider_id])
            for line in its_lines if line.bill_id is not None}, fees)
    return parts
