from __future__ import annotations

from marshmallow import Schema, fields, validate

from .. import money
from ..fields import CalendarDate, Currency, ListArgs, reasonable_instant
from ..openapi import DATE_1970_2200
from .export import FORMATS
from .journal import KINDS


def _amount(attribute: str, description: str):
    return fields.Function(lambda obj: money.format_amount(getattr(obj, attribute), obj.currency),
                           metadata={"type": "string", "example": "19.99", "description": description})


_ACCOUNT = ("An account code such as cash or provider_payable:prov_…; a code alone (provider_payable) names "
            "every account of that code.")


class CurrencyTotalSchema(Schema):
    currency = fields.String()
    debits = _amount("debits", "The sum of the debits.")
    credits = _amount("credits", "The sum of the credits.")
    balance = _amount("balance", "Debits less credits: positive is a debit balance, negative a credit balance "
                                 "(a currency's total is zero when the books balance).")


class AccountBalanceSchema(CurrencyTotalSchema):
    """An account of the ledger in one currency."""

    object = fields.Constant("ledger_account")
    account = fields.String(metadata={"description": "cash, receivable, tax_payable, platform_revenue, refunds, fx, "
                                                     "provider_payable:<provider>, provider_clawback:<provider>, "
                                                     "customer_credit:<customer>."})
    type = fields.String(metadata={"enum": ["asset", "liability", "revenue", "contra_revenue", "clearing"]})
    normal_side = fields.String(metadata={"enum": ["debit", "credit", "either"]})

    class Meta:
        ordered = True
        fields = ("object", "account", "type", "normal_side", "currency", "debits", "credits", "balance")


class AccountListSchema(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(AccountBalanceSchema))


class AccountListArgs(Schema):
    account = fields.String(validate=validate.Length(min=1, max=80), metadata={"description": _ACCOUNT})
    currency = Currency()


class EntrySchema(Schema):
    account = fields.String()
    currency = fields.String()
    amount = _amount("amount", "Signed: a debit is positive, a credit negative.")


class JournalSchema(Schema):
    """A balanced set of entries recording one movement of money of one object."""

    id = fields.String()
    object = fields.Constant("ledger_journal")
    kind = fields.String(metadata={"enum": sorted(KINDS)})
    object_type = fields.String(metadata={"enum": sorted(set(KINDS.values()))})
    object_id = fields.String(metadata={"description": "The invoice, payment, refund, credit or payout it records."})
    memo = fields.String(allow_none=True)
    posted_at = fields.DateTime(metadata={"description": "The instant it records, on the tenant's clock."})
    created_at = fields.DateTime(metadata={"description": "When it was written."})
    entries = fields.List(fields.Nested(EntrySchema))
    livemode = fields.Boolean()


class JournalListArgs(ListArgs):
    kind = fields.String(validate=validate.OneOf(sorted(KINDS)))
    object = fields.String(validate=validate.Length(min=1, max=40), metadata={
        "description": "The id of the object the journals record (an invoice, a payment, …)."})
    account = fields.String(validate=validate.Length(min=1, max=80), metadata={
        "description": "Journals with an entry on this account. " + _ACCOUNT})
    posted_gte = fields.AwareDateTime(validate=reasonable_instant, metadata={
        "description": "Posted at or after this instant."})
    posted_lt = fields.AwareDateTime(validate=reasonable_instant,
                                     metadata={"description": "Posted before this instant."})


class TrialBalanceSchema(Schema):
    object = fields.Constant("trial_balance")
    livemode = fields.Boolean()
    balanced = fields.Boolean(metadata={"description": "Each currency's debits equal its credits."})
    accounts = fields.List(fields.Nested(AccountBalanceSchema))
    totals = fields.List(fields.Nested(CurrencyTotalSchema))


class LedgerExportArgs(Schema):
    format = fields.String(load_default="beancount", validate=validate.OneOf(FORMATS), metadata={
        "description": "beancount: Beancount text (accounts opened, a transaction per journal), which bean-check "
                       "accepts; csv: a row per entry."})
    from_ = CalendarDate(data_key="from", attribute="start", metadata={
        "description": "The first day (the tenant's time zone), included; default: the first journal's.",
        "pattern": DATE_1970_2200})
    to = CalendarDate(attribute="end", metadata={
        "description": "The last day (the tenant's time zone), included; default: the last journal's.",
        "pattern": DATE_1970_2200})
