"""Crediting an invoice: a credit note, and its money settled as it says (Stripe's credit note
settlements): `refund` through the payment's refund path (a Stripe refund is committed pending
with the note, then sent and settled as any refund), `customer_balance` kept as the customer's
credit for its next invoice (a refund to its balance, so the providers' shares are clawed back
by the refund rule), `reduce_due` taken off what an open invoice still asks.

Exactly once: the request's Idempotency-Key is unique per tenant and mode on the note, so a
retry, or the same request racing itself, is answered with the note the first one issued."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from .. import money
from ..auth import Principal
from ..consolidate import credit_note_service
from ..consolidate.credit_notes import NoteAmounts, credit_of_amount, credit_of_lines
from ..consolidate.models import CreditNote, Invoice
from ..db import db, locking, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from . import refund_service


class CreditNotSettleable(Conflict):
    code = "credit_not_settleable"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


def credit_invoice(principal: Principal, invoice_id: str, body: dict, now: datetime, adapters,
                   idempotency_key: str | None = None) -> CreditNote:
    """Issue a credit note of the invoice as of `now` (the principal's clock) and settle it. A
    request with an Idempotency-Key already used is answered with its note."""
    if idempotency_key is not None:
        earlier = _replayed(principal, invoice_id, idempotency_key)
        if earlier is not None:
            return earlier
    real_now = adapters.clocks.base.now()
    try:
        note, refund, request = _issue(principal, invoice_id, body, now, real_now, adapters, idempotency_key)
        gateway = refund_service.gateway_of(refund, adapters) if request else None
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        earlier = _replayed(principal, invoice_id, idempotency_key) if idempotency_key is not None else None
        if earlier is None:
            raise
        return earlier  # the same request, racing: the note it issued
    except Exception:
        db.session.rollback()
        raise
    if request is not None:
        refund_service.send_created(refund, request, gateway, now, real_now)
        db.session.refresh(note)
    return note


def _replayed(principal: Principal, invoice_id: str, key: str) -> CreditNote | None:
    earlier = credit_note_service.by_idempotency_key(principal.tenant_id, principal.livemode, key)
    if earlier is not None and earlier.invoice_id != invoice_id:
        raise IdempotencyKeyReused(f"This Idempotency-Key issued credit note {earlier.number} of another invoice.",
                                   fields={"Idempotency-Key": ["Used before, for another invoice."]})
    return earlier


def _issue(principal: Principal, invoice_id: str, body: dict, now: datetime, real_now: datetime, adapters,
           idempotency_key: str | None):
    write_lock()
    invoice = db.session.scalars(locking(sa.select(Invoice).where(
        Invoice.id == invoice_id, Invoice.tenant_id == principal.tenant_id,
        Invoice.livemode == principal.livemode), of=Invoice).execution_options(populate_existing=True)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    if idempotency_key is not None:  # a retry that waited for the invoice's lock behind its first try
        earlier = _replayed(principal, invoice_id, idempotency_key)
        if earlier is not None:
            return earlier, None, None
    left, lines = credit_note_service.creditable_of(invoice)
    amounts = _amounts(body, left, lines, invoice)
    settlement = body.get("settlement") or ("reduce_due" if invoice.status == "open" and invoice.amount_remaining
                                            else "refund")
    _check_settleable(invoice, settlement, amounts.total)
    note = credit_note_service.issue(invoice, amounts, reason=body["reason"], memo=body.get("memo"),
                                     settlement=settlement, as_of=now, idempotency_key=idempotency_key)
    if settlement == "reduce_due":
        return note, None, None
    refund, request = refund_service.create_for(
        invoice, {"reason": _refund_reason(body["reason"]), "note": f"Credit note {note.number}"}, amounts.total,
        now, real_now, adapters, credit_note_id=note.id, to_balance=settlement == "customer_balance")
    credit_note_service.link_refund(note, refund.id)
    return note, refund, request


def _amounts(body: dict, left, lines, invoice: Invoice) -> NoteAmounts:
    if (body.get("lines") is None) == (body.get("amount") is None):
        raise InvalidInput.on("lines", "Credit either lines of the invoice or an amount of it, not both or neither.")
    if body.get("lines") is not None:
        return credit_of_lines(left, lines, [(line["invoice_line"], line.get("amount")) for line in body["lines"]])
    return credit_of_amount(left, body["amount"], f"Credit of invoice {invoice.number}")


def _check_settleable(invoice: Invoice, settlement: str, total: int) -> None:
    currency = invoice.currency
    if settlement == "reduce_due":
        if invoice.status != "open":
            raise CreditNotSettleable(f"Invoice {invoice.number} is {invoice.status}: only an open invoice's amount "
                                      "due can be reduced.", fields={"settlement": ["The invoice is not open."]})
        if invoice.collection == "processing":
            raise CreditNotSettleable(f"A charge of invoice {invoice.number} is being processed: credit it once "
                                      "its outcome is known.", fields={"settlement": ["A charge is in flight."]})
        if total > invoice.amount_remaining:
            raise CreditNotSettleable(
                f"Invoice {invoice.number} asks {money.format_amount(invoice.amount_remaining, currency)} {currency} "
                "more: settle the rest of the credit by a refund.",
                fields={"settlement": ["More than the invoice still asks."]})
        return
    collected = credit_note_service.collected(invoice)
    if total > collected:
        raise CreditNotSettleable(
            f"Invoice {invoice.number} has {money.format_amount(collected, currency)} {currency} collected (net of "
            f"refunds) to give back: reduce what it asks instead, or credit less.",
            fields={"settlement": ["More than the invoice collected."]})


def _refund_reason(reason: str) -> str | None:
    """The refund's reason: Stripe's when it means something to it (a fraudulent charge blocks the
    card); else none (the refund's note names the credit note, whose reason says why)."""
    return reason if reason in ("duplicate", "fraudulent") else None
