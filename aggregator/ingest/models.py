from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..accounts.models import Customer
from ..db import UTCDateTime, db, id_column
from ..states import machine

BILL_STATES = machine("bill", {
    "pending": {"invoiced", "cancelled"},
    "invoiced": {"pending"},  # the invoice was voided: the bill is released
    "cancelled": set(),
})


class Bill(db.Model):
    __tablename__ = "bills"

    id: Mapped[str] = id_column("bill")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    provider_id: Mapped[str] = mapped_column(sa.ForeignKey("providers.id"))
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    idempotency_key: Mapped[str] = mapped_column(sa.String(255))
    fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    revenue_share: Mapped[bool] = mapped_column(sa.Boolean)
    description: Mapped[str] = mapped_column(sa.String(1000), default="")
    service_period_start: Mapped[date | None] = mapped_column(sa.Date)
    service_period_end: Mapped[date | None] = mapped_column(sa.Date)
    metadata_: Mapped[dict] = mapped_column("metadata", sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(16), default="pending")
    period_start: Mapped[date] = mapped_column(sa.Date)
    invoice_id: Mapped[str | None] = mapped_column(sa.ForeignKey("invoices.id", use_alter=True))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        sa.UniqueConstraint("provider_id", "idempotency_key"),
        sa.CheckConstraint("status IN ('pending', 'invoiced', 'cancelled')", name="status"),
        sa.Index("ix_bills_provider_listing", "provider_id", "id"),
        sa.Index("ix_bills_scope_listing", "tenant_id", "livemode", "id"),
        sa.Index("ix_bills_customer", "customer_id"),
        # No index holds status or invoice_id, so invoicing a bill is a HOT update on PostgreSQL
        # (no index writes); the table leaves room on each page for it (fillfactor, migration 0002).
        sa.Index("ix_bills_period", "tenant_id", "livemode", "period_start", "customer_id"),
    )

    @property
    def customer_external_id(self) -> str:
        return self.customer.external_id

    @property
    def service_period(self) -> dict | None:
        if self.service_period_start is None:
            return None
        return {"start": self.service_period_start, "end": self.service_period_end}
