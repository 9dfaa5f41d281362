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
    _register_due_work()
    _subscribe_outbox()
    _fix_calendars()
    _lend_credit_balances()
    _subscribe_payments()
    _subscribe_books()


def _register_due_work() -> None:
    """Give aggregator.due its kinds (in the order they run when due at the same instant: a
    period is closed before its drafts' review deadline; charges, retries and payouts come
    after) and its queues (the outbox first: it feeds the delivery queues), and let the test
    clock hear when its lane has caught up."""
    from . import due, testmode
    from .consolidate import due_work as consolidate
    from .events.dispatch import DISPATCH_QUEUE
    from .mail import due_work as mail
    from .metering.export_service import EXPORT_QUEUE
    from .payments import due_work as payments
    from .payouts import due_work as payouts
    from .webhooks.delivery import DELIVERY_QUEUE

    due.register_kinds(*consolidate.KINDS, *payments.KINDS, *payouts.KINDS)
    due.register_queues(DISPATCH_QUEUE, *consolidate.QUEUES, *payments.QUEUES, *payouts.QUEUES, DELIVERY_QUEUE,
                        *mail.QUEUES, EXPORT_QUEUE)
    due.after_catch_up(testmode.lane_caught_up)


def _subscribe_outbox() -> None:
    """What the outbox's dispatcher hands each batch of events to: webhook endpoints first, then
    emails (each records its deliveries in the dispatcher's transaction)."""
    from .events import dispatch
    from .mail.subscriber import record_deliveries
    from .webhooks.delivery import fan_out

    dispatch.subscribe(fan_out)
    dispatch.subscribe(record_deliveries)


def _fix_calendars() -> None:
    """A tenant's period calendar cannot change once it has periods: accounts asks periods."""
    from .accounts.service import calendar_used_by
    from .periods.service import has_periods

    calendar_used_by(has_periods)


def _lend_credit_balances() -> None:
    """A customer's credit balance (shown with it by accounts) is read from invoicing's credits."""
    from .accounts.service import credit_balances_from
    from .consolidate.invoice_service import credit_balance

    credit_balances_from(credit_balance)


# --- the books ---------------------------------------------------------------------------------

def _subscribe_books() -> None:
    """The ledger posts the journal of each fact that moves money, in the publisher's
    transaction (ledger/handlers.py)."""
    from .consolidate.facts import (
        CreditNoteIssued,
        InvoicesFinalized,
        InvoicesFinalizedAtClose,
        InvoiceVoided,
        InvoiceWrittenOff,
    )
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
    bus.subscribe(CreditNoteIssued, handlers.post_credit_note)


def _subscribe_payments() -> None:
    """Payments collects what invoicing opens, stops collecting what is paid, written off or
    voided, and charges anew what waited for a customer's new payment method."""
    from .accounts.facts import PaymentMethodChanged
    from .consolidate.facts import InvoicesOpened, InvoicesPaid, InvoiceVoided, InvoiceWrittenOff
    from .payments import handlers

    bus.subscribe(PaymentMethodChanged, handlers.charge_waiting_invoices)
    bus.subscribe(InvoicesOpened, handlers.schedule_opened_invoices)
    for stopped in (InvoicesPaid, InvoiceWrittenOff, InvoiceVoided):
        bus.subscribe(stopped, handlers.stop_collecting)
