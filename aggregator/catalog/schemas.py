"""The plans and subscriptions API's contract (marshmallow: the OpenAPI description and every
refusal rule of the request's shape)."""
from __future__ import annotations

from fractions import Fraction

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .. import money
from ..fields import AmountString, CalendarDate, Currency, ListArgs, Metadata, StrictBoolean, WholeNumber, text
from ..fields import reasonable_instant as _reasonable
from . import rating

CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$", error="1-100 letters, digits, '_', '.' or '-'.")
ENVIRONMENT = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$", error="1-64 lower-case letters, digits, '_' or '-'.")


class Price(AmountString):
    """A price: an amount that is not negative (documented without a minus sign)."""

    non_negative = True


class FeeInputSchema(Schema):
    name = text(200, required=True, metadata={"description": 'The fee\'s name on invoices, e.g. "Hosting".'})
    price = Price(load_default=None, metadata={
        "description": "Per period, a decimal string in the plan currency's minor-unit precision (a fee with "
                       "usage components may leave it out: 0)."})
    timing = fields.String(load_default=rating.IN_ADVANCE, validate=validate.OneOf([rating.IN_ADVANCE,
                                                                                    rating.IN_ARREARS]),
                           metadata={"description": "in_advance: billed at the close before the period it "
                                                    "covers; in_arrears: at the close of the period it covers."})
    revenue_share = StrictBoolean(load_default=True, metadata={
        "description": "For a plan without a parent: whether the provider's revenue-share rate applies "
                       "(false: pass-through)."})
    parent_fee = text(200, load_default=None, allow_none=True, metadata={
        "description": "For a plan built on a parent plan: the parent fee this one resells."})
    usage = fields.List(fields.Nested("UsageComponentInputSchema"), load_default=list,
                        validate=validate.Length(max=20), metadata={
                            "description": "Prices on usage, each rated at every close into one bill per "
                                           "subscription (docs/metering.md)."})

    @validates_schema
    def _price_or_usage(self, data, **kwargs):
        if data.get("price") is None and not data.get("usage"):
            raise ValidationError("Missing data for required field.", "price")


class PlanInputSchema(Schema):
    code = fields.String(required=True, validate=CODE, metadata={"description": "Unique per owner."})
    name = text(200, required=True)
    description = fields.String(load_default="", validate=validate.Length(max=1000))
    currency = Currency(required=True)
    fees = fields.List(fields.Nested(FeeInputSchema), required=True, validate=validate.Length(min=1, max=20),
                       metadata={"description": "Each with its own name. A plan built on a parent plan names the "
                                                "parent fee each resells (parent_fee); a plan without one names none."})
    parent_plan = fields.String(load_default=None, allow_none=True, metadata={
        "description": "A provider's plan: the code of the parent plan it is built on (granted to it)."})
    environments = fields.List(fields.String(validate=ENVIRONMENT), validate=validate.Length(min=1, max=20),
                               metadata={"description": "Where it may be used (default: every environment)."})
    unbilled = StrictBoolean(load_default=False, metadata={"description": "A staging plan: tracked, billed nothing."})
    max_subscriptions_per_customer = WholeNumber(load_default=None, allow_none=True,
                                                 validate=validate.Range(min=1, max=1_000_000))
    requires_payment_method = StrictBoolean(load_default=False)
    granted_to = fields.List(fields.String(validate=validate.Length(min=1, max=40)), validate=validate.Length(
        max=1000), metadata={"description": 'A parent plan: provider ids it is granted to, or ["*"] for all.'})
    metadata = Metadata(load_default=dict)

    @validates_schema
    def _fee_names(self, data, **kwargs):
        names = [fee["name"] for fee in data.get("fees") or ()]
        if len(names) != len(set(names)):
            raise ValidationError("Each fee of a plan has its own name.", "fees")

    @post_load
    def _prices(self, data, **kwargs):
        for i, fee in enumerate(data["fees"]):
            try:
                fee["price"] = money.parse_amount(fee["price"] or "0", data["currency"])
            except money.MoneyError as exc:
                raise ValidationError({"fees": {i: {"price": [str(exc)]}}}) from exc
            if fee["price"] < 0:
                raise ValidationError({"fees": {i: {"price": ["A price is not negative."]}}})
        return data


class PlanUpdateSchema(Schema):
    name = text(200)
    description = fields.String(validate=validate.Length(max=1000))
    environments = fields.List(fields.String(validate=ENVIRONMENT), validate=validate.Length(min=1, max=20))
    max_subscriptions_per_customer = WholeNumber(allow_none=True, validate=validate.Range(min=1, max=1_000_000))
    requires_payment_method = StrictBoolean()
    granted_to = fields.List(fields.String(validate=validate.Length(min=1, max=40)),
                             validate=validate.Length(max=1000))
    metadata = Metadata()


