from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from ..accounts.models import Customer
from ..db import UTCDateTime, db, id_column
from ..states import machine

# The stored status is the provider's intent. "invoiced" is not stored: a pending bill is
# invoiced while an invoice that is not void exists for its customer and period (see
# Bill.invoiced). Voiding that invoice moves the bill to the open period: pending again.
BILL_STATES = machine("bill", {"pending": {"cancelled"}, "cancelled": set()})

# The invoices table as bills see it: whether a live invoice of the bill's customer and period
# exists. Referenced by name, not through the consolidate area's model, which depends on bills
# (intake never depends on invoicing; tests/integration/test_schema.py checks the table).
_invoice_table = sa.table("invoices", sa.column("tenant_id"), sa.column("livemode"), sa.column("customer_id"),
                          sa.column("period_start"), sa.column("status"))
_invoices = _invoice_table.c


class Bill(db.Model):
    __tablename__ = "bills"

    id: Mapped[str] = id_column("bill")
    tenant_id: Mapped[str] = mapped_column(sa.String(40))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    provider_id: Mapped[str] = mapped_column(sa.String(40))
    customer_id: Mapped[str] = mapped_column(sa.String(40))
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
    # "api" (sent by its provider), "subscription" (a plan's fee rated at a close: catalog/) or
    # "usage" (metered usage rated at a close: metering/)
    source: Mapped[str] = mapped_column(sa.String(16), server_default="api")
    # The platform's fee the bill carries itself (a plan-rated bill's parent fee), which wins over
    # its provider's revenue-share rate (revenue.terms.ExplicitFee); None for the others.
    platform_fee: Mapped[int | None] = mapped_column(sa.BigInteger)
    period_start: Mapped[date] = mapped_column(sa.Date)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Derived, loaded with every bill (one probe of the invoices' unique index): the close
    # writes nothing per bill. A bill's invoice is the one of its customer and period.
    invoiced: Mapped[bool] = column_property(
        sa.exists().where(_invoices.tenant_id == tenant_id, _invoices.livemode == livemode,
                          _invoices.customer_id == customer_id, _invoices.period_start == period_start,
                          _invoices.status != "void")
        .correlate_except(_invoice_table))

    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        # The provider and the customer are referenced with the bill's tenant and mode: the
        # database itself refuses a bill that crosses tenants or modes (two checks per insert;
        # the tenant needs none of its own, both rows name it).
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "provider_id"],
                                ["providers.tenant_id", "providers.livemode", "providers.id"]),
        sa.ForeignKeyConstraint(["tenant_id", "livemode", "customer_id"],
                                ["customers.tenant_id", "customers.livemode", "customers.id"]),
        sa.UniqueConstraint("provider_id", "idempotency_key"),
        sa.CheckConstraint("status IN ('pending', 'cancelled')", name="status"),
        sa.Index("ix_bills_provider_listing", "provider_id", "id"),
        sa.Index("ix_bills_scope_listing", "tenant_id", "livemode", "id"),
        sa.Index("ix_bills_customer", "customer_id"),
        sa.Index("ix_bills_period", "tenant_id", "livemode", "period_start", "customer_id"),
    )

    @property
    def api_status(self) -> str:
        """pending | invoiced | cancelled, as the API shows it."""
        return "invoiced" if self.status == "pending" and self.invoiced else self.status

    @property
    def customer_external_id(self) -> str:
        return self.customer.external_id

    @property
    def service_period(self) -> dict | None:
        if self.service_period_start is None:
            return None
        return {"start": self.service_period_start, "end": self.service_period_end}
