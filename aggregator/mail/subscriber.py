"""What is emailed when: a subscriber of the outbox that records deliveries, in the dispatcher's
transaction, and does no I/O (the deliveries queue sends them).

* A customer's invoice, with its PDF, once it is both finalized and rendered: on whichever of
  `invoice.finalized` and `invoice.pdf_ready` is dispatched second (each looks at the invoice as
  it is, and both record the delivery under the `invoice.finalized` event, so the unique
  (event, kind, recipient) keeps it to one). A PDF without finalization (a draft's) sends
  nothing; nor does a void invoice. A customer without an address gets a delivery recorded as
  failed ("no address"), so that it shows.
* The tenant's finance address: the summary of each closed period (`period.closed`) and the
  notice of a disabled webhook endpoint (`webhook_endpoint.disabled`); nothing when the tenant
  has no finance address in that mode.
"""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

import sqlalchemy as sa

from ..accounts.models import Customer, TenantSettings
from ..consolidate.models import Invoice
from ..db import db
from ..events.models import Event
from . import transitions
from .models import ENDPOINT_DISABLED, INVOICE, PERIOD_SUMMARY

NO_ADDRESS = "no_address: the customer has no email address"

#: Events told to the tenant's finance address, and the kind of email each is.
FINANCE_EVENTS = {"period.closed": PERIOD_SUMMARY, "webhook_endpoint.disabled": ENDPOINT_DISABLED}


def record_deliveries(events: Sequence[Event], now: datetime) -> None:
    rows = _invoice_emails({e.object_id for e in events
                            if e.type in ("invoice.finalized", "invoice.pdf_ready") and e.object_id})
    rows += _finance_emails([e for e in events if e.type in FINANCE_EVENTS])
    transitions.record(rows, now)


def _invoice_emails(invoice_ids: set[str]) -> list[dict]:
    if not invoice_ids:
        return []
    finalized = sa.orm.aliased(Event)
    found = db.session.execute(
        sa.select(Invoice.id, Invoice.tenant_id, Invoice.livemode, Customer.email, finalized.id)
        .join(Customer, Customer.id == Invoice.customer_id)
        .join(finalized, sa.and_(finalized.object_id == Invoice.id, finalized.type == "invoice.finalized"))
        .where(Invoice.id.in_(sorted(invoice_ids)), Invoice.pdf_sha256.is_not(None),
               Invoice.number.is_not(None), Invoice.status != "void")).all()
    return [{"tenant_id": tenant_id, "livemode": livemode, "event_id": event_id, "kind": INVOICE,
             "recipient": email or "", "invoice_id": invoice_id, "unsendable": None if email else NO_ADDRESS}
            for invoice_id, tenant_id, livemode, email, event_id in found]


def _finance_emails(events: Sequence[Event]) -> list[dict]:
    if not events:
        return []
    lanes = {(e.tenant_id, e.livemode) for e in events}
    finance = dict(((t, m), address) for t, m, address in db.session.execute(
        sa.select(TenantSettings.tenant_id, TenantSettings.livemode, TenantSettings.finance_email)
        .where(sa.tuple_(TenantSettings.tenant_id, TenantSettings.livemode).in_(sorted(lanes)))).all())
    return [{"tenant_id": e.tenant_id, "livemode": e.livemode, "event_id": e.id, "kind": FINANCE_EVENTS[e.type],
             "recipient": finance[(e.tenant_id, e.livemode)]}
            for e in events if finance.get((e.tenant_id, e.livemode))]
