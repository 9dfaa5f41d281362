"""The ledger (admin keys): balances per account and currency, and the journals."""
from __future__ import annotations

from flask import Response, stream_with_context

from ..fields import page_schema
from ..web import Blueprint, current, requires
from . import export_service, service
from .export import EXTENSIONS, MEDIA_TYPES
from .schemas import AccountListArgs, AccountListSchema, JournalListArgs, JournalSchema, LedgerExportArgs

blp = Blueprint("ledger", __name__, url_prefix="/v1/ledger", description="Ledger")


@blp.route("/accounts", methods=["GET"])
@requires("admin")
@blp.arguments(AccountListArgs(), location="query")
@blp.response(200, AccountListSchema)
def list_accounts(args):
    """The balance of every account of this tenant and mode, per currency."""
    return {"data": service.balances(current(), **args)}


@blp.route("/journals", methods=["GET"])
@requires("admin")
@blp.arguments(JournalListArgs(), location="query")
@blp.response(200, page_schema(JournalSchema, "JournalPage"))
def list_journals(args):
    """Journals with their entries, newest first."""
    return service.list_journals(current(), **args)


@blp.route("/journals/<journal_id>", methods=["GET"])
@requires("admin")
@blp.response(200, JournalSchema)
def get_journal(journal_id):
    return service.get_journal(current(), journal_id)


@blp.route("/export", methods=["GET"])
@requires("admin")
@blp.arguments(LedgerExportArgs(), location="query")
@blp.doc(responses={"200": {
    "description": "Every journal of the range: Beancount text or a CSV row per entry (streamed)",
    "content": {"text/plain": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}}}})
def export(args):
    """The books for an accountant's tools (docs/invoices.md, Books and payout documents): every
    journal posted from `from` to `to` (the tenant's days, both included), as Beancount
    (`format=beancount`, the default: each account opened before its first use) or a flat CSV."""
    form = args.pop("format")
    found = export_service.ledger_export(current(), **args)
    return Response(stream_with_context(export_service.chunks(found, form)), mimetype=MEDIA_TYPES[form], headers={
        "Content-Disposition": f'attachment; filename="{found.name}.{EXTENSIONS[form]}"'})
