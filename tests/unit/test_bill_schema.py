"""Bill intake: what a provider may submit, where a refusal is reported, and the request fingerprint."""
from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from aggregator import money
from aggregator.errors import InvalidInput
from aggregator.ingest.bills import BillRequest, BillView
from aggregator.ingest.schemas import (
    BatchItemSchema,
    BatchSchema,
    BillInputSchema,
    BillSchema,
    accepted_bill,
    bill_document,
    load_bill,
)

FEW = settings(max_examples=100, deadline=None)

_DROP = object()


def body(**changes) -> dict:
    """A valid bill body, with some fields changed (or dropped with _DROP)."""
    data = {"customer": "cus_42", "amount": "19.99", "currency": "USD", "revenue_share": True}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not _DROP}


def refusal(data: dict, schema=BillInputSchema) -> dict:
    """The schema's messages; the fast path (accepted_bill) must leave the body to the schema."""
    if schema is BillInputSchema:
        assert accepted_bill(data, "k") is None
    elif schema is BatchItemSchema:
        assert accepted_bill(data, data.get("idempotency_key"), frozenset(BatchItemSchema().fields)) is None
    with pytest.raises(ValidationError) as refused:
        schema().load(data)
    return refused.value.messages


# --- accepted bodies ---------------------------------------------------------------------------


def test_a_minimal_bill_is_loaded_with_its_amount_in_minor_units_and_defaults():
    assert BillInputSchema().load(body()) == {
        "customer": "cus_42",
        "amount": 1999,
        "currency": "USD",
        "revenue_share": True,
        "description": "",
        "service_period": None,
        "metadata": {},
    }


@pytest.mark.parametrize("code", ["aud", "Aud", "AUD"])
def test_the_currency_is_accepted_in_any_case_and_kept_upper_case(code):
    assert BillInputSchema().load(body(currency=code))["currency"] == "AUD"


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("19.99", "USD", 1999),
    ("12.5", "EUR", 1250),
    ("-5.00", "USD", -500),
    ("1500", "JPY", 1500),
    ("1.234", "KWD", 1234),
    ("0", "USD", 0),
])
def test_the_amount_is_read_in_the_minor_units_of_the_given_currency(amount, currency, minor):
    assert BillInputSchema().load(body(amount=amount, currency=currency))["amount"] == minor


def test_a_full_bill_keeps_its_description_service_period_and_metadata():
    loaded = BillInputSchema().load(body(
        revenue_share=False,
        description="SMS pack, 1,000 messages",
        service_period={"start": "2026-11-01", "end": "2026-11-30"},
        metadata={"order": "A-17", "note": ""},
    ))
    assert loaded["revenue_share"] is False
    assert loaded["description"] == "SMS pack, 1,000 messages"
    assert loaded["service_period"] == (date(2026, 11, 1), date(2026, 11, 30))
    assert loaded["metadata"] == {"order": "A-17", "note": ""}


def test_a_service_period_of_a_single_day_is_accepted():
    loaded = BillInputSchema().load(body(service_period={"start": "2026-11-01", "end": "2026-11-01"}))
    assert loaded["service_period"] == (date(2026, 11, 1), date(2026, 11, 1))


def test_a_null_service_period_means_none():
    assert BillInputSchema().load(body(service_period=None))["service_period"] is None


def test_exactly_fifty_metadata_keys_are_accepted():
    metadata = {f"k{i}": "v" for i in range(50)}
    assert BillInputSchema().load(body(metadata=metadata))["metadata"] == metadata


def test_metadata_keys_and_values_at_their_length_limits_are_accepted():
    metadata = {"k" * 40: "v" * 500}
    assert BillInputSchema().load(body(metadata=metadata))["metadata"] == metadata


# --- refusals, keyed by field ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["customer", "amount", "currency", "revenue_share"])
def test_a_missing_required_field_is_reported_on_that_field(field):
    assert refusal(body(**{field: _DROP})) == {field: ["Missing data for required field."]}


@pytest.mark.parametrize("number", [
    pytest.param(19.99, id="float"),
    pytest.param(1999, id="int"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="null"),
    pytest.param(["19.99"], id="list"),
])
def test_an_amount_that_is_not_a_string_is_refused_on_amount(number):
    assert list(refusal(body(amount=number))) == ["amount"]


