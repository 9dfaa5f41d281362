"""`aggregator periods|invoices …`: closing periods, moving test clocks, reading, finalizing,
voiding and rendering invoices."""
from __future__ import annotations

import math
import os
from pathlib import Path

import click

from .. import adapters as edge
from .. import testmode
from ..accounts import service as accounts_service
from ..commands import (
    AreaGroup,
    Day,
    Instant,
    acting_for,
    json_option,
    list_options,
    now_for,
    print_json,
    print_object,
    print_page,
    print_record,
    print_rows,
    progress,
    provider_option,
    say,
    tenant_scoped,
)
from ..periods import service as periods_service
from ..plurals import counted
from . import close_service, einvoice_service, invoice_service, pdf_service, test_clock_service, upcoming_service
from .schemas import (
    AdvanceResultSchema,
    CloseReportSchema,
    InvoiceSchema,
    PeriodSchema,
    RenderReportSchema,
    TestClockSchema,
    UpcomingInvoiceSchema,
)

periods = AreaGroup("periods", help="Invoicing periods: list them, close them, move a tenant's test clock.")
invoices = AreaGroup("invoices", help="Consolidated invoices: read, finalize, void, charge, render and save their "
                                      "PDFs.")

_date = Day()
_processes = click.option("--render-processes", "processes", type=click.IntRange(1), default=os.cpu_count() or 1,
                          show_default=True, help="Worker processes rendering PDFs (one document at a time each).")


# --- periods ----------------------------------------------------------------------------------

@periods.command("list")
@tenant_scoped
@list_options
@click.option("--status", type=click.Choice(["open", "closing", "closed"]), default=None)
@json_option
def list_periods(principal, limit, starting_after, status, as_json):
    """The periods in which something has happened, newest first (--starting-after: a start date)."""
    after = periods_service.parse_period_name(starting_after) if starting_after else None
    page = periods_service.list_periods(principal, now_for(principal), limit, after, status)
    print_page(page, PeriodSchema(), ["start", "end", "end_at", "status", "ended", "closed_at", "waiting"],
               f"Periods ({principal.mode} mode)", as_json)


@periods.command("show")
@tenant_scoped
@click.argument("start", metavar="START", type=_date)
@json_option
def show_period(principal, start, as_json):
    """One period, named by its start date (e.g. 2026-10-25)."""
    period = periods_service.get_period(principal, start.date(), now_for(principal))
    print_object(period, PeriodSchema(), "Period", as_json)


def _render(principal, processes: int, retry_now: bool) -> pdf_service.RenderReport:
    """Render the lane's pending PDFs with a progress bar."""
    total = pdf_service.pdfs_pending(principal.tenant_id, principal.livemode)
    with progress("Rendering PDFs", total) as update:
        return pdf_service.render_pending(
            edge.current(), tenant_id=principal.tenant_id, livemode=principal.livemode, processes=processes,
            retry_now=retry_now, on_batch=lambda report: update(report.rendered + report.failed))


@periods.command("close")
@tenant_scoped
@click.option("--period", "start", type=_date, required=True, help="The period's start date, e.g. 2026-10-25.")
@click.option("--chunk", type=click.IntRange(1), default=close_service.CHUNK_CUSTOMERS, show_default=True,
              help="Customers invoiced per transaction.")
@click.option("--no-pdf", is_flag=True, help="Close only; render PDFs later (invoices render).")
@_processes
@json_option
def close(principal, start, chunk, no_pdf, processes, as_json):
    """Close one ended period (idempotent: safe to run again), then render its PDFs."""
    start = start.date()
    total = close_service.customers_to_invoice(principal.tenant_id, principal.livemode, start)
    with progress(f"Closing {start.isoformat()}", total) as update:
        report = close_service.close_period(principal.tenant_id, principal.livemode, start, now_for(principal),
                                            chunk=chunk, on_chunk=lambda r: update(r.invoices_created))
    if not no_pdf:
        report.pdfs = _render(principal, processes, retry_now=True)
    if as_json:
        print_json(CloseReportSchema().dump(report))
        return
    print_record(title=f"Close of {report.period}", record={
        "status": report.status, "invoices created": report.invoices_created,
        "customers waiting": report.customers_waiting,
        "missing FX rates": ", ".join(f"{b}→{q}" for b, q in sorted(report.missing_fx_rates)) or None,
        "errors": "; ".join(report.errors) or None,
        "PDFs rendered": report.pdfs.rendered if report.pdfs else "not rendered (--no-pdf)",
        "PDFs failed": report.pdfs.failed if report.pdfs else None})


