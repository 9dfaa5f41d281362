"""Payment use cases for people and programs: reading payments, charging an invoice now, and
recording money received outside the gateway (a bank transfer, cash, a check).

Charging itself (the attempt saved before the gateway is called, outcomes, retries) is
`charge_service`; the statuses are written by `transitions` (payments' and the invoices'
collection) and `consolidate.transitions` (invoices)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

import sqlalchemy as sa

from .. import money
from ..accounts.models import Customer
from ..accounts.service import tenant_settings
from ..auth import Principal
from ..consolidate import transitions as invoice_transitions
from ..consolidate.invoice_service import find_invoice, with_lines
from ..consolidate.models import Credit, Invoice
from ..db import db, locking, new_id, write_lock
from ..errors import Conflict, InvalidInput, NotFound
from ..pagination import Page, one, paginate
from . import charge_service, transitions
from .gateway import GatewayMisconfigured
from .models import Payment


class InvoiceNotPayable(Conflict):
    code = "invoice_not_payable"


class NoPaymentGateway(Conflict):
    code = "no_payment_gateway"


class PaymentInProgress(Conflict):
    code = "payment_in_progress"


class PaymentGatewayMisconfigured(Conflict):
    code = "payment_gateway_misconfigured"


@dataclass
class PaymentResult:
    """What a payment did: the invoice as it is now (with its lines), the payment (None when
    nothing had to be charged), and the overpayment credit it made, if any."""

    invoice: Invoice
    payment: Payment | None
    credit: Credit | None = None


# --- reading ----------------------------------------------------------------------------------

def _scoped_payments(principal: Principal) -> sa.Select:
    return sa.select(Payment).where(Payment.tenant_id == principal.tenant_id,
                                    Payment.livemode == principal.livemode)


def list_payments(principal: Principal, limit: int, starting_after: str | None = None,
                  invoice: str | None = None, customer: str | None = None, status: str | None = None,
                  gateway: str | None = None) -> Page:
    """The attempts and recorded payments of this tenant and mode, newest first."""
    query = _scoped_payments(principal)
    if invoice:
        query = query.where(Payment.invoice_id == invoice)
    if customer:
        query = query.join(Customer, Customer.id == Payment.customer_id).where(
            sa.or_(Customer.id == customer, Customer.external_id == customer))
    if status:
        query = query.where(Payment.status == status)
    if gateway:
        query = query.where(Payment.gateway == gateway)
    return paginate(query, Payment.id, limit, starting_after)


def get_payment(principal: Principal, payment_id: str) -> Payment:
    return one(_scoped_payments(principal), Payment.id, payment_id, "payment")


def list_invoice_payments(principal: Principal, invoice_id: str, limit: int,
                          starting_after: str | None = None) -> Page:
    """One invoice's payments (404 for an invoice of another tenant or mode)."""
    find_invoice(principal, invoice_id)
    return list_payments(principal, limit, starting_after, invoice=invoice_id)


# --- charging now -----------------------------------------------------------------------------

def _in_flight(invoice_id: str, real_now: datetime) -> Payment | None:
    """The invoice's pending gateway attempt that someone is sending (its lease runs) or that the
    gateway is still processing; a pending attempt whose sender died is not: it is resumed."""
    return db.session.scalars(sa.select(Payment).where(
        Payment.invoice_id == invoice_id, Payment.status == "pending",
        sa.or_(Payment.locked_until > real_now, Payment.gateway_status == "processing"))).first()


def _check_payable(invoice: Invoice) -> None:
    if invoice.status != "open":
        raise InvoiceNotPayable(f"Invoice {invoice.number or invoice.id} is {invoice.status}: only an open "
                                "invoice can be paid.")


def pay_invoice(principal: Principal, invoice_id: str, now: datetime, adapters) -> PaymentResult:
    """Charge an open invoice now through the gateway, whatever its schedule (an operator's
    request). An invoice with nothing left to pay is marked paid without a charge."""
    invoice = find_invoice(principal, invoice_id)
    _check_payable(invoice)
    if invoice.amount_remaining > 0:
        settings = tenant_settings(principal.tenant_id, principal.livemode)
        if not settings.stripe_secret_key:
            raise NoPaymentGateway(f"No Stripe settings in {principal.mode} mode: record a payment instead "
                                   "(POST /v1/invoices/{id}/payments).")
        customer = invoice.customer
        if not customer.stripe_customer_id or not customer.stripe_payment_method:
            raise NoPaymentGateway(f"Customer {customer.external_id} has no Stripe customer and payment method "
                                   "(PATCH /v1/customers/{id}).")
        if _in_flight(invoice.id, adapters.clocks.base.now()) is not None:
            raise PaymentInProgress("A charge of this invoice is being sent; its outcome is not known yet.")
    db.session.rollback()  # charge_now runs its own transactions
    try:
        report = charge_service.charge_now(principal.tenant_id, principal.livemode, [invoice_id], now, adapters)
    except GatewayMisconfigured as exc:
        raise PaymentGatewayMisconfigured(f"Stripe cannot be used with this tenant's settings: {exc}") from None
    if report.manual:  # its payment method went away meanwhile
        raise NoPaymentGateway("The invoice cannot be charged through Stripe: it waits for a recorded payment.")
    if report.unknown and not report.attempted:  # another run was sending it after all
        raise PaymentInProgress("A charge of this invoice is being sent; its outcome is not known yet.")
    payment = None
    if not report.paid_without_charge:
        payment = db.session.scalars(sa.select(Payment).where(Payment.invoice_id == invoice_id,
                                                              Payment.gateway == "stripe")
                                     .order_by(Payment.attempt.desc()).limit(1)).first()
    return PaymentResult(with_lines([find_invoice(principal, invoice_id)])[0], payment)