@pytest.mark.parametrize(("amount", "currency"), [
    ("19.999", "USD"),
    ("1.5", "JPY"),
    ("1.2345", "KWD"),
])
def test_amount_with_more_decimals_than_the_currency_is_refused(amount, currency):
    errors = refusal(body(amount=amount, currency=currency))
    assert list(errors) == ["amount"]
    assert "decimal place" in errors["amount"][0]


@pytest.mark.parametrize("amount", ["1e3", " 19.99", "+19.99", "019.99", "NaN", "Infinity", "", "19.", ".99",
                                    "19,99"])
def test_an_amount_that_is_not_a_plain_decimal_string_is_refused_on_amount(amount):
    assert list(refusal(body(amount=amount))) == ["amount"]


def test_an_amount_above_the_maximum_magnitude_is_refused_on_amount():
    assert list(refusal(body(amount="1000000000000.01"))) == ["amount"]


@pytest.mark.parametrize("code", ["ZZZ", "zzz", "XXX", "XTS", "DEM", "US", "", 840, None])
def test_an_unknown_currency_is_refused_on_currency(code):
    assert list(refusal(body(currency=code))) == ["currency"]


def test_an_amount_is_not_judged_against_a_currency_that_was_refused():
    assert list(refusal(body(amount="1.2345", currency="ZZZ"))) == ["currency"]


@pytest.mark.parametrize("value", [
    pytest.param("true", id="string-true"),
    pytest.param("false", id="string-false"),
    pytest.param("yes", id="yes"),
    pytest.param("1", id="string-one"),
    pytest.param("", id="empty-string"),
    pytest.param(None, id="null"),
    pytest.param([True], id="list"),
    pytest.param({}, id="object"),
])
def test_revenue_share_other_than_json_true_or_false_is_refused(value):
    assert list(refusal(body(revenue_share=value))) == ["revenue_share"]


@pytest.mark.parametrize("number", [1, 0, 1.0, 0.0])
def test_revenue_share_as_a_json_number_is_refused(number):
    assert list(refusal(body(revenue_share=number))) == ["revenue_share"]


def test_a_service_period_ending_before_it_starts_is_refused_on_its_end():
    errors = refusal(body(service_period={"start": "2026-11-30", "end": "2026-11-01"}))
    assert errors == {"service_period": {"end": ["The end must not be before the start."]}}


@pytest.mark.parametrize(("period", "field"), [
    ({"start": "2026-11-01"}, "end"),
    ({"end": "2026-11-30"}, "start"),
    ({"start": "2026-02-30", "end": "2026-03-01"}, "start"),
    ({"start": "2026-11-01", "end": "soon"}, "end"),
    ({"start": "2026-11-01", "end": "2026-11-30", "days": 30}, "days"),
])
def test_a_malformed_service_period_is_refused_on_the_offending_part(period, field):
    errors = refusal(body(service_period=period))
    assert list(errors) == ["service_period"]
    assert list(errors["service_period"]) == [field]


def test_a_service_period_that_is_not_an_object_is_refused():
    assert list(refusal(body(service_period="2026-11"))) == ["service_period"]


def test_more_than_fifty_metadata_keys_are_refused():
    errors = refusal(body(metadata={f"k{i}": "v" for i in range(51)}))
    assert errors == {"metadata": ["At most 50 metadata keys."]}


@pytest.mark.parametrize("value", [1, 1.5, True, None, ["a"], {"nested": "x"}])
def test_a_metadata_value_that_is_not_a_string_is_refused(value):
    errors = refusal(body(metadata={"order": value}))
    assert list(errors) == ["metadata"]
    assert "value" in errors["metadata"]["order"]


@pytest.mark.parametrize("metadata", [
    pytest.param({"k" * 41: "v"}, id="key-too-long"),
    pytest.param({"": "v"}, id="empty-key"),
    pytest.param({"k": "v" * 501}, id="value-too-long"),
    pytest.param(["k", "v"], id="list"),
    pytest.param("k=v", id="string"),
])
def test_metadata_outside_its_limits_is_refused(metadata):
    assert list(refusal(body(metadata=metadata))) == ["metadata"]


@pytest.mark.parametrize("field", ["extra", "amount_minor", "status", "idempotency_key"])
def test_an_unknown_field_is_refused_by_name(field):
    assert refusal(body(**{field: "x"})) == {field: ["Unknown field."]}


@pytest.mark.parametrize(("field", "value"), [
    ("customer", ""),
    ("customer", "c" * 256),
    ("customer", 42),
    ("description", "d" * 1001),
    ("description", None),
])
def test_a_text_field_outside_its_limits_is_refused(field, value):
    assert list(refusal(body(**{field: value}))) == [field]