@periods.command("clock")
@tenant_scoped
@json_option
def show_clock(principal, as_json):
    """The tenant's test clock (test mode only)."""
    if principal.livemode:
        raise click.UsageError("Test clocks exist in test mode only: use --mode test.")
    clock = testmode.get_test_clock(principal.tenant_id, edge.current().clocks.base.now())
    print_object(clock, TestClockSchema(), "Test clock", as_json)


@periods.command("advance-clock")
@tenant_scoped
@click.option("--to", "to", type=Instant(), required=True,
              help="Where the clock goes, e.g. 2026-11-25T00:00:00+11:00 (past a period's end_at closes it).")
@click.option("--no-wait", is_flag=True, help="Only move the clock; the workers run what became due.")
@json_option
def advance_clock(principal, to, no_wait, as_json):
    """Move the tenant's test clock forward and run what became due, in order, each as of its
    own instant: closes, finalizations, then the PDFs (a catch-up of any length)."""
    if principal.livemode:
        raise click.UsageError("Test clocks exist in test mode only: use --mode test.")
    start = now_for(principal)
    days = max(1, math.ceil((to - start).total_seconds() / 86400))
    with progress("Advancing the test clock (days)", days) as update:
        def on_unit(unit):
            update(max(0, (unit.due_at - start).total_seconds() / 86400),
                   f"{unit.kind} due {unit.due_at.isoformat()}")

        result = test_clock_service.advance_test_clock(principal.tenant_id, to, edge.current(), wait=not no_wait,
                                             on_unit=on_unit)
        update(days, "Advanced")
    if as_json:
        print_json(AdvanceResultSchema().dump(result))
        return
    ran = result["ran"]
    print_record(title="Test clock", record={
        "from": result["previous"].isoformat(), "to": result["now"].isoformat(), "status": result["status"],
        "periods closed": ", ".join(f"{c.period} ({c.status}, {counted(c.invoices_created, 'invoice', 'invoices')})"
                                    for c in ran.closes) or "none" if ran else "left to the workers",
        "drafts finalized": ran.finalized if ran else None,
        "PDFs rendered": ran.pdfs.rendered if ran else None,
        "PDFs failed": ran.pdfs.failed if ran else None,
        "pending": ", ".join(f"{p.kind} due {p.due_at.isoformat()} ({p.reason})" for p in result["pending"])
                   or "none"})


# --- invoices ---------------------------------------------------------------------------------

_INVOICE_COLUMNS = ["id", "number", "customer_external_id", "status", "currency", "total", "amount_due",
                    "due_date", "overdue"]


@invoices.command("list")
@tenant_scoped
@list_options
@click.option("--period", type=_date, default=None, help="A period's start date, e.g. 2026-10-25.")
@click.option("--customer", default=None, help="A customer's id or external id.")
@click.option("--status", type=click.Choice(["draft", "open", "paid", "uncollectible", "void"]), default=None)
@click.option("--overdue/--not-overdue", default=None,
              help="Only open invoices past the end of their due date (or only the others).")
@json_option
def list_invoices(principal, limit, starting_after, period, customer, status, overdue, as_json):
    """The tenant's invoices in this mode, newest first."""
    page = invoice_service.list_invoices(principal, limit, starting_after, period and period.date(), customer,
                                         status, overdue)
    print_page(page, InvoiceSchema(), _INVOICE_COLUMNS, f"Invoices ({principal.mode} mode)", as_json)


def _print_invoice(invoice, as_json: bool, principal) -> None:
    data = InvoiceSchema().dump(invoice)
    if as_json:
        print_json(data)
        return
    lines = _named_providers(principal, data.pop("lines"))
    print_record(data, f"Invoice {invoice.number or invoice.id}")
    print_rows(lines, ["kind", "provider", "description", "amount", "original_amount", "fx_rate"], "Lines")


