"""The bill intake API's contract: marshmallow schemas (they generate the OpenAPI description and
hold every refusal rule), plus a fast acceptance check for well-formed bills and the bill's JSON
representation built without marshmallow, both proven equal to the schemas by the unit tests."""
from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .. import money
from ..errors import InvalidInput, flatten_messages
from ..fields import (
    CALENDAR_DATE,
    AmountString,
    CalendarDate,
    Currency,
    ListArgs,
    Metadata,
    StrictBoolean,
    reasonable_instant,
    text,
)
from .bills import BillRequest, BillView

IDEMPOTENCY_KEY = validate.Length(min=1, max=255)


class ServicePeriodSchema(Schema):
    """The dates the bill is for, inclusive; the end is not before the start."""

    start = CalendarDate(required=True)
    end = CalendarDate(required=True, metadata={"description": "Not before start."})

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data["end"] < data["start"]:
            raise ValidationError("The end must not be before the start.", "end")


class BillInputSchema(Schema):
    customer = text(255, required=True, metadata={"description": "The customer's external_id."})
    amount = AmountString(required=True, metadata={
        "description": 'Decimal string in the currency\'s minor-unit precision, e.g. "19.99". '
                       "Negative for credits."})
    currency = Currency(required=True)
    revenue_share = StrictBoolean(required=True, metadata={
        "description": "true for subscription fees (revenue is shared), false for pass-through "
                       "items such as SMS packs, training or customisation."})
    description = fields.String(load_default="", validate=validate.Length(max=1000))
    service_period = fields.Nested(ServicePeriodSchema, load_default=None, allow_none=True)
    metadata = Metadata(load_default=dict)

    @post_load
    def _to_request(self, data, **kwargs):
        try:
            data["amount"] = money.parse_amount(data["amount"], data["currency"])
        except money.MoneyError as exc:
            raise ValidationError(str(exc), "amount") from exc
        period = data.get("service_period")
        data["service_period"] = (period["start"], period["end"]) if period else None
        return self.make(data)

    def make(self, data):
        return data


class BatchItemSchema(BillInputSchema):
    idempotency_key = fields.String(required=True, validate=IDEMPOTENCY_KEY)

    def make(self, data):
        return BillRequest(**data)


class IdempotencyHeader(Schema):
    idempotency_key = fields.String(data_key="Idempotency-Key", required=True,
                                    validate=IDEMPOTENCY_KEY)


class OptionalIdempotencyHeader(Schema):
    """An Idempotency-Key a request may carry (a retry is then answered as the first was)."""

    idempotency_key = fields.String(data_key="Idempotency-Key", load_default=None, validate=IDEMPOTENCY_KEY)

    class Meta:
        unknown = "exclude"  # every other header


class ItemsLoadedOneByOne(fields.List):
    """A list whose items are accepted or refused one by one: each loaded item becomes the
    inner schema's result, each refused one an InvalidInput naming its fields."""

    items_judged_one_by_one = True  # the OpenAPI document takes any item (aggregator.openapi)

    def __init__(self, inner, max_items: int, **kwargs):
        kwargs["metadata"] = {"minItems": 1, "maxItems": max_items, **kwargs.get("metadata", {})}
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not 1 <= len(value) <= self.max_items:
            raise ValidationError(f"Send between 1 and {self.max_items} items.")
        results = []
        for item in value:
            accepted = accepted_bill(item, item.get("idempotency_key") if type(item) is dict else None,
                                     _BATCH_ITEM_FIELDS)
            if accepted is not None:
                results.append(accepted)
                continue
            try:
                results.append(self.inner.deserialize(item))
            except ValidationError as exc:
                results.append(refusal("Invalid bill", exc.messages))
        return results


class BatchSchema(Schema):
    bills = ItemsLoadedOneByOne(fields.Nested(BatchItemSchema), max_items=1000, required=True)


class ServicePeriodOut(Schema):
    start = fields.Date()
    end = fields.Date()


class BillSchema(Schema):
    id = fields.String()
    object = fields.Constant("bill")
    status = fields.String(metadata={"enum": ["pending", "invoiced", "cancelled"]})
    customer = fields.String(metadata={"description": "The customer's external_id."})
    provider = fields.String()
    amount = fields.Method("_amount", metadata={"type": "string", "example": "19.99"})
    currency = fields.String()
    revenue_share = fields.Boolean()
    description = fields.String()
    service_period = fields.Nested(ServicePeriodOut, allow_none=True)
    metadata = fields.Dict(keys=fields.String(), values=fields.String())
    received_at = fields.DateTime()
    period = fields.Date(metadata={"description": "The invoicing period (named by its start date)."})
    livemode = fields.Boolean()
    source = fields.String(metadata={"enum": ["api", "subscription", "usage"], "description":
                                     "api: sent by its provider; subscription: a plan's fee rated at a close; "
                                     "usage: a subscription's metered usage rated at a close."})
    platform_fee = fields.Method("_platform_fee", metadata={
        "type": ["string", "null"], "description": "A plan-rated bill's platform fee (its parent plan's price); "
                                                   "its provider's profit is amount − platform_fee."})

    def _amount(self, bill):
        return money.format_amount(bill.amount, bill.currency)

    def _platform_fee(self, bill):
        return None if bill.platform_fee is None else money.format_amount(bill.platform_fee, bill.currency)