def test_every_refused_field_is_reported_at_once():
    errors = refusal(body(customer="", revenue_share="true", metadata={"k": 1}, extra=1))
    assert set(errors) == {"customer", "revenue_share", "metadata", "extra"}


# --- batch items and the request they become ---------------------------------------------------


def test_a_batch_item_becomes_a_bill_request():
    request = BatchItemSchema().load(body(
        idempotency_key="order-17", currency="aud", amount="12.5",
        service_period={"start": "2026-11-01", "end": "2026-11-30"}, metadata={"order": "17"},
    ))
    assert request == BillRequest(
        idempotency_key="order-17", customer="cus_42", amount=1250, currency="AUD", revenue_share=True,
        description="", service_period=(date(2026, 11, 1), date(2026, 11, 30)), metadata={"order": "17"},
    )


@pytest.mark.parametrize(("key", "expected"), [
    (_DROP, ["Missing data for required field."]),
    ("", None),
    ("k" * 256, None),
    (17, ["Not a valid string."]),
])
def test_a_batch_item_needs_an_idempotency_key_of_1_to_255_characters(key, expected):
    errors = refusal(body(idempotency_key=key), BatchItemSchema)
    assert list(errors) == ["idempotency_key"]
    if expected is not None:
        assert errors["idempotency_key"] == expected


def test_a_batch_item_with_a_255_character_key_is_accepted():
    assert BatchItemSchema().load(body(idempotency_key="k" * 255)).idempotency_key == "k" * 255


def test_a_batch_item_is_refused_on_the_same_fields_as_a_single_bill():
    errors = refusal(body(idempotency_key="k", amount="1.999"), BatchItemSchema)
    assert list(errors) == ["amount"]


def test_a_batch_loads_each_item_on_its_own_and_names_the_fields_of_a_refused_one():
    loaded = BatchSchema().load({"bills": [
        body(idempotency_key="k1"),
        body(idempotency_key="k2", amount="1.001"),
        body(idempotency_key="k3", service_period={"start": "2026-11-30", "end": "2026-11-01"}),
    ]})["bills"]
    assert isinstance(loaded[0], BillRequest) and loaded[0].idempotency_key == "k1"
    assert isinstance(loaded[1], InvalidInput)
    assert loaded[1].fields == {"amount": ["USD amounts have at most 2 decimal places."]}
    assert loaded[1].message == "Invalid bill: amount: USD amounts have at most 2 decimal places."
    assert isinstance(loaded[2], InvalidInput)
    assert loaded[2].fields == {"service_period.end": ["The end must not be before the start."]}


@pytest.mark.parametrize(("bills", "message"), [
    ([], "Send between 1 and 1000 items."),
    ([body(idempotency_key=str(i)) for i in range(1001)], "Send between 1 and 1000 items."),
    ({"0": body(idempotency_key="k")}, "Not a valid list."),
])
def test_a_batch_holds_between_1_and_1000_items(bills, message):
    assert refusal({"bills": bills}, BatchSchema) == {"bills": [message]}


def test_a_batch_of_exactly_1000_items_is_accepted():
    loaded = BatchSchema().load({"bills": [body(idempotency_key=str(i)) for i in range(1000)]})["bills"]
    assert len(loaded) == 1000 and all(isinstance(item, BillRequest) for item in loaded)


def test_a_batch_without_bills_is_refused():
    assert refusal({}, BatchSchema) == {"bills": ["Missing data for required field."]}


# --- fingerprints ------------------------------------------------------------------------------


def load_item(**changes) -> BillRequest:
    return BatchItemSchema().load(body(idempotency_key="k1", **changes))


def test_the_same_amount_written_differently_has_the_same_fingerprint():
    assert load_item(amount="12.5").fingerprint() == load_item(amount="12.50").fingerprint()


def test_the_currency_in_another_case_has_the_same_fingerprint():
    assert load_item(currency="aud").fingerprint() == load_item(currency="AUD").fingerprint()


def test_the_fingerprint_ignores_metadata_order():
    first = load_item(metadata={"a": "1", "b": "2"})
    second = load_item(metadata={"b": "2", "a": "1"})
    assert first.fingerprint() == second.fingerprint()


def test_the_fingerprint_identifies_content_not_the_idempotency_key():
    request = load_item()
    assert dataclasses.replace(request, idempotency_key="k2").fingerprint() == request.fingerprint()


