from __future__ import annotations

import functools

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .. import money
from ..fields import (
    AddressSchema,
    Currency,
    EmailAddress,
    ListArgs,
    LocaleName,
    Rate,
    StrictBoolean,
    TimeZone,
    WholeNumber,
    optional_text,
    text,
)
from . import tax_ids
from .logos import MAX_SIDE, MAX_URI_CHARS, logo_problem
from .models import ROLES


def _increasing(days: list[int]) -> None:
    if any(b <= a for a, b in zip(days, days[1:])):
        raise ValidationError("Days in increasing order, each once.")


def _real_image(uri: str) -> None:
    problem = logo_problem(uri)
    if problem:
        raise ValidationError(problem)

#: As periods.calendar and the tenant_settings check constraint say (accounts sits below periods).
MAX_PAYMENT_TERMS_DAYS = 365

MAX_TAX_IDS = 5  # as Stripe allows a customer


class Country(fields.String):
    """An ISO 3166-1 alpha-2 country code that CLDR knows ("AU", "DE"); upper case."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"enum": [*sorted(_countries()), *([None] if kwargs.get("allow_none") else [])],
                              **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if len(text) != 2 or not text.isascii() or not text.isupper() or text not in _countries():
            raise ValidationError(f"{text[:10]!r} is not an ISO 3166-1 alpha-2 country code such as 'AU' or 'DE'.")
        return text


@functools.cache
def _countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes as CLDR names them (less its groupings: EU, UN, …)."""
    from babel import Locale

    return frozenset(code for code in Locale("en").territories if len(code) == 2 and code.isalpha()
                     and code not in {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


class TaxIdSchema(Schema):
    """A tax id, as Stripe names its types; checked for form (country prefix, length, check
    digits) and stored in its compact form."""

    type = fields.String(required=True, validate=validate.OneOf(sorted(tax_ids.TYPES)), metadata={
        "description": "; ".join(f"{t.name}: {t.label}" for t in tax_ids.TYPES.values())})
    value = fields.String(required=True, validate=validate.Length(min=1, max=64), metadata={
        "description": "As written (\"DE 136 695 976\"); stored and returned in its compact form (DE136695976). "
                       "An EU VAT number starts with its country's prefix."})

    @validates_schema
    def _well_formed(self, data, **kwargs):
        missing = {name: ["Missing data for required field."] for name in ("type", "value") if name not in data}
        if missing:  # required even in a PATCH (partial loads reach nested schemas): a tax id is whole
            raise ValidationError(missing)
        try:
            tax_ids.normalize(data["type"], data["value"])
        except ValueError as exc:
            raise ValidationError(str(exc), field_name="value") from None

    @post_load
    def _compact(self, data, **kwargs):
        return {"type": data["type"], "value": tax_ids.normalize(data["type"], data["value"])}


def tax_id_list(description: str) -> fields.List:
    return fields.List(fields.Nested(TaxIdSchema), validate=validate.Length(max=MAX_TAX_IDS),
                       metadata={"description": description})


def _checked(normalize):
    def check(value: str) -> None:
        try:
            normalize(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
    return check


class PaymentInstructionsSchema(Schema):
    """How a customer pays by bank transfer: what invoices print for manual collection."""

    account_holder = optional_text(200)
    iban = fields.String(allow_none=True, validate=[validate.Length(max=42), _checked(tax_ids.normalize_iban)],
                         metadata={"description": "Checked by its check digits; stored in its compact form "
                                                  "(DE89370400440532013000)."})
    bic = fields.String(allow_none=True, validate=[validate.Length(max=14), _checked(tax_ids.normalize_bic)],
                        metadata={"description": "8 or 11 characters (COBADEFFXXX)."})
    bsb = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[0-9]{3}-?[0-9]{3}$", error="An Australian BSB: six digits, such as 062-000."))
    account_number = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[0-9A-Za-z -]{1,34}$", error="Up to 34 letters, digits, spaces or dashes."))
    bank_name = optional_text(200)
    reference = optional_text(140)

    @post_load
    def _compact(self, data, **kwargs):
        if data.get("iban"):
            data["iban"] = tax_ids.normalize_iban(data["iban"])
        if data.get("bic"):
            data["bic"] = tax_ids.normalize_bic(data["bic"])
        if data.get("bsb"):
            data["bsb"] = f"{data['bsb'].replace('-', '')[:3]}-{data['bsb'].replace('-', '')[3:]}"
        return data


class TenantSchema(Schema):
    id = fields.String(dump_only=True)
    object = fields.Constant("tenant", dump_only=True)
    name = text(200)
    legal_name = optional_text(200)
    address = fields.Nested(AddressSchema, allow_none=True)
    timezone = TimeZone()
    default_currency = Currency()
    period_anchor_day = WholeNumber(validate=validate.Range(min=1, max=28))  # 5.5 is not 5
    charge_day = WholeNumber(validate=validate.Range(min=1, max=28))
    default_tax_rate = Rate()
    invoice_prefix = fields.String(validate=validate.Regexp(
        r"^[A-Z0-9][A-Z0-9-]{0,15}$", error="1-16 upper-case letters, digits or dashes."))
    invoice_review = fields.String(validate=validate.OneOf(["auto", "manual"]), metadata={
        "description": "auto: invoices are finalized at the close; manual: they stay draft until "
                       "finalized (or until auto_finalize_after_days)."})
    auto_finalize_after_days = WholeNumber(allow_none=True, validate=validate.Range(min=0, max=60))
    locale = LocaleName(metadata={"description": "Formatting of invoices, e.g. en_AU."})
    logo = fields.String(allow_none=True, validate=_real_image, metadata={
        "description": "A base64 data: URI of a PNG, JPEG, GIF, WebP or SVG image, checked to be one "
                       f"(at most {MAX_URI_CHARS:,} characters and {MAX_SIDE}×{MAX_SIDE} pixels).",
        "maxLength": MAX_URI_CHARS, "contentMediaType": "image/*",
        "pattern": r"^data:image/(png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]*={0,2}$"})
    email_from_name = fields.String(allow_none=True, validate=[
        validate.Length(max=200),
        validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="No line breaks or other control characters.")],
        metadata={"description": "The sender name of emails to customers (default: the tenant's name)."})
    email_from = EmailAddress(allow_none=True, metadata={
        "description": "The sender address of emails to customers (default: the operator's AGGREGATOR_EMAIL_FROM)."})
    email_reply_to = EmailAddress(allow_none=True, metadata={"description": "Where customers' replies go."})
    finance_email = EmailAddress(allow_none=True, metadata={
        "description": "Receives the summary of each closed period and operational notices (a webhook endpoint "
                       "disabled). None: nothing is sent to finance."})
    charge_hour = WholeNumber(validate=validate.Range(min=0, max=23), metadata={
        "description": "The hour of the due date (tenant's time zone) at which invoices are charged (default 9)."})
    retry_days = fields.List(WholeNumber(validate=validate.Range(min=1, max=60)),
                             validate=[validate.Length(max=10), _increasing], metadata={
        "description": "Days after the first failed charge on which it is retried (default [3, 5, 7]); [] : never."})
    after_final_failure = fields.String(validate=validate.OneOf(["uncollectible", "past_due"]), metadata={
        "description": "What an invoice becomes when the last retry fails: uncollectible (default), or it stays "
                       "open, past due."})
    payment_terms_days = WholeNumber(allow_none=True, validate=validate.Range(min=0, max=MAX_PAYMENT_TERMS_DAYS),
                                     metadata={
        "description": "Payment terms: invoices are due this many days after they are issued (0-365; 14: "
                       "\"net 14\"), and charged at charge_hour that day. null (default): due on the first "
                       "charge_day after the period closes."})
    payout_day = WholeNumber(validate=validate.Range(min=1, max=28), metadata={
        "description": "The day of the month (tenant's time zone, from midnight) on which what was collected is "
                       "gathered into one payout per provider and currency (default 10)."})
    payout_auto_approve = StrictBoolean(metadata={
        "description": "true: payouts are approved (and sent) as soon as they are built; false (default): "
                       "finance approves them (POST /v1/payouts/{id}/approve)."})
    stripe_secret_key = fields.String(load_only=True, allow_none=True, validate=validate.Regexp(
        r"^(sk|rk)_(test|live)_[A-Za-z0-9_]{4,250}$", error="A Stripe secret key: sk_test_… or sk_live_…"),
        metadata={"description": "Write-only; stored encrypted. sk_test_… in test mode only, sk_live_… in live "
                                 "mode only. null: stop charging through Stripe (manual collection)."})
    stripe_webhook_secret = fields.String(load_only=True, allow_none=True, validate=validate.Regexp(
        r"^whsec_[A-Za-z0-9_+/=]{4,250}$", error="A Stripe webhook signing secret: whsec_…"),
        metadata={"description": "Write-only; stored encrypted: verifies POST /v1/stripe/webhooks/{tenant}/{mode}."})
    stripe_api_base = fields.Url(load_only=True, allow_none=True, require_tld=False, schemes={"http", "https"},
                                 validate=validate.Length(max=500), metadata={
        "description": "Test mode only: another Stripe API address (localstripe, a test server)."})
    stripe_rate_limit = WholeNumber(allow_none=True, validate=validate.Range(min=1, max=1000),
                                       metadata={"description": "Stripe requests a second a charge run makes "
                                                                "(default: 25 in test mode, 100 live)."})
    stripe_concurrency = WholeNumber(allow_none=True, validate=validate.Range(min=1, max=100),
                                        metadata={"description": "Charges in flight at once (default 10)."})
    stripe = fields.Function(lambda s: {
        "secret_key": s.stripe_secret_key_hint, "webhook_secret": s.stripe_webhook_secret_hint,
        "api_base": s.stripe_api_base,
        "webhook_path": f"/v1/stripe/webhooks/{s.tenant_id}/{'live' if s.livemode else 'test'}",
    }, dump_only=True, metadata={"type": "object", "description": "Stripe in this mode, as hints (never the secrets)."})
    country = Country(allow_none=True, metadata={
        "description": "Where the tenant is established (ISO 3166-1 alpha-2): decides the EU rules (reverse "
                       "charge, void_finalized) and, when a tenant is created without a locale or sets its country "
                       "while its locale is still the default en, the locale (AU: en_AU, DE: de_DE)."})
    tax_ids = tax_id_list("The tenant's tax ids, printed on its invoices (an ABN, a VAT number).")
    tax_name = text(32, metadata={"description": "What the tax is called on invoices: VAT, GST (default Tax)."})
    invoice_title = text(64, metadata={"description": "The invoices' title: Tax invoice where the law wants it "
                                                      "(default Invoice)."})
    reverse_charge = StrictBoolean(metadata={
        "description": "true: an exempt business customer with an EU VAT number in another EU member state is "
                       "invoiced without tax, \"VAT reverse charged\" (only where the tenant's country is an EU member "
                       "state; default false)."})
    payment_instructions = fields.Nested(PaymentInstructionsSchema, allow_none=True, metadata={
        "description": "What invoices print for payment by bank transfer (IBAN and BIC, or BSB and account "
                       "number; reference: what the customer quotes, null: the invoice number)."})
    void_finalized = StrictBoolean(allow_none=True, metadata={
        "description": "Whether a finalized invoice may be voided (else a credit note corrects it). null "
                       "(default): not in the EU (by country), allowed elsewhere."})
    invoice_line_limit = WholeNumber(validate=validate.Range(min=10, max=100000), metadata={
        "description": "Past this many lines an invoice's PDF summarizes its detail and attaches the full list "
                       "as CSV (default 2000)."})
    livemode = fields.Boolean(dump_only=True, metadata={
        "description": "The mode these settings apply to: each mode has its own, changed with its own keys."})
    created_at = fields.DateTime(dump_only=True)


class ProviderSchema(Schema):
    id = fields.String(dump_only=True)
    object = fields.Constant("provider", dump_only=True)
    name = text(200, required=True)
    email = EmailAddress(allow_none=True)
    revenue_share_rate = Rate(load_default="0")
    stripe_account_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^acct_[A-Za-z0-9_]{1,250}$", error="A Stripe Connect account id: acct_…"), metadata={
        "description": "Its Stripe Connect account: payouts are sent to it by transfer. null: paid by bank "
                       "transfer, recorded by finance."})
    livemode = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class CreatedProviderSchema(ProviderSchema):
    api_key = fields.String(dump_only=True, metadata={"description": "Shown once."})
    api_key_id = fields.String(dump_only=True, metadata={"description": "The id of `api_key`, to revoke it."})


