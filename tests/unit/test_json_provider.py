"""The JSON provider (orjson) reads and writes what Flask's standard one does."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from aggregator.web import FastJSONProvider

app = Flask(__name__)
fast, standard = FastJSONProvider(app), DefaultJSONProvider(app)


@pytest.mark.parametrize("text", [
    '{"amount": "19.99", "n": 3, "x": 1.5, "ok": true, "none": null, "list": [1, "two"]}',
    '{"big": 123456789012345678901234567890}',  # orjson would read a float: json keeps the int
    '{"minus_big": -98765432109876543210}',
    '{"amount": NaN}', '{"amount": Infinity}',  # not JSON, but what json (and Flask) accept
    '"\\ud800"',  # a lone surrogate: json reads it, orjson refuses
    '{"dup": 1, "dup": 2}', '"café ✓"', '[]', '{}',
])
def test_reads_what_the_standard_provider_reads(text):
    got, want = fast.loads(text.encode()), standard.loads(text.encode())
    assert repr(got) == repr(want)


@pytest.mark.parametrize("text", ['{"a": ', '{"a": 1,}', "\xff", "", "{'a': 1}"])
def test_refuses_what_the_standard_provider_refuses(text):
    with pytest.raises(ValueError):
        standard.loads(text.encode("latin-1"))
    with pytest.raises(ValueError):
        fast.loads(text.encode("latin-1"))


@pytest.mark.parametrize("value", [
    {"a": [1, 2, {"b": None}], "c": "é ✓", "d": True},
    {"when": datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc), "day": date(2026, 11, 21)},
    {"rate": Decimal("0.30")},
    {1: "non-string key"},
    {"big": 10**30},
])
def test_writes_what_the_standard_provider_writes(value):
    assert json.loads(fast.dumps(value)) == json.loads(standard.dumps(value))


def test_keys_are_sorted_only_when_the_provider_says_so():
    unsorted, ordered = FastJSONProvider(app), FastJSONProvider(app)
    unsorted.sort_keys = False
    assert unsorted.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'
    assert ordered.dumps({"b": 1, "a": 2}) == '{"a":2,"b":1}'  # Flask's default: sorted
