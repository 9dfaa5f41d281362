"""What payments does when other areas publish facts (aggregator.bus), in their transaction;
subscribed by the composition root (aggregator.wiring)."""
from __future__ import annotations

from .. import due
from ..accounts.facts import PaymentMethodChanged
from ..accounts.service import tenant_settings
from ..consolidate.facts import InvoicesOpened, InvoicesPaid, InvoiceVoided, InvoiceWrittenOff
from . import transitions


def schedule_opened_invoices(fact: InvoicesOpened) -> None:
    """Invoices opened (finalized) are collected: their first charge is scheduled."""
    transitions.start_collection(tenant_settings(fact.tenant_id, fact.livemode), fact.due_dates, fact.as_of)


def stop_collecting(fact: InvoicesPaid | InvoiceWrittenOff | InvoiceVoided) -> None:
    """An invoice paid, written off or voided is no longer collected."""
    transitions.stop_collection(fact.invoice_ids if isinstance(fact, InvoicesPaid) else [fact.invoice_id])


def charge_waiting_invoices(fact: PaymentMethodChanged) -> None:
    """A customer's new payment method: its open invoices that waited for one are charged at
    once (their lane nudged, so the charge runs now)."""
    if transitions.charge_waiting_invoices(fact.customer_id, fact.as_of):
        due.nudge(fact.tenant_id, fact.livemode)