def _named_providers(principal, lines: list[dict]) -> list[dict]:
    """The lines with each provider shown by its name (the JSON keeps its id, as the API)."""
    ids = sorted({line["provider"] for line in lines if line.get("provider")})
    names = {provider_id: accounts_service.get_provider(principal, provider_id).name for provider_id in ids}
    return [{**line, "provider": names.get(line.get("provider"), line.get("provider"))} for line in lines]


@invoices.command("show")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@json_option
def show_invoice(principal, invoice_id, as_json):
    """One invoice with its lines."""
    _print_invoice(invoice_service.get_invoice(principal, invoice_id), as_json, principal)


@invoices.command("upcoming")
@tenant_scoped
@provider_option(False, "Only this provider's lines, as its key sees them.")
@click.argument("customer", metavar="CUSTOMER")
@json_option
def upcoming(principal, provider_id, customer, as_json):
    """The invoice a customer would receive at the open period's close if nothing changed from now on:
    its pending bills and its subscriptions' fees rated to now. Nothing is stored."""
    principal = acting_for(principal, provider_id) if provider_id else principal
    data = UpcomingInvoiceSchema().dump(upcoming_service.upcoming_invoice(principal, customer, now_for(principal)))
    if as_json:
        print_json(data)
        return
    lines = _named_providers(principal, data.pop("lines"))
    print_record(data, f"Upcoming invoice of {customer}")
    print_rows(lines, ["source", "provider", "description", "amount", "original_amount", "fx_rate"], "Lines")


@invoices.command("finalize")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@json_option
def finalize(principal, invoice_id, as_json):
    """Finalize a draft (number it, open it) and render its PDF; finalizing again changes nothing."""
    invoice = invoice_service.finalize_invoice(principal, invoice_id, now_for(principal))
    pdf_service.render_pending(edge.current(), only=[invoice.id])
    _print_invoice(invoice_service.get_invoice(principal, invoice_id), as_json, principal)


@invoices.command("void")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@click.option("--reason", default=None, help="Needed to void a finalized invoice.")
@json_option
def void(principal, invoice_id, reason, as_json):
    """Void a draft, or a finalized invoice with a reason; its bills are released."""
    _print_invoice(invoice_service.void_invoice(principal, invoice_id, reason, now_for(principal)), as_json,
                   principal)


@invoices.command("render")
@tenant_scoped
@_processes
@click.option("--retry-now", is_flag=True, help="Also retry failed renders now, not after their backoff.")
@json_option
def render(principal, processes, retry_now, as_json):
    """Render the PDFs still pending of the tenant's finalized invoices in this mode."""
    report = _render(principal, processes, retry_now)
    if as_json:
        print_json(RenderReportSchema().dump(report))
    else:
        print_record({"rendered": report.rendered, "failed": report.failed}, "PDFs")


@invoices.command("pdf")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write (default: NUMBER.pdf; '-' for standard output).")
def pdf(principal, invoice_id, output):
    """Save an invoice's PDF."""
    invoice = invoice_service.find_invoice(principal, invoice_id)
    document = pdf_service.invoice_pdf(principal, invoice_id, edge.current().storage)
    if str(output) == "-":
        click.get_binary_stream("stdout").write(document)
        return
    output = output or Path(f"{invoice.number or invoice.id}.pdf")
    output.write_bytes(document)
    say(f"Wrote {output} ({len(document):,} bytes).")


@invoices.command("einvoice")
@tenant_scoped
@click.argument("invoice_id", metavar="INVOICE")
@click.option("--format", "format_", type=click.Choice(list(einvoice_service.FORMATS)), default="cii",
              show_default=True, help="cii: UN/CEFACT CII, the Factur-X / ZUGFeRD EN 16931 profile (what the "
                                      "PDF embeds); ubl: OASIS UBL 2.1, EN 16931.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="The file to write (default: NUMBER.xml, NUMBER.ubl.xml; '-' for standard output).")
def einvoice(principal, invoice_id, format_, output):
    """Save a finalized invoice's e-invoice (the XML its PDF embeds as factur-x.xml)."""
    filename, xml = einvoice_service.invoice_einvoice(invoice_service.find_invoice(principal, invoice_id), format_)
    if str(output) == "-":
        click.echo(xml, nl=False)  # bytes: written to the binary stream as they are
        return
    output = output or Path(filename)
    output.write_bytes(xml)
    say(f"Wrote {output} ({len(xml):,} bytes).")
