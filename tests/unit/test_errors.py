"""Domain errors: marshmallow's nested messages flattened to dotted field names, and the HTTP table."""
from __future__ import annotations

import pytest
from marshmallow import ValidationError

from aggregator.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unauthenticated,
    describe,
    flatten_messages,
    validation_fields,
)
from aggregator.ingest.schemas import BillInputSchema

# --- flatten_messages --------------------------------------------------------------------------


def test_flat_messages_are_kept_as_they_are():
    assert flatten_messages({"amount": ["Bad."], "currency": ["Unknown."]}) == {
        "amount": ["Bad."], "currency": ["Unknown."]}


def test_a_nested_field_is_named_by_its_dotted_path():
    assert flatten_messages({"service_period": {"end": ["Before the start."]}}) == {
        "service_period.end": ["Before the start."]}


def test_deep_nesting_joins_every_level():
    messages = {"customer": {"address": {"country": ["Use an ISO 3166 alpha-2 code."]}}}
    assert flatten_messages(messages) == {"customer.address.country": ["Use an ISO 3166 alpha-2 code."]}


def test_list_indices_become_path_segments():
    messages = {"bills": {0: {"amount": ["Bad."]}, 3: {"currency": ["Unknown."]}}}
    assert flatten_messages(messages) == {"bills.0.amount": ["Bad."], "bills.3.currency": ["Unknown."]}


def test_an_integer_key_at_the_top_becomes_a_string():
    assert flatten_messages({0: {"amount": ["Bad."]}}) == {"0.amount": ["Bad."]}


def test_a_dict_fields_key_and_value_errors_keep_their_path():
    messages = {"metadata": {"order": {"value": ["Not a valid string."]}, "x" * 41: {"key": ["Too long."]}}}
    assert flatten_messages(messages) == {
        "metadata.order.value": ["Not a valid string."],
        f"metadata.{'x' * 41}.key": ["Too long."],
    }


def test_a_schema_level_error_at_the_top_is_about_the_body():
    assert flatten_messages({"_schema": ["Invalid input type."]}) == {"body": ["Invalid input type."]}


def test_a_schema_level_error_inside_a_nested_object_is_about_that_object():
    assert flatten_messages({"service_period": {"_schema": ["Invalid."]}}) == {"service_period": ["Invalid."]}


def test_a_bare_list_of_messages_is_about_the_body():
    assert flatten_messages(["Bad.", "Worse."]) == {"body": ["Bad.", "Worse."]}


def test_a_bare_string_is_about_the_body():
    assert flatten_messages("Bad.") == {"body": ["Bad."]}


def test_a_non_string_message_is_turned_into_text():
    assert flatten_messages({"amount": 42}) == {"amount": ["42"]}


def test_a_list_mixing_objects_is_flattened_under_the_same_prefix():
    assert flatten_messages({"bills": [{"amount": ["Bad."]}, {"currency": ["Unknown."]}]}) == {
        "bills.amount": ["Bad."], "bills.currency": ["Unknown."]}


def test_a_prefix_is_put_in_front_of_every_name():
    assert flatten_messages({"end": ["Bad."]}, "service_period") == {"service_period.end": ["Bad."]}


def test_nothing_to_flatten_gives_nothing():
    assert flatten_messages({}) == {}


def test_a_real_schema_refusal_flattens_to_one_name_per_field():
    with pytest.raises(ValidationError) as refused:
        BillInputSchema().load({
            "customer": "cus_1", "amount": 12.5, "currency": "usd", "revenue_share": "yes",
            "service_period": {"start": "2026-11-30", "end": "2026-11-01"},
            "metadata": {"order": 17}, "extra": True,
        })
    flat = flatten_messages(refused.value.messages)
    assert set(flat) == {"amount", "revenue_share", "service_period.end", "metadata.order.value", "extra"}
    assert all(isinstance(m, str) for messages in flat.values() for m in messages)


def test_a_period_refused_after_its_fields_loaded_is_named_by_its_end():
    with pytest.raises(ValidationError) as refused:
        BillInputSchema().load({
            "customer": "cus_1", "amount": "12.50", "currency": "USD", "revenue_share": True,
            "service_period": {"start": "2026-11-30", "end": "2026-11-01"},
        })
    assert flatten_messages(refused.value.messages) == {
        "service_period.end": ["The end must not be before the start."]}


def test_validation_fields_drops_the_request_location_level():
    messages = {"json": {"amount": ["Bad."], "service_period": {"end": ["Early."]}},
                "headers": {"Idempotency-Key": ["Missing data for required field."]}}
    assert validation_fields(messages) == {
        "amount": ["Bad."], "service_period.end": ["Early."],
        "Idempotency-Key": ["Missing data for required field."]}


# --- domain errors and their HTTP statuses -----------------------------------------------------


@pytest.mark.parametrize(("error", "status", "type_"), [
    (InvalidInput("Bad amount."), 422, "validation_error"),
    (NotFound("No such bill."), 404, "not_found"),
    (Conflict("Already invoiced."), 409, "conflict"),
    (Unauthenticated("Bad key."), 401, "authentication_error"),
    (Forbidden("Admins only."), 403, "permission_error"),
])
def test_each_error_category_has_one_http_status_and_type(error, status, type_):
    assert describe(error) == (status, {"type": type_, "message": error.message, "code": error.code})


def test_a_subclass_is_described_by_its_category_with_its_own_code():
    class BillAlreadyInvoiced(Conflict):
        code = "bill_already_invoiced"

    assert describe(BillAlreadyInvoiced("The bill is on an invoice.")) == (409, {
        "type": "conflict", "code": "bill_already_invoiced", "message": "The bill is on an invoice."})


def test_invalid_input_on_a_field_reports_the_message_under_that_field():
    error = InvalidInput.on("amount", "Too many decimals.", code="amount_precision")
    assert isinstance(error, DomainError)
    assert describe(error) == (422, {
        "type": "validation_error", "code": "amount_precision", "message": "Too many decimals.",
        "fields": {"amount": ["Too many decimals."]}})


def test_a_code_given_to_an_error_replaces_the_class_default_only_for_that_error():
    assert NotFound("No such bill.", code="bill_missing").code == "bill_missing"
    assert NotFound("No such bill.").code == "resource_missing"


def test_an_error_copies_its_fields_and_omits_them_when_empty():
    fields = {"amount": ["Bad."]}
    error = InvalidInput("Bad.", fields=fields)
    fields["currency"] = ["Unknown."]
    assert error.fields == {"amount": ["Bad."]}
    assert InvalidInput("Bad.", fields={}).fields is None
    assert "fields" not in describe(InvalidInput("Bad."))[1]
