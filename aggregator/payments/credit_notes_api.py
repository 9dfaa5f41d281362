"""Credit notes (admin keys): correct a finalized invoice by a credit note, settled as it says;
read credit notes and their PDFs."""
from __future__ import annotations

from flask import Response

from .. import adapters
from ..consolidate import credit_note_service
from ..consolidate.schemas import CreditNoteInputSchema, CreditNoteListArgs, CreditNoteSchema
from ..fields import page_schema
from ..ingest.schemas import OptionalIdempotencyHeader
from ..web import Blueprint, clock_now, current, requires
from . import crediting_service

blp = Blueprint("credit_notes", __name__, url_prefix="/v1", description="Credit notes")

CreditNotePage = page_schema(CreditNoteSchema, "CreditNotePage")


@blp.route("/invoices/<invoice_id>/credit_notes", methods=["POST"])
@requires("admin")
@blp.arguments(OptionalIdempotencyHeader(), location="headers", as_kwargs=True)
@blp.arguments(CreditNoteInputSchema())
@blp.response(201, CreditNoteSchema)
def create_credit_note(body, invoice_id, idempotency_key=None):
    """Credit lines of a finalized invoice (`lines`: each line's bill and an amount before tax,
    or all that is left of it) or an amount of it (`amount`, tax included), and settle it:
    `refund`, `customer_balance` or `reduce_due`. An Idempotency-Key makes a retry return the
    same note. 409 `invoice_not_creditable`, `credit_exceeds_line`, `credit_exceeds_invoice`,
    `credit_not_settleable`, `refund_exceeds_payment`, `idempotency_key_reused`; 422 naming the field."""
    principal = current()
    return crediting_service.credit_invoice(principal, invoice_id, body, clock_now(principal), adapters.current(),
                                            idempotency_key)


@blp.route("/credit_notes", methods=["GET"])
@requires("admin")
@blp.arguments(CreditNoteListArgs(), location="query")
@blp.response(200, CreditNotePage)
def list_credit_notes(args):
    """This tenant's credit notes in this mode, newest first; by invoice or customer."""
    return credit_note_service.list_credit_notes(current(), **args)


@blp.route("/credit_notes/<credit_note_id>", methods=["GET"])
@requires("admin")
@blp.response(200, CreditNoteSchema)
def get_credit_note(credit_note_id):
    return credit_note_service.get_credit_note(current(), credit_note_id)


@blp.route("/credit_notes/<credit_note_id>/pdf", methods=["GET"])
@requires("admin")
@blp.doc(responses={"200": {"description": "The credit note PDF",
                            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
def credit_note_pdf(credit_note_id):
    note, pdf = credit_note_service.credit_note_pdf(current(), credit_note_id, adapters.current())
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="{note.number}.pdf"', "ETag": note.pdf_sha256})
