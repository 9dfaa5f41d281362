"""`aggregator refunds …`: refund (part of) a paid invoice, read refunds."""
from __future__ import annotations

import click

from .. import adapters as edge
from ..commands import AreaGroup, json_option, list_options, now_for, print_object, print_page, tenant_scoped
from . import refund_service
from .models import REFUND_REASONS
from .schemas import RefundSchema

refunds = AreaGroup("refunds", help="Refunds: give back (part of) what a customer paid, through Stripe or manually.")

_COLUMNS = ["id", "invoice", "payment", "amount", "currency", "gateway", "status", "reason", "created_at"]


@refunds.command("create")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@click.option("--amount", default=None, help="In the invoice's currency, e.g. 10.00 (default: all that is left "
                                            "to refund of the payment).")
@click.option("--reason", type=click.Choice(REFUND_REASONS), default=None)
@click.option("--note", default=None, help="For the platform's records.")
@click.option("--payment", default=None, help="The payment to refund (default: the latest succeeded one with "
                                              "enough left).")
@json_option
def create(principal, invoice_id, amount, reason, note, payment, as_json):
    """Refund a payment of INVOICE: through Stripe if Stripe took it (never twice), else recorded."""
    body = {"amount": amount, "reason": reason, "note": note, "payment": payment}
    refund = refund_service.refund_invoice(principal, invoice_id, body, now_for(principal), edge.current())
    print_object(refund, RefundSchema(), "Refund", as_json)


@refunds.command("list")
@tenant_scoped
@list_options
@click.option("--invoice", default=None)
@click.option("--payment", default=None)
@click.option("--status", type=click.Choice(["pending", "succeeded", "failed", "canceled"]), default=None)
@json_option
def list_refunds(principal, limit, starting_after, invoice, payment, status, as_json):
    """The tenant's refunds in this mode, newest first."""
    page = refund_service.list_refunds(principal, limit, starting_after, invoice, payment, status)
    print_page(page, RefundSchema(), _COLUMNS, f"Refunds ({principal.mode} mode)", as_json)


@refunds.command("show")
@tenant_scoped
@click.argument("refund_id", metavar="REFUND")
@json_option
def show(principal, refund_id, as_json):
    """One refund."""
    print_object(refund_service.get_refund(principal, refund_id), RefundSchema(), "Refund", as_json)
