"""`aggregator payments …` (reading attempts and recorded payments) and `aggregator invoices
charge` (charging invoices now), as the API's GET /v1/payments and POST /v1/invoices/{id}/pay."""
from __future__ import annotations

import click
from flask.cli import with_appcontext

from .. import adapters as edge
from ..commands import (
    AreaGroup,
    json_option,
    list_options,
    now_for,
    print_json,
    print_object,
    print_page,
    print_record,
    tenant_scoped,
)
from . import service
from .schemas import PaymentSchema

payments = AreaGroup("payments", help="Payments: gateway attempts and money recorded outside Stripe.")

_PAYMENT_COLUMNS = ["id", "invoice", "gateway", "method", "status", "amount", "currency", "created_at",
                    "failure_code"]


@payments.command("list")
@tenant_scoped
@list_options
@click.option("--invoice", default=None, metavar="INVOICE", help="One invoice's payments (inv_…).")
@click.option("--customer", default=None, help="A customer's id or external id.")
@click.option("--status", type=click.Choice(["pending", "requires_action", "succeeded", "failed", "canceled"]),
              default=None)
@click.option("--gateway", type=click.Choice(["stripe", "manual"]), default=None)
@json_option
def list_payments(principal, limit, starting_after, invoice, customer, status, gateway, as_json):
    """The tenant's payments in this mode, newest first."""
    page = service.list_payments(principal, limit, starting_after, invoice, customer, status, gateway)
    print_page(page, PaymentSchema(), _PAYMENT_COLUMNS, f"Payments ({principal.mode} mode)", as_json)


@payments.command("show")
@tenant_scoped
@click.argument("payment_id", metavar="PAYMENT")
@json_option
def show_payment(principal, payment_id, as_json):
    """One payment, with the gateway's ids and codes."""
    print_object(service.get_payment(principal, payment_id), PaymentSchema(), "Payment", as_json)


@click.command("charge")
@with_appcontext  # added to the `invoices` group (consolidate's), like its own commands
@tenant_scoped
@click.argument("invoice_ids", metavar="INVOICE…", nargs=-1, required=True)
@json_option
def charge_invoices(principal, invoice_ids, as_json):
    """Charge open invoices now through Stripe, whatever their schedule (one with nothing left to
    pay becomes paid; one that cannot be charged waits for a recorded payment)."""
    report = service.charge_invoices(principal, invoice_ids, now_for(principal), edge.current())
    summary = {"attempted": report.attempted, "succeeded": report.succeeded, "failed": report.failed,
               "requires_action": report.requires_action, "processing": report.processing,
               "unknown": report.unknown, "paid_without_charge": report.paid_without_charge,
               "manual": report.manual, "payments": report.payments}
    if as_json:
        print_json(summary)
    else:
        print_record(summary, f"Charges ({principal.mode} mode)")