def charge_invoices(principal: Principal, invoice_ids: Sequence[str], now: datetime,
                    adapters) -> charge_service.ChargeReport:
    """Charge several invoices now (the command line): those not open are left alone."""
    missing = set(invoice_ids) - set(db.session.scalars(sa.select(Invoice.id).where(
        Invoice.id.in_(list(invoice_ids)), Invoice.tenant_id == principal.tenant_id,
        Invoice.livemode == principal.livemode)).all())
    if missing:
        raise NotFound(f"No such invoice: {', '.join(sorted(missing))}.")
    db.session.rollback()
    try:
        return charge_service.charge_now(principal.tenant_id, principal.livemode, list(invoice_ids), now, adapters)
    except GatewayMisconfigured as exc:
        raise PaymentGatewayMisconfigured(f"Stripe cannot be used with this tenant's settings: {exc}") from None


# --- money received outside the gateway -------------------------------------------------------

def _positive_amount(text: str, currency: str) -> int:
    try:
        amount = money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise InvalidInput.on("amount", str(exc)) from None
    if amount <= 0:
        raise InvalidInput.on("amount", "A payment's amount must be positive.")
    return amount


def record_payment(principal: Principal, invoice_id: str, amount: str, method: str, reference: str | None,
                   received_on: date, now: datetime) -> PaymentResult:
    """Record money received outside the gateway for an open invoice, as of `now`.

    The invoice row is locked while this runs, so two recordings (or a charge run) see each
    other's amounts. A partial payment leaves the rest due: the invoice stays open and keeps its
    charge schedule (`next_charge_at`), so a card on file is charged only what is left. Reaching
    the amount due marks it paid. An overpayment pays it and the excess becomes the customer's
    credit (kind `overpayment`), which the next close applies to its next invoice as a credit
    line; the invoice's `amount_paid` never exceeds its `amount_due` (the payment keeps the
    whole amount received). Refused while a gateway attempt of the invoice is pending or awaits
    the customer's authentication: its outcome could pay it too."""
    write_lock()
    invoice = db.session.scalars(locking(
        sa.select(Invoice).where(Invoice.id == invoice_id, Invoice.tenant_id == principal.tenant_id,
                                 Invoice.livemode == principal.livemode), of=Invoice)
        .execution_options(populate_existing=True)).first()
    if invoice is None:
        raise NotFound(f"No such invoice: {invoice_id!r}.")
    received = _positive_amount(amount, invoice.currency)
    _check_payable(invoice)
    in_flight = db.session.scalar(sa.select(Payment.status).where(
        Payment.invoice_id == invoice.id, Payment.status.in_(["pending", "requires_action"])).limit(1))
    if in_flight == "pending":
        raise PaymentInProgress("A Stripe charge of this invoice is pending: record the payment once its outcome "
                                "is known.")
    if in_flight == "requires_action":  # the customer may still authenticate it: it would pay twice
        raise PaymentInProgress("A card payment of this invoice awaits the customer's authentication (3-D Secure): "
                                "it would pay the invoice too. Record the payment once it has failed or been "
                                "canceled at Stripe (its webhook settles it).")
    remaining = invoice.amount_remaining
    if remaining <= 0:
        raise InvoiceNotPayable(f"Nothing is left to pay on invoice {invoice.number or invoice.id}.")
    payment = transitions.record_received({
        "tenant_id": invoice.tenant_id, "livemode": invoice.livemode, "invoice_id": invoice.id,
        "customer_id": invoice.customer_id, "gateway": "manual", "method": method, "trigger": "recorded",
        "amount": received, "currency": invoice.currency, "reference": reference, "received_on": received_on,
        "created_at": now}, now)
    applied = min(received, remaining)
    transitions.add_paid(invoice.id, applied)
    credit = None
    if received > remaining:
        credit = Credit(id=new_id("cred"), tenant_id=invoice.tenant_id, livemode=invoice.livemode,
                        customer_id=invoice.customer_id, amount=received - remaining, currency=invoice.currency,
                        source_invoice_id=invoice.id, kind="overpayment", source_payment_id=payment.id,
                        created_at=now)
        db.session.add(credit)
    if applied == remaining:
        settings = tenant_settings(principal.tenant_id, principal.livemode)
        if not invoice_transitions.mark_paid(settings, [invoice.id], now, {invoice.id: {"payment": payment.id}}):
            db.session.rollback()  # cannot happen under the lock; never answered as recorded
            raise InvoiceNotPayable(f"Invoice {invoice.number or invoice.id} changed while the payment was "
                                    "being recorded.")
    db.session.commit()
    db.session.refresh(invoice)
    return PaymentResult(with_lines([invoice])[0], payment, credit)
