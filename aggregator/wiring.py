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
    _subscribe_books()


# --- the books ---------------------------------------------------------------------------------

def _subscribe_books() -> None:
    """The ledger posts the journal of each fact that moves money, in the publisher's
    transaction (ledger/handlers.py)."""
    from .consolidate.facts import InvoicesFinalized, InvoicesFinalizedAtClose, InvoiceVoided, InvoiceWrittenOff
    from .ledger import handlers
    from .payments.facts import PaymentsSucceeded, RefundSucceeded
    from .payouts.facts import PayoutPaid

    bus.subscribe(InvoicesFinalizedAtClose, handlers.post_close_chunk)
    bus.subscribe(InvoicesFinalized, handlers.post_finalized)
    bus.subscribe(InvoiceWrittenOff, handlers.post_write_off)
    bus.subscribe(InvoiceVoided, handlers.post_voided)
    bus.subscribe(PaymentsSucceeded, handlers.post_payments)
    bus.subscribe(RefundSucceeded, handlers.post_refund)
    bus.subscribe(PayoutPaid, handlers.post_payout)
