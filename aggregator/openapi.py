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
from marshmallow import fields, validate

from . import fields as our
from . import money

#: No string the API takes holds a NUL (PostgreSQL text cannot): web.refuse_unusable_requests.
NO_NUL = "[^\u0000]"


_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: http(s) URLs that marshmallow's Url (require_tld=False) takes, for the fields of that type.
HTTP_URL = rf"^https?://(({_LABEL}\.)+[A-Za-z]{{2,6}}|{_LABEL})(:[0-9]{{1,5}})?(/[A-Za-z0-9._~/-]*)?$"

#: A calendar date in the years 1970-2200 (a period's name, where fields.reasonable_instant's bounds apply).
DATE_1970_2200 = r"^(19[7-9][0-9]|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"

#: An RFC 3339 instant with its offset, in the years fields.reasonable_instant takes.
INSTANT_1970_2200 = (r"^(19[7-9][0-9]|2[01][0-9]{2}|2200)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
                     r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$")


def amount_pattern(places: int, signed: bool = True) -> str:
    """money.parse_amount's decimal strings in a currency of `places` decimals: at most
    money.MAX_MAJOR, and no digit finer than the minor unit but trailing zeros ("19.990" USD);
    not `signed`: no minus sign (a price)."""
    fraction = rf"(\.[0-9]{{1,{places}}}0*)?" if places else r"(\.0+)?"
    digits = len(str(money.MAX_MAJOR)) - 1
    return rf"^{'-?' if signed else ''}((0|[1-9][0-9]{{0,{digits - 1}}}){fraction}|{money.MAX_MAJOR}(\.0+)?)$"


def field_rules(self, field: fields.Field, ret: dict, **kwargs: Any) -> dict:
    """The JSON Schema of what `field` loads, beyond apispec's reading of its type and validators."""
    if isinstance(field, our.Currency):
        return {"enum": sorted(money.currencies()), "description": ret.get(
            "description", "An ISO 4217 code (upper case; lower case is read as upper case).")}
    if isinstance(field, our.CalendarDate) and "pattern" not in ret:
        return {"pattern": rf"^{our.CALENDAR_DATE.pattern}$"}
    if isinstance(field, our.TimeZone):
        return {"enum": sorted(our._zones())}
    if isinstance(field, our.LocaleName):
        return {"enum": our.known_locales()}
    if isinstance(field, our.Rate):
        return {"pattern": r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"}
    if isinstance(field, our.AmountString):
        signed = not getattr(field, "non_negative", False)
        return {"pattern": amount_pattern(max(money.currencies().values()), signed), "maxLength": 40}
    if isinstance(field, fields.DateTime) and our.reasonable_instant in field.validators:
        return {"pattern": INSTANT_1970_2200}
    if isinstance(field, fields.Url) and "pattern" not in ret:
        return {"pattern": HTTP_URL}
    if getattr(field, "items_judged_one_by_one", False):
        # the list is taken whatever its items are; each is answered on its own (its status and error)
        return {"items": {"anyOf": [ret["items"], {}]}, "description": ret.get(
            "description", "Each item is accepted or refused on its own: an item that is not a valid bill "
                           "is answered with its own status and error, not the batch's.")}
    if isinstance(field, our.Metadata):
        return {"propertyNames": {"minLength": 1, "maxLength": 40, "pattern": f"^{NO_NUL}*$"}}
    if isinstance(field, fields.Dict) and field.key_field is not None:  # e.g. a plan version's prices by fee name
        rules: dict[str, Any] = {}
        for rule in field.validators:
            if isinstance(rule, validate.Length):
                rules.update({"minProperties": rule.min, "maxProperties": rule.max})
        for rule in field.key_field.validators:
            if isinstance(rule, validate.Length):
                rules["propertyNames"] = {"minLength": rule.min or 0, "maxLength": rule.max, "pattern": f"^{NO_NUL}*$"}
        return {name: value for name, value in rules.items() if value is not None}
    if type(field) is fields.String or isinstance(field, (our.EmailAddress,)):
        if "pattern" not in ret and "enum" not in ret and "format" not in ret:
            low, high = ret.get("minLength", 0), ret.get("maxLength", "")
            return {"pattern": f"^{NO_NUL}{{{low},{high}}}$"}
    return {}


def register(plugin: MarshmallowPlugin) -> None:
    """Add the rules to the plugin's converter (call after the spec is initialised, before any
    blueprint is registered)."""
    plugin.converter.add_attribute_function(field_rules)


#: The links from each create operation to the operations on what it created (OpenAPI `links`):
#: (method, path of the create, its success status) -> [(link name, method, path, {parameter: expression})].
LINKS: dict[tuple[str, str, int], list[tuple[str, str, str, dict[str, str]]]] = {}


def _link(create: tuple[str, str, int], body_id: str, parameter: str, *targets: tuple[str, str]) -> None:
    for method, path in targets:
        name = f"{method.capitalize()}{''.join(part.capitalize() for part in re.split(r'[/_{}]+', path) if part)}"
        LINKS.setdefault(create, []).append((name, method, path, {parameter: f"$response.body#/{body_id}"}))


_link(("post", "/v1/providers", 201), "id", "provider_id",
      ("get", "/v1/providers/{provider_id}"), ("patch", "/v1/providers/{provider_id}"),
      ("post", "/v1/providers/{provider_id}/keys"))
for _create in (("post", "/v1/tenant/keys", 201), ("post", "/v1/providers/{provider_id}/keys", 201)):
    _link(_create, "id", "key_id", ("get", "/v1/keys/{key_id}"), ("delete", "/v1/keys/{key_id}"))
_link(("post", "/v1/customers", 201), "id", "customer_id",
      ("get", "/v1/customers/{customer_id}"), ("patch", "/v1/customers/{customer_id}"))
_link(("post", "/v1/customers", 201), "external_id", "external_id",
      ("put", "/v1/customers/{external_id}/trial"), ("get", "/v1/customers/{external_id}/trial"),
      ("delete", "/v1/customers/{external_id}/trial"))
_link(("post", "/v1/bills", 201), "id", "bill_id", ("get", "/v1/bills/{bill_id}"), ("delete", "/v1/bills/{bill_id}"))
_link(("post", "/v1/webhook_endpoints", 201), "id", "endpoint_id",
      ("get", "/v1/webhook_endpoints/{endpoint_id}"), ("patch", "/v1/webhook_endpoints/{endpoint_id}"),
      ("delete", "/v1/webhook_endpoints/{endpoint_id}"), ("post", "/v1/webhook_endpoints/{endpoint_id}/rotate_secret"),
      ("get", "/v1/webhook_endpoints/{endpoint_id}/deliveries"))
_link(("post", "/v1/invoices/{invoice_id}/payments", 201), "payment/id", "payment_id",
      ("get", "/v1/payments/{payment_id}"))
_link(("post", "/v1/invoices/{invoice_id}/payments", 201), "invoice/id", "invoice_id",
      ("get", "/v1/invoices/{invoice_id}"), ("post", "/v1/invoices/{invoice_id}/refunds"),
      ("get", "/v1/invoices/{invoice_id}/refunds"), ("get", "/v1/invoices/{invoice_id}/payments"))
_link(("post", "/v1/invoices/{invoice_id}/refunds", 201), "id", "refund_id", ("get", "/v1/refunds/{refund_id}"))


def declare_links(paths: dict) -> None:
    """Add LINKS to the document's paths (apispec's, once every blueprint is registered)."""
    for (method, path, status), links in LINKS.items():
        responses = paths[path][method]["responses"]
        response = responses[str(status) if str(status) in responses else status]
        response["links"] = {name: {
            "operationRef": "#/paths/" + target.replace("~", "~0").replace("/", "~1") + f"/{target_method}",
            "parameters": parameters} for name, target_method, target, parameters in links}


def declare_cross_field_rules(schemas: dict) -> None:
    """Rules that tie one field to another, on the components that have them (apispec's, once
    every blueprint is registered): an amount (a plan's prices) has at most its currency's decimals; an exchange
    rate is between two different currencies."""
    by_places: dict[int, list[str]] = {}
    for code, places in sorted(money.currencies().items()):
        by_places.setdefault(places, []).append(code)
    for name in ("BillInput", "BatchItem"):
        schema = schemas.get(name)
        if schema is None:
            continue
        schema["properties"]["amount"].pop("pattern", None)  # each branch has its own
        schema["anyOf"] = [{"properties": {"currency": {"enum": codes}, "amount": {"pattern": amount_pattern(places)}}}
                           for places, codes in sorted(by_places.items())]
    plan = schemas.get("PlanInput")
    if plan is not None:  # each fee's price has at most the plan currency's decimals
        plan["anyOf"] = [{"properties": {"currency": {"enum": codes}, "fees": {"items": {"properties": {
            "price": {"pattern": amount_pattern(places, signed=False)},
            "usage": {"items": {"properties": {  # a usage price's bounds too
                "minimum": {"pattern": amount_pattern(places, signed=False)},
                "maximum": {"pattern": amount_pattern(places, signed=False)}}}}}}}}}
            for places, codes in sorted(by_places.items())]
    if "UsageComponentInput" in schemas:  # thresholds are percentages of included units: some are included
        schemas["UsageComponentInput"]["allOf"] = [
            {"if": {"properties": {"thresholds": {"minItems": 1}}, "required": ["thresholds"]},
             "then": {"required": ["included_units"], "properties": {"included_units": {"pattern": "[1-9]",
                                                                                         "minimum": 1}}}}]
    if "FeeInput" in schemas:  # a fee has a flat price, usage components, or both
        schemas["FeeInput"]["anyOf"] = [{"required": ["price"]},
                                        {"required": ["usage"], "properties": {"usage": {"minItems": 1}}}]
    if "MeterInput" in schemas:  # a unique_count meter names its field; timed ones reset each period
        schemas["MeterInput"]["allOf"] = [
            {"if": {"properties": {"aggregation": {"const": "unique_count"}}, "required": ["aggregation"]},
             "then": {"properties": {"field": {"type": "string"}}, "required": ["field"]}},
            {"if": {"properties": {"aggregation": {"enum": ["time_weighted", "hourly_max"]}},
                    "required": ["aggregation"]},
             "then": {"properties": {"reset": {"const": "period"}}}}]
    if "FxRateInput" in schemas:
        schemas["FxRateInput"]["not"] = {"anyOf": [
            {"properties": {"base": {"const": code}, "quote": {"const": code}}, "required": ["base", "quote"]}
            for code in sorted(money.currencies())]}