def test_an_omitted_description_is_the_same_as_an_empty_one():
    assert load_item().fingerprint() == load_item(description="").fingerprint()


def test_the_fingerprint_is_a_sha256_digest():
    assert len(load_item().fingerprint()) == 32


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
periods = st.none() | st.tuples(dates, st.integers(0, 400)).map(lambda t: (t[0], t[0] + timedelta(days=t[1])))
currencies = st.sampled_from(["USD", "EUR", "AUD", "JPY", "KWD"])
short_text = st.text(max_size=12)
metadata = st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4)

requests = st.builds(
    BillRequest,
    idempotency_key=st.text(min_size=1, max_size=12),
    customer=st.text(min_size=1, max_size=12),
    amount=st.integers(min_value=-10**15, max_value=10**15),
    currency=currencies,
    revenue_share=st.booleans(),
    description=short_text,
    service_period=periods,
    metadata=metadata,
)

other_values = {
    "customer": st.text(min_size=1, max_size=12),
    "amount": st.integers(min_value=-10**15, max_value=10**15),
    "currency": currencies,
    "revenue_share": st.booleans(),
    "description": short_text,
    "service_period": periods,
    "metadata": metadata,
}


@FEW
@given(requests, st.data())
def test_requests_that_differ_in_any_content_field_have_different_fingerprints(request, data):
    field = data.draw(st.sampled_from(sorted(other_values)))
    value = data.draw(other_values[field])
    assume(value != getattr(request, field))
    changed = dataclasses.replace(request, **{field: value})
    assert changed.fingerprint() != request.fingerprint()


@FEW
@given(requests)
def test_equal_requests_have_equal_fingerprints(request):
    copy = dataclasses.replace(request, metadata=dict(reversed(list(request.metadata.items()))))
    assert copy.fingerprint() == request.fingerprint()


@FEW
@given(currencies.flatmap(lambda c: st.tuples(
    st.just(c), st.integers(min_value=-money.MAX_MAJOR * 10 ** money.exponent(c),
                            max_value=money.MAX_MAJOR * 10 ** money.exponent(c)))))
def test_an_amount_with_or_without_trailing_zeros_loads_to_the_same_fingerprint(case):
    currency, minor = case
    canonical = money.format_amount(minor, currency)
    shortened = canonical.rstrip("0").rstrip(".") if "." in canonical else canonical
    assert load_item(amount=canonical, currency=currency).fingerprint() == \
        load_item(amount=shortened, currency=currency).fingerprint()


# --- the fast path agrees with the schemas -----------------------------------------------------


def loaded_by_schema(data: dict, key: str) -> BillRequest:
    return BillRequest(key, **BillInputSchema().load(data))


@pytest.mark.parametrize("data", [
    body(),
    body(currency="aud", amount="12.5"),
    body(amount="-5.00", revenue_share=False, description="SMS pack"),
    body(amount="1500", currency="JPY", service_period=None),
    body(amount="1.234", currency="KWD", metadata={"k" * 40: "v" * 500, "note": ""}),
    body(service_period={"start": "2026-11-01", "end": "2026-11-01"}, metadata={}),
    body(description="d" * 1000, customer="c" * 255),
])
def test_the_fast_path_accepts_well_formed_bills_as_the_schema_loads_them(data):
    assert accepted_bill(data, "k") == loaded_by_schema(data, "k")
    assert load_bill(data, "k") == loaded_by_schema(data, "k")


