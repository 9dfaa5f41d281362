"""The ledger (admin keys): balances per account and currency, and the journals."""
from __future__ import annotations

from ..fields import page_schema
from ..web import Blueprint, current, requires
from . import service
from .schemas import AccountListArgs, AccountListSchema, JournalListArgs, JournalSchema

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