class PlanVersionSchema(Schema):
    effective_from = CalendarDate(load_default=None, allow_none=True, metadata={
        "description": "The start of the first period the prices apply to (default: the open period)."})
    prices = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)), values=Price(),
                         required=True, validate=validate.Length(min=1, max=20), metadata={
                             "description": 'New prices by fee name, e.g. {"Hosting": "99.00"}.'})


class PriceVersionSchema(Schema):
    effective_from = fields.String(allow_none=True, metadata={
        "format": "date", "description": "The start of the first period it applies to (null: from the start)."})
    amount = fields.String()
    recorded_at = fields.String(metadata={"format": "date-time"})


class FeeSchema(Schema):
    name = fields.String()
    timing = fields.String()
    revenue_share = fields.Boolean()
    price = fields.String()
    parent_fee = fields.String(allow_none=True)
    parent_price = fields.String(allow_none=True)
    profit = fields.String(allow_none=True, metadata={
        "description": "The provider's profit per period: price − parent price (negative: priced below its "
                       "parent, it owes the difference)."})
    prices = fields.List(fields.Nested(PriceVersionSchema), metadata={"description": "Its versions, in the order "
                                                                                     "they were recorded."})
    usage = fields.List(fields.Nested("UsageComponentSchema"), metadata={"description": "Its prices on usage."})


class PlanSchema(Schema):
    id = fields.String()
    object = fields.Constant("plan")
    code = fields.String()
    name = fields.String()
    description = fields.String()
    currency = fields.String()
    owner = fields.String(metadata={"description": '"platform" (a parent plan) or the provider\'s id.'})
    parent_plan = fields.String(allow_none=True)
    environments = fields.List(fields.String())
    unbilled = fields.Boolean()
    max_subscriptions_per_customer = fields.Integer(allow_none=True)
    requires_payment_method = fields.Boolean()
    granted_to = fields.List(fields.String(), allow_none=True, metadata={
        "description": 'A parent plan: provider ids it is granted to, or ["*"].'})
    fees = fields.List(fields.Nested(FeeSchema))
    metadata = fields.Dict()
    livemode = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class PlanListArgs(ListArgs):
    owner = fields.String(metadata={"description": '"platform" or a provider id.'})


class EnvironmentInputSchema(Schema):
    name = fields.String(required=True, validate=ENVIRONMENT)


class EnvironmentsSchema(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.String())


class SubscriptionInputSchema(Schema):
    customer = text(255, required=True, metadata={"description": "The customer's id or external_id."})
    plan = fields.String(required=True, validate=validate.Length(min=1, max=100),
                         metadata={"description": "The code (or id) of one of your plans."})
    environment = fields.String(validate=ENVIRONMENT, metadata={"description": "Default: production."})
    external_billing_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=255),
                                        metadata={"description": "Your id of the instance, unique per provider."})
    starts_at = fields.AwareDateTime(validate=_reasonable, metadata={
        "description": "Default now. In the past back to the open period's start (billed retroactively), never "
                       "before the customer existed; in the future: scheduled."})
    quantity = WholeNumber(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    metadata = Metadata(load_default=dict)


class SubscriptionUpdateSchema(Schema):
    plan = fields.String(validate=validate.Length(min=1, max=100))
    quantity = WholeNumber(validate=validate.Range(min=1, max=1_000_000))
    at = fields.AwareDateTime(validate=_reasonable, metadata={
        "description": "When the change takes effect (default now; not before the open period)."})
    metadata = Metadata()


class CancelArgs(Schema):
    at = fields.AwareDateTime(validate=_reasonable, metadata={
        "description": "When it ends (default now; not before the open period)."})


class PhaseSchema(Schema):
    plan = fields.String()
    quantity = fields.Integer()
    starts_at = fields.DateTime()
    ends_at = fields.DateTime(allow_none=True)


class SubscriptionSchema(Schema):
    id = fields.String()
    object = fields.Constant("subscription")
    provider = fields.String()
    customer = fields.String()
    plan = fields.String()
    environment = fields.String()
    external_billing_id = fields.String(allow_none=True)
    quantity = fields.Integer()
    status = fields.String(metadata={"description": "scheduled, active or canceled (on the tenant's clock)."})
    starts_at = fields.DateTime()
    ends_at = fields.DateTime(allow_none=True)
    phases = fields.List(fields.Nested(PhaseSchema))
    metadata = fields.Dict()
    livemode = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class SubscriptionListArgs(ListArgs):
    customer = fields.String(validate=validate.Length(min=1, max=255))
    plan = fields.String(validate=validate.Length(min=1, max=100))


class ChargeSchema(Schema):
    bill = fields.String()
    description = fields.String()
    kind = fields.String(metadata={"description": "in_advance, in_arrears, or adjustment (an in-advance period "
                                                  "settled at its own close: a credit for unused days)."})
    covered = fields.Dict()
    days = fields.Integer()
    period_days = fields.Integer()
    quantity = fields.Integer()
    amount = fields.String()
    platform_fee = fields.String(allow_none=True)
    profit = fields.String(allow_none=True)
    cancelled = fields.Boolean()


class StatementSchema(Schema):
    object = fields.Constant("subscription_statement")
    period = fields.String()
    currency = fields.String()
    amount = fields.String()
    charges = fields.List(fields.Nested(ChargeSchema))


class StatementListSchema(Schema):
    object = fields.Constant("list")
    data = fields.List(fields.Nested(StatementSchema))


class EntitlementSchema(Schema):
    plan = fields.String()
    name = fields.String()
    allowed = fields.Boolean()
    reasons = fields.List(fields.Dict(), metadata={"description": "Why not: code and message per limit."})


class EntitlementListSchema(Schema):
    object = fields.Constant("list")
    customer = fields.String()
    data = fields.List(fields.Nested(EntitlementSchema))


# --- meters and usage components ---------------------------------------------------------------

PROPERTY = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$", error="1-100 letters, digits, '_', '.' or '-', "
                                                                     "starting with a letter or '_'.")