class BatchItemResultSchema(Schema):
    status = fields.Integer(metadata={"description": "201 stored (or replayed), 4xx refused."})
    replayed = fields.Boolean()
    bill = fields.Nested(BillSchema)
    error = fields.Dict()


class BatchResultSchema(Schema):
    data = fields.List(fields.Nested(BatchItemResultSchema))


class BillListArgs(ListArgs):
    status = fields.String(validate=validate.OneOf(["pending", "invoiced", "cancelled"]))
    customer = fields.String(metadata={"description": "A customer's external_id."})
    provider = fields.String(metadata={"description": "Admin keys only."})


class TrialInputSchema(Schema):
    ends_at = fields.AwareDateTime(required=True, default_timezone=None, validate=reasonable_instant)


class TrialSchema(Schema):
    object = fields.Constant("trial")
    provider = fields.String(attribute="provider_id")
    ends_at = fields.DateTime()
    updated_at = fields.DateTime()


# --- the fast path: well-formed bills without marshmallow's per-field machinery ------------------

_BILL_FIELDS = frozenset(BillInputSchema().fields)
_BATCH_ITEM_FIELDS = frozenset(BatchItemSchema().fields)
_ABSENT: Any = object()
_BILL = BillInputSchema()
_HEADER = IdempotencyHeader()


def accepted_bill(data: Any, idempotency_key: Any, allowed: frozenset[str] = _BILL_FIELDS) -> BillRequest | None:
    """The BillRequest that the schemas would load from `data`, when `data` is plainly well formed;
    None for anything else, which the schemas then judge. This never refuses anything: every rule
    and every error message stays in the schemas above (the unit tests check that whatever this
    accepts, the schemas load to the same request)."""
    if type(data) is not dict or not allowed.issuperset(data) or type(idempotency_key) is not str \
            or not 1 <= len(idempotency_key) <= 255:
        return None
    customer, amount = data.get("customer"), data.get("amount")
    currency, revenue_share = data.get("currency"), data.get("revenue_share")
    description = data.get("description", "")
    if (type(customer) is not str or not 1 <= len(customer) <= 255 or type(amount) is not str
            or type(currency) is not str or not currency.isascii() or type(revenue_share) is not bool
            or type(description) is not str or len(description) > 1000):
        return None
    currency = currency.upper()
    if not money.is_currency(currency):
        return None
    try:
        minor = money.parse_amount(amount, currency)
    except money.MoneyError:
        return None
    period = data.get("service_period")
    if period is not None:
        period = _service_period(period)
        if period is None:
            return None
    metadata = data.get("metadata", _ABSENT)
    if metadata is _ABSENT:
        metadata = {}
    elif not _plain_metadata(metadata):
        return None
    return BillRequest(idempotency_key, customer, minor, currency, revenue_share, description, period,
                       dict(metadata))


def _service_period(value: Any) -> tuple[date, date] | None:
    if type(value) is not dict or len(value) != 2:
        return None
    start, end = value.get("start"), value.get("end")
    if type(start) is not str or type(end) is not str or not CALENDAR_DATE.fullmatch(start) \
            or not CALENDAR_DATE.fullmatch(end):
        return None
    try:
        start, end = date.fromisoformat(start), date.fromisoformat(end)  # what fields.Date uses
    except ValueError:
        return None
    return (start, end) if start <= end else None


def _plain_metadata(value: Any) -> bool:
    return type(value) is dict and len(value) <= 50 and all(
        type(k) is str and 1 <= len(k) <= 40 and type(v) is str and len(v) <= 500
        for k, v in value.items())


def refusal(summary: str, messages: Any) -> InvalidInput:
    """marshmallow's messages as the 422 error naming each field (nested ones dotted)."""
    flat = flatten_messages(messages)
    return InvalidInput(f"{summary}: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in flat.items()),
                        fields=flat)


def load_bill(body: Any, idempotency_key: str | None) -> BillRequest:
    """The body and Idempotency-Key header of `POST /v1/bills` as a BillRequest, or InvalidInput
    naming the refused fields (the header first, as it is checked before the body)."""
    accepted = accepted_bill(body, idempotency_key)
    if accepted is not None:
        return accepted
    try:
        header = _HEADER.load({} if idempotency_key is None else {"Idempotency-Key": idempotency_key})
        loaded = _BILL.load({} if body is None else body)
    except ValidationError as exc:
        raise refusal("Invalid request", exc.messages) from None
    return BillRequest(header["idempotency_key"], **loaded)


# --- the bill as the API shows it, without marshmallow's dump ------------------------------------

def bill_document(bill: BillView) -> dict[str, Any]:
    """What BillSchema dumps for `bill` (the unit tests hold the two equal), built directly: the
    intake responses show up to 1,000 bills each."""
    period = bill.service_period
    return {
        "id": bill.id, "object": "bill", "status": bill.status, "customer": bill.customer,
        "provider": bill.provider, "amount": money.format_amount(bill.amount, bill.currency),
        "currency": bill.currency, "revenue_share": bill.revenue_share, "description": bill.description,
        "service_period": None if period is None else {
            "start": period["start"].isoformat(), "end": period["end"].isoformat()},
        "metadata": bill.metadata, "received_at": bill.received_at.isoformat(),
        "period": bill.period.isoformat(), "livemode": bill.livemode, "source": bill.source,
        "platform_fee": None if bill.platform_fee is None else money.format_amount(bill.platform_fee, bill.currency),
    }
