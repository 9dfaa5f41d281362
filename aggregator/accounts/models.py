from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import UTCDateTime, db, id_column

ROLES = ("admin", "provider")


class Tenant(db.Model):
    """A platform using the service. Its settings are kept per mode (TenantSettings): a test key
    changes test mode's and never what live mode does."""

    __tablename__ = "tenants"

    id: Mapped[str] = id_column("ten")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


#: The settings a tenant has in each mode, and their defaults.
SETTING_DEFAULTS = {
    "timezone": "UTC", "default_currency": "USD", "period_anchor_day": 25, "charge_day": 2,
    "default_tax_rate": "0", "invoice_prefix": "INV", "invoice_review": "auto", "locale": "en",
}


class TenantSettings(db.Model):
    """A tenant's settings in one mode. Both modes start alike (tenant creation writes both);
    each then changes only with a key of its own mode."""

    __tablename__ = "tenant_settings"

    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    legal_name: Mapped[str | None] = mapped_column(sa.String(200))
    address: Mapped[dict | None] = mapped_column(sa.JSON)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    default_currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    period_anchor_day: Mapped[int] = mapped_column(sa.SmallInteger, default=25)
    charge_day: Mapped[int] = mapped_column(sa.SmallInteger, default=2)
    default_tax_rate: Mapped[str] = mapped_column(sa.String(16), default="0")
    invoice_prefix: Mapped[str] = mapped_column(sa.String(16), default="INV")
    invoice_review: Mapped[str] = mapped_column(sa.String(8), default="auto")
    auto_finalize_after_days: Mapped[int | None] = mapped_column(sa.SmallInteger)
    locale: Mapped[str] = mapped_column(sa.String(16), default="en")
    logo: Mapped[str | None] = mapped_column(sa.Text)  # a data: URI, embedded in invoices
    # Email: the sender shown to customers, where replies go, and finance's address (period
    # summaries, notices). The sender address defaults to the operator's AGGREGATOR_EMAIL_FROM.
    email_from_name: Mapped[str | None] = mapped_column(sa.String(200))
    email_from: Mapped[str | None] = mapped_column(sa.String(320))
    email_reply_to: Mapped[str | None] = mapped_column(sa.String(320))
    finance_email: Mapped[str | None] = mapped_column(sa.String(320))
    # Collection: the hour of the due date (tenant's time zone) at which invoices are charged;
    # the days after the first failure at which a declined charge is retried; what an invoice
    # becomes after the last failure (uncollectible, or open and past due).
    charge_hour: Mapped[int] = mapped_column(sa.SmallInteger, default=9, server_default="9")
    retry_days: Mapped[list] = mapped_column(sa.JSON, default=lambda: [3, 5, 7])
    after_final_failure: Mapped[str] = mapped_column(sa.String(16), default="uncollectible",
                                                     server_default="uncollectible")
    # Payment terms: an invoice is due this many days after it is issued (None: on the first
    # charge_day after its period closes).
    payment_terms_days: Mapped[int | None] = mapped_column(sa.SmallInteger)
    # Which emails customers are sent (PLATFORMA's notifications): their invoice, a receipt, an
    # overdue notice, a usage threshold reached. Webhooks follow each endpoint's subscription.
    notify_invoice_generated: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    notify_payment_received: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    notify_payment_overdue: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    notify_usage_threshold: Mapped[bool] = mapped_column(sa.Boolean, default=True, server_default=sa.true())
    # Stripe, in this mode: the secret key and webhook signing secret sealed by the vault (and
    # the hints the API shows), an API base (test mode only: localstripe, the tests' server),
    # and the pace of a charge run (None: Stripe's limits for the mode).
    stripe_secret_key: Mapped[str | None] = mapped_column(sa.Text)
    stripe_secret_key_hint: Mapped[str | None] = mapped_column(sa.String(40))
    stripe_webhook_secret: Mapped[str | None] = mapped_column(sa.Text)
    stripe_webhook_secret_hint: Mapped[str | None] = mapped_column(sa.String(40))
    stripe_api_base: Mapped[str | None] = mapped_column(sa.String(500))
    stripe_rate_limit: Mapped[int | None] = mapped_column(sa.SmallInteger)
    stripe_concurrency: Mapped[int | None] = mapped_column(sa.SmallInteger)
    # Payouts: the day of the month (tenant's time zone) on which what was collected is gathered
    # into one payout per provider and currency; whether they are approved at once (else finance
    # reviews them first).
    payout_day: Mapped[int] = mapped_column(sa.SmallInteger, default=10, server_default="10")
    payout_auto_approve: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    # Tax identity and documents (issue 20): the seller's country (ISO 3166-1 alpha-2; decides the
    # default locale, the EU rules and the default of void_finalized), its tax ids ([{"type":
    # "eu_vat", "value": "DE123456789"}], Stripe's type names), the tax's name ("VAT", "GST") and
    # the invoice's title ("Tax invoice" where the law wants it), whether an exempt business
    # customer in another EU country is reverse charged, how a customer pays by bank transfer
    # ({"account_holder", "iban", "bic", "bsb", "account_number", "bank_name", "reference"}),
    # whether a finalized invoice may be voided (NULL: no in the EU, yes elsewhere; else a credit
    # note corrects it) and past how many lines an invoice's detail goes to a CSV attachment.
    country: Mapped[str | None] = mapped_column(sa.String(2))
    tax_ids: Mapped[list] = mapped_column(sa.JSON, default=list, server_default="[]")
    tax_name: Mapped[str] = mapped_column(sa.String(32), default="Tax", server_default="Tax")
    invoice_title: Mapped[str] = mapped_column(sa.String(64), default="Invoice", server_default="Invoice")
    reverse_charge: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())
    payment_instructions: Mapped[dict | None] = mapped_column(sa.JSON)
    void_finalized: Mapped[bool | None] = mapped_column(sa.Boolean)
    invoice_line_limit: Mapped[int] = mapped_column(sa.Integer, default=2000, server_default="2000")

    tenant: Mapped[Tenant] = relationship(lazy="joined", innerjoin=True)

    __table_args__ = (
        sa.CheckConstraint("period_anchor_day BETWEEN 1 AND 28", name="anchor_day"),
        sa.CheckConstraint("charge_day BETWEEN 1 AND 28", name="charge_day"),
        sa.CheckConstraint("invoice_review IN ('auto', 'manual')", name="invoice_review"),
        sa.CheckConstraint("charge_hour BETWEEN 0 AND 23", name="charge_hour"),
        sa.CheckConstraint("after_final_failure IN ('uncollectible', 'past_due')", name="after_final_failure"),
        sa.CheckConstraint("payout_day BETWEEN 1 AND 28", name="payout_day"),
        sa.CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="payment_terms_days"),
        sa.CheckConstraint("invoice_line_limit BETWEEN 10 AND 100000", name="invoice_line_limit"),
    )

    @property
    def id(self) -> str:  # the tenant's: what the API shows as the tenant
        return self.tenant_id

    @property
    def created_at(self) -> datetime:
        return self.tenant.created_at


