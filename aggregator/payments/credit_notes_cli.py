"""`aggregator credit-notes …`: correct a finalized invoice by a credit note, read credit notes,
save their PDFs."""
from __future__ import annotations

from pathlib import Path

import click

from .. import adapters
from ..commands import AreaGroup, json_option, list_options, now_for, print_object, print_page, say, tenant_scoped
from ..consolidate import credit_note_service
from ..consolidate.credit_notes import REASONS
from ..consolidate.models import SETTLEMENTS
from ..consolidate.schemas import CreditNoteSchema
from ..errors import InvalidInput
from . import crediting_service

credit_notes = AreaGroup("credit-notes", help="Credit notes: correct a finalized invoice, refunding, crediting the "
                                              "customer's balance or reducing what it asks.")

_COLUMNS = ["id", "number", "invoice_number", "customer_external_id", "total", "currency", "settlement", "reason",
            "created_at"]


def _line(text: str) -> dict:
    bill, _, amount = text.partition("=")
    if not bill:
        raise InvalidInput.on("lines", f"{text!r}: write a line as BILL or BILL=AMOUNT.")
    return {"invoice_line": bill, "amount": amount or None}


@credit_notes.command("create")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@click.option("--line", "lines", multiple=True, metavar="BILL[=AMOUNT]",
              help="A line to credit: the bill it shows, and how much before tax (default: all that is left of it). "
                   "Repeat for several.")
@click.option("--amount", default=None, help="Instead of lines: an amount of the invoice, tax included, e.g. 10.00.")
@click.option("--reason", type=click.Choice(REASONS), required=True)
@click.option("--settlement", type=click.Choice(SETTLEMENTS), default=None,
              help="Default: reduce_due for an open invoice, refund for one with money collected.")
@click.option("--memo", default=None, help="Shown on the credit note.")
@click.option("--idempotency-key", default=None, help="Run again with the same key: the same note, not a second.")
@json_option
def create(principal, invoice_id, lines, amount, reason, settlement, memo, idempotency_key, as_json):
    """Issue a credit note of INVOICE and settle it."""
    body = {"lines": [_line(text) for text in lines] or None, "amount": amount, "reason": reason,
            "settlement": settlement, "memo": memo}
    note = crediting_service.credit_invoice(principal, invoice_id, body, now_for(principal), adapters.current(),
                                            idempotency_key)
    print_object(note, CreditNoteSchema(), "Credit note", as_json)


@credit_notes.command("list")
@tenant_scoped
@list_options
@click.option("--invoice", default=None)
@click.option("--customer", default=None)
@json_option
def list_credit_notes(principal, limit, starting_after, invoice, customer, as_json):
    """The tenant's credit notes in this mode, newest first."""
    page = credit_note_service.list_credit_notes(principal, limit, starting_after, invoice, customer)
    print_page(page, CreditNoteSchema(), _COLUMNS, f"Credit notes ({principal.mode} mode)", as_json)


@credit_notes.command("show")
@tenant_scoped
@click.argument("credit_note_id", metavar="CREDIT_NOTE")
@json_option
def show(principal, credit_note_id, as_json):
    """One credit note, with its lines."""
    print_object(credit_note_service.get_credit_note(principal, credit_note_id), CreditNoteSchema(), "Credit note",
                 as_json)


@credit_notes.command("pdf")
@tenant_scoped
@click.argument("credit_note_id", metavar="CREDIT_NOTE")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write (default: NUMBER.pdf; '-' for standard output).")
def pdf(principal, credit_note_id, output):
    """Save a credit note's PDF (rendered now if it has none yet)."""
    note, document = credit_note_service.credit_note_pdf(principal, credit_note_id, adapters.current())
    if str(output) == "-":
        click.get_binary_stream("stdout").write(document)
        return
    output = output or Path(f"{note.number}.pdf")
    output.write_bytes(document)
    say(f"Wrote {output} ({len(document):,} bytes).")