QUANTITY = validate.Regexp(r"^[0-9]{1,15}(\.[0-9]{1,9})?$",
                           error='A quantity is a decimal string such as "100" or "0.5".')


class _Dimensions(fields.List):
    def __init__(self, **kwargs):
        super().__init__(fields.String(validate=PROPERTY), validate=validate.Length(max=5), metadata={
            "uniqueItems": True,
            "description": "Properties of the events that group their usage (e.g. cloud, region); at most 5."},
                         **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        out = super()._deserialize(value, attr, data, **kwargs)
        if len(out) != len(set(out)):
            raise ValidationError("Each dimension once.")
        return out


class MeterInputSchema(Schema):
    code = fields.String(required=True, validate=CODE, metadata={"description": "Unique in the tenant and mode."})
    name = text(200, required=True)
    unit = text(40, load_default="unit", metadata={"description": 'What a unit is, e.g. "GB", "call", "core".'})
    field = fields.String(load_default=None, allow_none=True, validate=PROPERTY, metadata={
        "description": "The event property holding the value (default: the event's `value`); for unique_count, "
                       "the property whose distinct values are counted."})
    aggregation = fields.String(required=True, validate=validate.OneOf(
        ["count", "sum", "max", "latest", "unique_count", "time_weighted", "hourly_max"]), metadata={
        "description": "count, sum, max, latest, unique_count (of `field`), time_weighted (value × hours held, "
                       "e.g. GB-hours) or hourly_max (per hour the maximum sample, summed over hours)."})
    reset = fields.String(load_default="period", validate=validate.OneOf(["period", "never"]), metadata={
        "description": "period: usage starts again each period; never: carried across periods (seats)."})
    decimals = WholeNumber(load_default=0, validate=validate.Range(min=0, max=9), metadata={
        "description": "Decimal places a value may have (0: integers)."})
    dimensions = _Dimensions(load_default=list)


class MeterUpdateSchema(Schema):
    name = text(200)
    unit = text(40)
    field = fields.String(allow_none=True, validate=PROPERTY)
    aggregation = fields.String(validate=validate.OneOf(
        ["count", "sum", "max", "latest", "unique_count", "time_weighted", "hourly_max"]))
    reset = fields.String(validate=validate.OneOf(["period", "never"]))
    decimals = WholeNumber(validate=validate.Range(min=0, max=9))
    dimensions = _Dimensions()


class MeterSchema(Schema):
    id = fields.String()
    object = fields.Constant("meter")
    code = fields.String()
    name = fields.String()
    unit = fields.String()
    field = fields.String(allow_none=True)
    aggregation = fields.String()
    reset = fields.String()
    decimals = fields.Integer()
    dimensions = fields.List(fields.String())
    in_use = fields.Boolean(metadata={"description": "It has usage events: how it aggregates is fixed."})
    livemode = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


UNIT_PRICE_PATTERN = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,9}0*)?$"  # below money.MAX_MAJOR, 9 places at most


