from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .. import money
from ..errors import InvalidInput, flatten_messages
from ..fields import reasonable_instant, AmountString, Currency, ListArgs, Metadata, StrictBoolean, text
from .bills import BillRequest

IDEMPOTENCY_KEY = validate.Length(min=1, max=255)


class ServicePeriodSchema(Schema):
    start = fields.Date(required=True)
    end = fields.Date(required=True)

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


class ItemsLoadedOneByOne(fields.List):
    """A list whose items are accepted or refused one by one: each loaded item becomes the
    inner schema's result, each refused one an InvalidInput naming its fields."""

    def __init__(self, inner, max_items: int, **kwargs):
        super().__init__(inner, **kwargs)
        self.max_items = max_items

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, list):
            raise ValidationError("Not a valid list.")
        if not 1 <= len(value) <= self.max_items:
            raise ValidationError(f"Send between 1 and {self.max_items} items.")
        results = []
        for item in value:
            try:
                results.append(self.inner.deserialize(item))
            except ValidationError as exc:
                flat = flatten_messages(exc.messages)
                results.append(InvalidInput(
                    "Invalid bill: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in flat.items()),
                    fields=flat))
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

    def _amount(self, bill):
        return money.format_amount(bill.amount, bill.currency)


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
