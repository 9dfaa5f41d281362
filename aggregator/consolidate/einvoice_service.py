"""E-invoices of finalized invoices: the EN 16931 data of an invoice read from the database
(einvoice.py writes it), served as XML and embedded in its PDF (PDF/A-3b with factur-x.xml).

What the e-invoice says is what the invoice was issued with: the parties and tax treatment kept
at finalization (parties.py: `parties_of`, `treatment_of`; for invoices finalized before those
were kept, the tenant's and customer's settings as they are now), paid as the PDF says
(issued.py).
"""
from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..accounts.models import Provider, TenantSettings
from ..db import db
from ..errors import Conflict
from . import einvoice, ubl
from .einvoice import EInvoice
from .invoices import Line
from .lines import invoice_lines
from .models import CreditNote, Invoice
from .parties import parties_of, payment_of, treatment_of
from .render import Attachment

#: The syntaxes an e-invoice is served in: CII (what Factur-X embeds) and UBL 2.1.
FORMATS = {"cii": einvoice.to_cii, "ubl": ubl.to_ubl}


class InvoiceNotFinalized(Conflict):
    code = "invoice_not_finalized"


def _provider_names(lines) -> dict[str, str]:
    """provider id -> name, for the lines' providers (line_export.provider_names' query: that
    module reads invoices through invoice_service, which needs credit notes, which need this)."""
    ids = {line.provider_id for line in lines if line.provider_id}
    return dict(db.session.execute(sa.select(Provider.id, Provider.name).where(Provider.id.in_(ids))).all()) \
        if ids else {}


def einvoice_for(invoice: Invoice) -> EInvoice:
    """The e-invoice of a finalized invoice (409 invoice_not_finalized for a draft)."""
    if invoice.number is None:
        raise InvoiceNotFinalized(f"Invoice {invoice.id} is a draft: only a finalized invoice has an e-invoice.")
    settings = db.session.get(TenantSettings, (invoice.tenant_id, invoice.livemode))
    customer = invoice.customer
    lines = invoice_lines([invoice])[invoice.id]
    names = _provider_names(lines)
    parties = parties_of(invoice)
    card, instructions = payment_of(invoice, settings, customer)
    issued = invoice.finalized_at.astimezone(ZoneInfo(settings.timezone)).date()
    return einvoice.einvoice_of(
        invoice={"number": invoice.number, "issue_date": issued, "currency": invoice.currency,
                 "tax_rate": invoice.tax_rate, "subtotal": invoice.subtotal, "tax": invoice.tax,
                 "total": invoice.total, "carried_credit": invoice.carried_credit, "due_date": invoice.due_date,
                 "period_start": invoice.period_start, "period_end": invoice.period_end},
        lines=lines,
        seller=einvoice.party_of(parties.get("seller"), name_key="legal_name", seller=True,
                                 party_id=invoice.tenant_id),
        buyer=einvoice.party_of(parties.get("buyer"), name_key="name", seller=False, email=customer.email),
        treatment=treatment_of(invoice), provider_names=names,
        payment_means=einvoice.payment_means_of(card=card, instructions=instructions,
                                                currency=invoice.currency, due_date=invoice.due_date),
        buyer_reference=customer.external_id)


def credit_note_einvoice_for(note: CreditNote) -> EInvoice:
    """The e-invoice of a credit note: type 381, its own number, date and amounts (credited,
    positive), the invoice it credits as the preceding invoice, that invoice's parties, tax
    treatment and rate. A note of an amount rather than of lines is one line of that amount."""
    invoice = note.invoice
    settings = db.session.get(TenantSettings, (note.tenant_id, note.livemode))
    zone = ZoneInfo(settings.timezone)
    lines = [Line("credit_note", line.amount, note.currency, line.description, bill_id=line.bill_id,
                  provider_id=line.provider_id) for line in note.lines] or [
        Line("credit_note", note.subtotal, note.currency, f"Credit of invoice {invoice.number}")]
    parties = parties_of(invoice)
    return einvoice.einvoice_of(
        invoice={"number": note.number, "issue_date": note.created_at.astimezone(zone).date(),
                 "currency": note.currency, "tax_rate": invoice.tax_rate, "tax": note.tax, "total": note.total,
                 "carried_credit": 0, "period_start": invoice.period_start, "period_end": invoice.period_end},
        lines=lines,
        seller=einvoice.party_of(parties.get("seller"), name_key="legal_name", seller=True,
                                 party_id=invoice.tenant_id),
        buyer=einvoice.party_of(parties.get("buyer"), name_key="name", seller=False, email=note.customer.email),
        treatment=treatment_of(invoice), provider_names=_provider_names(lines),
        payment_means=None, buyer_reference=note.customer.external_id, type_code=einvoice.CREDIT_NOTE,
        preceding_number=invoice.number,
        preceding_date=(invoice.finalized_at or invoice.created_at).astimezone(zone).date())


def invoice_einvoice(invoice: Invoice, format: str = "cii") -> tuple[str, bytes]:
    """GET /v1/invoices/{id}/einvoice: a finalized invoice's XML in `format` and its file name
    (NUMBER.xml, NUMBER.ubl.xml), 409 for a draft."""
    xml = FORMATS[format](einvoice_for(invoice))
    return f"{invoice.number}{'' if format == 'cii' else '.' + format}.xml", xml


def with_einvoice(invoice: Invoice, context: dict[str, Any]) -> dict[str, Any]:
    """The invoice PDF's rendering context made a Factur-X e-invoice (see facturx_context)."""
    return facturx_context(context, einvoice.to_cii(einvoice_for(invoice)))


def facturx_context(context: dict[str, Any], xml: bytes) -> dict[str, Any]:
    """A document's rendering context made a Factur-X PDF: PDF/A-3b, `xml` (an invoice's or a
    credit note's CII) attached as factur-x.xml (relationship Data) before any other attachment,
    and the Factur-X XMP properties."""
    attachment = Attachment(einvoice.FACTURX_FILENAME, xml, "text/xml", "Factur-X e-invoice (EN 16931)", "Data")
    return {**context, "attachments": [attachment, *(context.get("attachments") or ())],
            "pdf_variant": "pdf/a-3b", "xmp_rdf": einvoice.FACTURX_XMP}
