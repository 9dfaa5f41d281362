"""marshmallow fields and schemas shared by every area's API."""
from __future__ import annotations

import functools
import re
from email.errors import MessageError
from email.headerregistry import Address
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale, UnknownLocaleError
from marshmallow import Schema, ValidationError, fields, validate

from . import money
from .pagination import DEFAULT_LIMIT, MAX_LIMIT


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: "yes", 1 or "true" are refused rather than guessed at."""

    def _deserialize(self, value, attr, data, **kwargs):
        if type(value) is not bool:  # 1 == True in Python, so a set lookup would take 1
            raise ValidationError("Not a valid boolean: use true or false.")
        return value


class WholeNumber(fields.Integer):
    """A JSON integer, as JSON Schema's "integer" (the OpenAPI document's) means it: 9 or 9.0, never
    "9", true or 9.5."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        if type(value) is bool:  # an Integral to Python, not a number in JSON
            raise self.make_error("invalid", input=value)
        if type(value) is float and value.is_integer() and abs(value) <= 2**53:
            value = int(value)
        return super()._validated(value)


class Currency(fields.String):
    """An ISO 4217 code; accepted in any case, stored and returned upper-case."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text.isascii():
            raise ValidationError(f"Unknown currency code {text!r}.")
        text = text.upper()
        try:
            return money.check_currency(text)
        except money.MoneyError as exc:
            raise ValidationError(str(exc)) from exc


class Rate(fields.String):
    """A decimal-string rate between 0 and 1 ("0.30" = 30%), kept as its canonical string."""

    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return money.format_rate(money.parse_rate(value))
        except money.MoneyError as exc:
            raise ValidationError(str(exc)) from exc


class AmountString(fields.String):
    """A decimal string; turned into minor units by the schema, which knows the currency."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError('Amounts are decimal strings such as "12.50", not numbers.')
        return value


class TimeZone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if text not in _zones():
            raise ValidationError(f"{text!r} is not an IANA time zone such as 'Australia/Sydney'.")
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover
            raise ValidationError(f"{text!r} is not an IANA time zone.") from exc
        return text


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    """IANA zones, less the tzdata files that are not places: "localtime" (whatever the server's
    zone is) and "Factory" (a placeholder)."""
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) - {"localtime", "Factory"}
    return _ZONES


class CalendarDate(fields.Date):
    """A date written as ISO 8601's extended calendar date, YYYY-MM-DD only (Python's
    date.fromisoformat also reads "20261001" and week dates such as "2026-W40-1")."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not CALENDAR_DATE.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`|~-]+"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^{_ATOM}(\.{_ATOM})*@({_LABEL}\.)+[A-Za-z]{{2,6}}$"


class EmailAddress(fields.String):
    """One email address (no display name), as SMTP takes it: what marshmallow's validator
    accepts and the standard library's email package parses back to the same address (which
    refuses line breaks, several @ and non-ASCII local parts)."""

    def __init__(self, **kwargs):
        # Documented by a pattern the server takes every match of, not as format "email" (RFC 5322
        # allows what SMTP and this check refuse, such as "}@example.com" or quoted local parts).
        kwargs["metadata"] = {"pattern": EMAIL_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(validate=validate.Length(max=320), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        error = f"{text[:80]!r} is not an email address such as billing@example.com."
        try:
            validate.Email(error=error)(text)
            parsed = Address(addr_spec=text)
        except (ValueError, IndexError, MessageError):
            raise ValidationError(error) from None
        if not parsed.domain or parsed.addr_spec != text:
            raise ValidationError(error)
        return text


class LocaleName(fields.String):
    """A locale that Babel (CLDR) has, such as "en_AU": invoices are formatted with it. Only the
    names the OpenAPI document lists (known_locales), not whatever else Babel would guess at
    ("en_ZZ", "en_UK")."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if not LOCALE_NAME.fullmatch(text):
            raise ValidationError("A locale such as 'en' or 'en_AU'.")
        if text not in _locales():
            raise ValidationError(f"{text!r} is not a locale known to CLDR.")
        return text


LOCALE_NAME = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?")


@functools.cache
def _locales() -> frozenset[str]:
    """CLDR's locales of the form "en" or "en_AU", and "zh_CN" for "zh_Hans_CN"."""
    from babel import localedata

    names = set()
    for identifier in localedata.locale_identifiers():
        parts = identifier.split("_")
        for name in (identifier, f"{parts[0]}_{parts[-1]}"):
            if LOCALE_NAME.fullmatch(name):
                try:
                    Locale.parse(name)
                except (UnknownLocaleError, ValueError):
                    continue
                names.add(name)
    return frozenset(names)


def known_locales() -> list[str]:
    return sorted(_locales())


class AddressSchema(Schema):
    line1 = fields.String(validate=validate.Length(max=200), allow_none=True)
    line2 = fields.String(validate=validate.Length(max=200), allow_none=True)
    city = fields.String(validate=validate.Length(max=100), allow_none=True)
    state = fields.String(validate=validate.Length(max=100), allow_none=True)
    postal_code = fields.String(validate=validate.Length(max=20), allow_none=True)
    country = fields.String(validate=validate.Regexp(r"^[A-Z]{2}$", error="Use an ISO 3166 alpha-2 code."),
                            allow_none=True)


class Metadata(fields.Dict):
    """A small flat map of strings, like Stripe's metadata: 50 keys, keys ≤ 40, values ≤ 500."""

    MAX_KEYS = 50

    def __init__(self, **kwargs):
        # The key count is checked by a function, not validate.Length: apispec documents a Length
        # as a string's maxLength, where an object's limit is maxProperties.
        kwargs["metadata"] = {"maxProperties": self.MAX_KEYS, **kwargs.get("metadata", {})}
        super().__init__(
            keys=fields.String(validate=validate.Length(min=1, max=40)),
            values=fields.String(validate=validate.Length(max=500)),
            validate=self._few_keys,
            **kwargs,
        )

    def _few_keys(self, value) -> None:
        if len(value) > self.MAX_KEYS:
            raise ValidationError(f"At most {self.MAX_KEYS} metadata keys.")


def text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


def optional_text(max_length: int) -> fields.String:
    return fields.String(validate=validate.Length(max=max_length), allow_none=True)


def reasonable_instant(value) -> None:
    """Instants between 1970 and 2200: far enough for any billing date, and far from the
    edges of the calendar where UTC conversions and month arithmetic overflow."""
    if not 1970 <= value.year <= 2200 or value.utcoffset() is None:
        raise ValidationError("Use a date between 1970 and 2200, with a time zone offset.")


class ListArgs(Schema):
    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT))
    starting_after = fields.String(validate=validate.Length(min=1, max=40))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    return Schema.from_dict(
        {"data": fields.List(fields.Nested(item_schema)), "has_more": fields.Boolean()},
        name=name,
    )
