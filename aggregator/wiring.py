"""The composition root's wiring: which subscriber handles which fact (aggregator.bus), and
which due kinds and queues the scheduler runs (aggregator.due). Only the composition root
(`create_app`, the worker) calls it; it is the one module allowed to import every area."""
from __future__ import annotations

from . import bus

_wired = False


def wire() -> None:
    """Subscribe every handler and register every due kind and queue, once per process."""
    global _wired
    if _wired:
        return
    _wired = True
    _subscribe_payments()


def _subscribe_payments() -> None:
    """Payments collects what invoicing finalizes, stops collecting what is paid, written off or
    voided, and charges anew what waited for a customer's new payment method."""
    from .accounts.facts import PaymentMethodChanged
    from .consolidate.facts import InvoicesFinalized, InvoicesPaid, InvoiceVoided, InvoiceWrittenOff
    from .payments import handlers

    bus.subscribe(PaymentMethodChanged, handlers.charge_waiting_invoices)
    bus.subscribe(InvoicesFinalized, handlers.schedule_finalized_invoices)
    for stopped in (InvoicesPaid, InvoiceWrittenOff, InvoiceVoided):
        bus.subscribe(stopped, handlers.stop_collecting)