class ApiKey(db.Model):
    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    role: Mapped[str] = mapped_column(sa.String(16))
    provider_id: Mapped[str | None] = mapped_column(sa.ForeignKey("providers.id"), index=True)
    key_hash: Mapped[bytes] = mapped_column(sa.LargeBinary(32), unique=True)
    hint: Mapped[str] = mapped_column(sa.String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.CheckConstraint("role IN ('admin', 'provider')", name="role"),
        sa.CheckConstraint(
            "(role = 'provider') = (provider_id IS NOT NULL)", name="provider_keys_have_provider"
        ),
    )


class Provider(db.Model):
    __tablename__ = "providers"

    id: Mapped[str] = id_column("prov")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    name: Mapped[str] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    revenue_share_rate: Mapped[str] = mapped_column(sa.String(16), default="0")
    stripe_account_id: Mapped[str | None] = mapped_column(sa.String(255))  # Stripe Connect: paid by transfer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Unique so that rows of other tables can reference (tenant, mode, provider) together: the
    # database then refuses a bill whose provider belongs to another tenant or mode.
    __table_args__ = (sa.UniqueConstraint("tenant_id", "livemode", "id"),)


class Customer(db.Model):
    __tablename__ = "customers"

    id: Mapped[str] = id_column("cus")
    tenant_id: Mapped[str] = mapped_column(sa.ForeignKey("tenants.id"))
    livemode: Mapped[bool] = mapped_column(sa.Boolean)
    external_id: Mapped[str] = mapped_column(sa.String(255))
    name: Mapped[str | None] = mapped_column(sa.String(200))
    email: Mapped[str | None] = mapped_column(sa.String(320))
    currency: Mapped[str] = mapped_column(sa.String(3))
    address: Mapped[dict | None] = mapped_column(sa.JSON)
    tax_exempt: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    tax_rate: Mapped[str | None] = mapped_column(sa.String(16))
    # The customer's tax ids, as the tenant's: [{"type": "eu_vat", "value": "FR40303265045"}].
    tax_ids: Mapped[list] = mapped_column(sa.JSON, default=list, server_default="[]")
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(255))
    stripe_payment_method: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "livemode", "external_id"),
        sa.UniqueConstraint("tenant_id", "livemode", "id"),  # referenced with the tenant and mode
    )


class Trial(db.Model):
    """A provider's declaration that a customer's subscription to its app is in a free trial."""

    __tablename__ = "trials"

    provider_id: Mapped[str] = mapped_column(sa.ForeignKey("providers.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"), primary_key=True)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TrialChange(db.Model):
    """Each declaration of a trial's end, as recorded (append-only): rating a period as of its end
    reads the trial as it was known then (catalog/rating.py), not as it is now."""

    __tablename__ = "trial_changes"

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    provider_id: Mapped[str] = mapped_column(sa.ForeignKey("providers.id"))
    customer_id: Mapped[str] = mapped_column(sa.ForeignKey("customers.id"))
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (sa.Index("ix_trial_changes_customer", "customer_id", "provider_id", "recorded_at"),)