def test_load_bill_reports_the_header_before_the_body():
    with pytest.raises(InvalidInput) as refused:
        load_bill(body(amount=1), None)
    assert list(refused.value.fields) == ["Idempotency-Key"]
    with pytest.raises(InvalidInput) as refused:
        load_bill(body(amount=1, currency="ZZZ"), "k")
    assert set(refused.value.fields) == {"amount", "currency"}
    assert refused.value.message.startswith("Invalid request: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4)
amount_texts = st.sampled_from(["19.99", "12.5", "0", "-5.00", "1500", "1.234", "1.5", "1e3", "NaN", " 1",
                                "1000000000000.00", "1000000000000.01", "019.99", "", "19.", "-0"])
currency_texts = st.sampled_from(["USD", "usd", "JPY", "KWD", "AUD", "ZZZ", "XTS", "DEM", "us", "ÜSD", "EUR"])
date_texts = st.sampled_from(["2026-11-01", "2026-11-30", "2026-02-30", "20261101", "2026-W44-1", "soon",
                              "2026-11-01T00:00:00"])
field_values = {
    "customer": st.text(max_size=3) | st.sampled_from(["c" * 255, "c" * 256]) | json_values,
    "amount": amount_texts | json_values,
    "currency": currency_texts | json_values,
    "revenue_share": st.booleans() | json_values,
    "description": st.text(max_size=3) | st.sampled_from(["d" * 1000, "d" * 1001]) | json_values,
    "service_period": st.none() | st.fixed_dictionaries({"start": date_texts, "end": date_texts})
    | st.dictionaries(st.sampled_from(["start", "end", "days"]), date_texts | json_values) | json_values,
    "metadata": st.dictionaries(st.text(max_size=41), st.text(max_size=3), max_size=3)
    | st.dictionaries(st.text(min_size=1, max_size=3), json_values, max_size=2) | json_values,
    "extra": json_values,
    "idempotency_key": st.text(max_size=3),
}


well_formed = {
    "customer": st.sampled_from(["cus_42", "c" * 255, "ü"]),
    "amount": st.sampled_from(["19.99", "12.5", "0", "-5.00", "1500", "1.234", "19.990"]),
    "currency": st.sampled_from(["USD", "usd", "JPY", "KWD", "EUR"]),
    "revenue_share": st.booleans(),
    "description": st.text(max_size=5),
    "service_period": st.none() | st.fixed_dictionaries({"start": st.just("2026-11-01"),
                                                         "end": st.sampled_from(["2026-11-01", "2026-11-30"])}),
    "metadata": st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4), max_size=3),
}


def mostly(field: str):
    """Usually a well-formed value, sometimes anything (both are judged by both loaders)."""
    return st.integers(0, 9).flatmap(lambda n: well_formed[field] if n < 8 else field_values[field])


bodies = st.fixed_dictionaries(
    {k: mostly(k) for k in ("customer", "amount", "currency", "revenue_share")},
    optional={k: mostly(k) for k in ("description", "service_period", "metadata")},
) | st.dictionaries(st.sampled_from(sorted(field_values)), st.none(), max_size=8).flatmap(
    lambda keys: st.fixed_dictionaries({k: field_values[k] for k in keys}))


@settings(max_examples=600, deadline=None)
@given(bodies, st.text(min_size=1, max_size=3) | st.none() | st.sampled_from(["", "k" * 255, "k" * 256])
       | st.integers())
def test_whatever_the_fast_path_accepts_the_schema_loads_to_the_same_request(data, key):
    accepted = accepted_bill(data, key)
    if accepted is not None:
        assert accepted == loaded_by_schema(data, key)
        assert IDEMPOTENCY_KEY_OK(key)
    item = {**data, "idempotency_key": key}
    accepted = accepted_bill(item, key, frozenset(BatchItemSchema().fields))
    if accepted is not None:
        assert accepted == BatchItemSchema().load(item)


def IDEMPOTENCY_KEY_OK(key) -> bool:
    return isinstance(key, str) and 1 <= len(key) <= 255


views = st.builds(
    BillView,
    id=st.text(min_size=1, max_size=8), status=st.sampled_from(["pending", "invoiced", "cancelled"]),
    customer=st.text(max_size=8), provider=st.text(max_size=8),
    amount=st.integers(min_value=-10**15, max_value=10**15), currency=currencies,
    revenue_share=st.booleans(), description=short_text,
    service_period=st.none() | st.tuples(dates, dates).map(lambda t: {"start": t[0], "end": t[1]}),
    metadata=metadata, received_at=st.datetimes(timezones=st.just(__import__("datetime").timezone.utc)),
    livemode=st.booleans(), period=dates,
)


@FEW
@given(views)
def test_the_bill_document_is_what_the_bill_schema_dumps(view):
    assert bill_document(view) == BillSchema().dump(view)


@settings(max_examples=500)
@given(st.lists(st.one_of(st.text(), st.integers(-10**15, 10**15), st.booleans(), st.none(),
                          st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=3)),
                max_size=8))
def test_fingerprints_are_computed_on_the_same_bytes_as_before(value):
    """Stored fingerprints were computed on json.dumps' compact form: the faster encoder must
    write exactly those bytes, or a replay would be taken for a conflict."""
    import json

    from aggregator.ingest.bills import canonical_json

    assert canonical_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