class ApiKeySchema(Schema):
    id = fields.String(dump_only=True)
    object = fields.Constant("api_key", dump_only=True)
    role = fields.String(dump_only=True)
    provider = fields.String(attribute="provider_id", dump_only=True, allow_none=True, metadata={
        "description": "The provider of a provider key; null for an admin key."})
    hint = fields.String(dump_only=True)
    livemode = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)


class IssuedKeySchema(ApiKeySchema):
    secret = fields.String(dump_only=True, metadata={"description": "The key itself; shown once."})


class KeyListArgs(ListArgs):
    provider = fields.String(metadata={"description": "A provider's id: that provider's keys."})
    role = fields.String(validate=validate.OneOf(ROLES))


class CustomerSchema(Schema):
    id = fields.String(dump_only=True)
    object = fields.Constant("customer", dump_only=True)
    external_id = text(255, required=True)
    name = optional_text(200)
    email = EmailAddress(allow_none=True)
    currency = Currency()
    address = fields.Nested(AddressSchema, allow_none=True)
    tax_exempt = StrictBoolean(load_default=False)
    tax_rate = Rate(allow_none=True, metadata={"description": "Overrides the tenant's default rate."})
    tax_ids = tax_id_list("The customer's tax ids, printed on its invoices; an EU VAT number makes an exempt "
                          "customer in another member state reverse charged where the tenant enables it.")
    stripe_customer_id = fields.String(allow_none=True, validate=validate.Regexp(
        r"^cus_[A-Za-z0-9]{1,250}$", error="A Stripe customer id: cus_…"))
    stripe_payment_method = fields.String(allow_none=True, validate=validate.Regexp(
        r"^(pm|card|src)_[A-Za-z0-9]{1,250}$", error="A Stripe payment method id: pm_…"), metadata={
        "description": "Charged off session on the charge day. Setting a new one charges the customer's open "
                       "invoices that wait for one (hard decline, action required, past due) at once."})
    credit_balance = fields.Function(lambda c: money.format_amount(getattr(c, "credit_balance", 0), c.currency),
                                     dump_only=True, metadata={
        "type": "string", "description": "Credit not yet applied (overpayments, negative totals): the next "
                                         "invoice takes it as a credit line."})
    livemode = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class CustomerListArgs(ListArgs):
    external_id = fields.String()


class NotificationSettingsSchema(Schema):
    """Which emails a tenant's customers are sent, in one mode (PLATFORMA's notifications.configure).
    Webhooks are not affected: each endpoint has its own subscription."""

    object = fields.Constant("notification_settings", dump_only=True)
    invoice_generated = StrictBoolean(attribute="notify_invoice_generated", metadata={
        "description": "The customer's invoice, with its PDF, when it is finalized (default true)."})
    payment_received = StrictBoolean(attribute="notify_payment_received", metadata={
        "description": "A receipt when an invoice is paid (default true)."})
    payment_overdue = StrictBoolean(attribute="notify_payment_overdue", metadata={
        "description": "A notice when an invoice becomes overdue (invoice.overdue; default true)."})
    usage_threshold = StrictBoolean(attribute="notify_usage_threshold", metadata={
        "description": "A notice when usage reaches a threshold of the included units (default true)."})
    livemode = fields.Boolean(dump_only=True)
