"""The OpenAPI document says exactly what the server takes and answers.

apispec documents marshmallow's own fields and validators; the rules of this project's fields
(aggregator.fields) and of the request checks every endpoint shares (web.refuse_unusable_requests)
are documented here, as JSON Schema keywords added to each field's property, so that a client
(or schemathesis) generating a request from the document makes one the server takes, and one
the document refuses is refused. The document also declares the links from each create
operation to the operations on what it created."""
from __future__ import annotations

import re
from typing import Any

from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import fields

from . import fields as our
from . import money

#: No string the API takes holds a NUL (PostgreSQL text cannot): web.refuse_unusable_requests.
NO_NUL = "[^\u0000]"


#: An RFC 3339 instant with its offset, in the years fields.reasonable_instant takes.
INSTANT_1970_2200 = (r"^(19[7-9][0-9]|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                     r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")


def amount_pattern(places: int) -> str:
    """money.parse_amount's decimal strings in a currency of `places` decimals: at most
    money.MAX_MAJOR, and no digit finer than the minor unit but trailing zeros ("19.990" USD)."""
    fraction = rf"(\.[0-9]{{1,{places}}}0*)?" if places else r"(\.0+)?"
    digits = len(str(money.MAX_MAJOR)) - 1
    return rf"^-?((0|[1-9][0-9]{{0,{digits - 1}}}){fraction}|{money.MAX_MAJOR}(\.0+)?)$"


def field_rules(self, field: fields.Field, ret: dict, **kwargs: Any) -> dict:
    """The JSON Schema of what `field` loads, beyond apispec's reading of its type and validators."""
    if isinstance(field, our.Currency):
        return {"enum": sorted(money.currencies()), "description": ret.get(
            "description", "An ISO 4217 code (upper case; lower case is read as upper case).")}
    if isinstance(field, our.CalendarDate):
        return {"pattern": rf"^{our.CALENDAR_DATE.pattern}$"}
    if isinstance(field, our.TimeZone):
        return {"enum": sorted(our._zones())}
    if isinstance(field, our.LocaleName):
        return {"enum": our.known_locales()}
    if isinstance(field, our.Rate):
        return {"pattern": r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"}
    if isinstance(field, our.AmountString):
        return {"pattern": amount_pattern(max(money.currencies().values())), "maxLength": 40}
    if isinstance(field, fields.DateTime) and our.reasonable_instant in field.validators:
        return {"pattern": INSTANT_1970_2200}
    if isinstance(field, our.Metadata):
        return {"propertyNames": {"minLength": 1, "maxLength": 40, "pattern": f"^{NO_NUL}*$"}}
    if type(field) is fields.String or isinstance(field, (our.EmailAddress,)):
        if "pattern" not in ret and "enum" not in ret and "format" not in ret:
            low, high = ret.get("minLength", 0), ret.get("maxLength", "")
            return {"pattern": f"^{NO_NUL}{{{low},{high}}}$"}
    return {}


def register(plugin: MarshmallowPlugin) -> None:
    """Add the rules to the plugin's converter (call after the spec is initialised, before any
    blueprint is registered)."""
    plugin.converter.add_attribute_function(field_rules)
