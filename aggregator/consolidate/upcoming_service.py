"""The upcoming invoice: the consolidated invoice a customer would receive at the close of the
open period if nothing changed from now on (as Stripe's upcoming invoice): its pending bills and
its subscriptions' fees rated as the close would rate them with what is known now, their usage
so far rated as the close would rate it if no more came (metering.rating_service, the same
function as the close's), converted, credited and taxed as the close does. Nothing is stored.

A provider's key sees its own lines only (isolation between providers is absolute); an admin's
sees the whole invoice, with the customer's carried credits applied."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .. import money
from ..accounts.keys import Principal
from ..accounts.service import get_customer, tenant_settings
from ..catalog import rating_service
from ..catalog.models import Subscription
from ..db import db, run
from ..errors import Conflict
from ..ingest.models import Bill
from ..metering.rating_service import upcoming_usage
from ..periods import calendar as C
from ..periods.models import PeriodRecord
from . import parties
from .fx_service import rates_in_effect
from .invoices import BillItem, CreditItem, InvoiceDraft, MissingRates, build_invoice, tax_rate_for
from .models import Credit, Invoice


@dataclass(frozen=True)
class UpcomingInvoice:
    customer: str  # external id
    period: C.Period
    draft: InvoiceDraft
    rated: frozenset[str]  # the ids of its lines rated from subscriptions (not stored bills)
    tax_treatment: str = "standard"  # as the close would decide it (parties.treatment)

    @property
    def currency(self) -> str:
        return self.draft.currency

    @property
    def lines(self):
        return self.draft.lines

    @property
    def subtotal(self) -> int:
        return self.draft.totals.subtotal

    @property
    def tax(self) -> int:
        return self.draft.totals.tax

    @property
    def total(self) -> int:
        return self.draft.totals.total


def upcoming_invoice(principal: Principal, customer_ref: str, now: datetime) -> UpcomingInvoice:
    customer = get_customer(principal, customer_ref)
    settings = tenant_settings(principal.tenant_id, principal.livemode)
    period = _open_period(principal, settings, now)
    own = principal.provider_id if principal.role == "provider" else None
    b = Bill.__table__.c
    query = (sa.select(b.id, b.provider_id, b.amount, b.currency, b.description, b.service_period_start,
                       b.service_period_end)
             .where(b.tenant_id == principal.tenant_id, b.livemode == principal.livemode,
                    b.customer_id == customer.id, b.period_start == period.start, b.status == "pending"))
    if own:
        query = query.where(b.provider_id == own)
    items = [BillItem(*row) for row in run(query)]

    subs = Subscription.__table__.c
    sub_query = sa.select(subs.id, subs.provider_id, subs.customer_id, subs.plan_id).where(
        subs.tenant_id == principal.tenant_id, subs.livemode == principal.livemode, subs.customer_id == customer.id,
        sa.or_(subs.ends_at.is_(None), subs.ends_at >= period.start_at))  # as the close selects them
    if own:
        sub_query = sub_query.where(subs.provider_id == own)
    subscriptions = run(sub_query).all()
    rated: set[str] = set()
    if subscriptions:
        loaded = rating_service.load_catalog(principal.tenant_id, principal.livemode, [s.id for s in subscriptions])
        following = C.next_period(period, settings.period_anchor_day, settings.timezone)
        of = {s.id: s for s in subscriptions}
        for n, charge in enumerate(rating_service.charges_of(subscriptions, loaded, period, following,
                                                             settings.timezone)):
            plan = loaded.plans[charge.fee.plan_id]
            line_id = f"upcoming_{n + 1}"
            rated.add(line_id)
            items.append(BillItem(line_id, of[charge.subscription_id].provider_id, charge.amount, plan.currency,
                                  rating_service.describe(charge, plan.name), charge.covered.start,
                                  charge.covered.end))
        for usage in upcoming_usage(settings, period, [s.id for s in subscriptions]):
            line_id = f"upcoming_{len(rated) + 1}"
            rated.add(line_id)
            items.append(BillItem(line_id, usage.subscription.provider_id, usage.own.amount,
                                  usage.priced.plan.currency, usage.description, period.start, period.end))

    credits = [] if own else [
        CreditItem(c.id, c.amount, c.currency, f"Credit carried from invoice {c.number or c.id}")
        for c in db.session.execute(
            sa.select(Credit.id, Credit.amount, Credit.currency, Invoice.number)
            .join(Invoice, Invoice.id == Credit.source_invoice_id)
            .where(Credit.customer_id == customer.id, Credit.applied_invoice_id.is_(None)).order_by(Credit.id))]
    default_rate = money.parse_rate(settings.default_tax_rate)
    treatment, tax_rate = parties.treatment(settings, customer.address, customer.tax_exempt, customer.tax_ids,
                                            tax_rate_for(default_rate, money.parse_rate(customer.tax_rate)
                                                         if customer.tax_rate else None, customer.tax_exempt))
    try:
        draft = build_invoice(customer.currency, tax_rate, items, credits,
                              rates_in_effect(principal.tenant_id, principal.livemode, period.end))
    except MissingRates as missing:
        pairs = ", ".join(f"{base}/{quote}" for base, quote in sorted(missing.pairs))
        raise Conflict(f"No exchange rate {pairs} is set for the period's end: the close would wait for it.",
                       code="missing_fx_rates") from None
    return UpcomingInvoice(customer.external_id, period, draft, frozenset(rated), treatment)


def _open_period(principal: Principal, settings, now: datetime) -> C.Period:
    """The period whose close comes next for new bills: the one containing `now`, or the next
    one if that is already closing."""
    period = C.period_containing(now, settings.period_anchor_day, settings.timezone)
    p = PeriodRecord.__table__.c
    while run(sa.select(p.status).where(p.tenant_id == principal.tenant_id, p.livemode == principal.livemode,
                                        p.start == period.start)).scalar() not in (None, "open"):
        period = C.next_period(period, settings.period_anchor_day, settings.timezone)
    return period