class UnitPrice(fields.String):
    """A unit price: a decimal string, possibly finer than the currency's minor unit."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"pattern": UNIT_PRICE_PATTERN, "maxLength": 40, **kwargs.get("metadata", {})}
        super().__init__(validate=validate.Regexp(UNIT_PRICE_PATTERN, error=(
            'A unit price is a decimal string such as "0.05" (at most 9 decimal places).')), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError('A decimal string such as "0.05", not a number.')
        return super()._deserialize(value, attr, data, **kwargs)


class Quantity(fields.String):
    """A quantity of a meter's unit: a decimal string (or a whole JSON number)."""

    def __init__(self, **kwargs):
        kwargs["metadata"] = {"type": ["string", "integer"], "pattern": QUANTITY.regex.pattern, "minimum": 0,
                              "maximum": 10**15 - 1, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**15:
            value = str(value)
        if not isinstance(value, str):
            raise ValidationError('A quantity is a decimal string such as "100" or a whole number.')
        QUANTITY(value)
        return value


class TierInputSchema(Schema):
    up_to = Quantity(load_default=None, allow_none=True, metadata={
        "description": "The tier's upper bound on the period's whole quantity (cumulative; null: the last tier)."})
    unit_amount = UnitPrice(load_default="0", metadata={"description": "Per unit in the tier."})
    flat_amount = UnitPrice(load_default="0", metadata={"description": "Once, when usage reaches the tier."})


class UsageComponentInputSchema(Schema):
    meter = fields.String(required=True, validate=CODE, metadata={"description": "The meter's code."})
    name = text(200, load_default=None, allow_none=True, metadata={"description": "Default: the meter's name."})
    unit = text(40, load_default=None, allow_none=True, metadata={
        "description": "The unit its invoice line names (default: the meter's), e.g. \"core-hours\" for the cpu "
                       "dimension of a meter whose memory is in GB-hours."})
    dimension = fields.Dict(keys=fields.String(validate=PROPERTY), values=fields.String(validate=validate.Length(
        min=1, max=255)), load_default=dict, validate=validate.Length(max=5), metadata={
        "maxProperties": 5, "propertyNames": {"pattern": PROPERTY.regex.pattern},
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 255},
        "description": "Price only the usage with these dimension values (e.g. {\"resource\": \"cpu\"})."})
    model = fields.String(required=True, validate=validate.OneOf(["per_unit", "package", "graduated", "volume"]))
    unit_amount = UnitPrice(load_default=None, allow_none=True, metadata={
        "description": "per_unit: the price of a unit; package: the price of a package. May be finer than the "
                       "currency's minor unit (\"0.0005\"): the total is rounded once."})
    package_size = WholeNumber(load_default=None, allow_none=True, validate=validate.Range(min=1, max=10**12))
    tiers = fields.List(fields.Nested(TierInputSchema), load_default=list, validate=validate.Length(max=20))
    included_units = Quantity(load_default="0", metadata={"description": "A free first allowance each period."})
    minimum = Price(load_default=None, allow_none=True, metadata={"description": "Billed at least, per period."})
    maximum = Price(load_default=None, allow_none=True, metadata={"description": "Billed at most, per period."})
    thresholds = fields.List(WholeNumber(validate=validate.Range(min=1, max=100, error=(
        "A threshold is a percentage of the included units, from 1 to 100."))), load_default=list,
        validate=validate.Length(max=10), metadata={
            "description": "Percentages of the included units at which usage.threshold_reached is sent "
                           "(e.g. [80, 90, 100])."})

    @validates_schema
    def _thresholds(self, data, **kwargs):
        thresholds = data.get("thresholds") or []
        if len(thresholds) != len(set(thresholds)):
            raise ValidationError("Each threshold once.", "thresholds")
        if thresholds and not Fraction(data.get("included_units") or "0") > 0:
            raise ValidationError("Thresholds are percentages of the included units: give included_units.",
                                  "thresholds")



class TierSchema(Schema):
    up_to = fields.String(allow_none=True)
    unit_amount = fields.String()
    flat_amount = fields.String()


class UsageComponentSchema(Schema):
    id = fields.String()
    meter = fields.String()
    name = fields.String()
    dimension = fields.Dict(keys=fields.String(), values=fields.String())
    unit = fields.String()
    model = fields.String()
    unit_amount = fields.String(allow_none=True)
    package_size = fields.Integer(allow_none=True)
    tiers = fields.List(fields.Nested(TierSchema))
    included_units = fields.String()
    minimum = fields.String(allow_none=True)
    maximum = fields.String(allow_none=True)
    thresholds = fields.List(fields.Integer())
