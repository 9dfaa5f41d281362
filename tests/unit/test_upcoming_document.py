"""The upcoming invoice's response is built without marshmallow (upcoming_document); it must be
what UpcomingInvoiceSchema, the documented shape, dumps."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.consolidate.invoices import BillItem, CreditItem, build_invoice
from aggregator.consolidate.schemas import UpcomingInvoiceSchema, upcoming_document
from aggregator.consolidate.upcoming_service import UpcomingInvoice
from aggregator.periods.calendar import period_starting

PERIOD = period_starting(date(2026, 10, 25), 25, "Australia/Sydney")

bills = st.lists(st.builds(
    BillItem, id=st.one_of(st.just("upcoming_1"), st.text("abc", min_size=1, max_size=5).map(lambda s: "bill_" + s)),
    provider_id=st.sampled_from(["prov_a", "prov_b"]), amount=st.integers(-10**6, 10**6),
    currency=st.sampled_from(["AUD", "USD", "JPY"]), description=st.text(max_size=20),
    service_start=st.one_of(st.none(), st.just(date(2026, 11, 25))), service_end=st.just(date(2026, 12, 24))),
    max_size=8)
credits = st.lists(st.builds(CreditItem, id=st.just("cred_1"), amount=st.integers(1, 10**5), currency=st.just("AUD"),
                             description=st.just("Credit carried")), max_size=2)


@settings(max_examples=60, deadline=None)
@given(bills, credits, st.sampled_from(["0", "0.1", "0.0825"]))
def test_the_upcoming_invoice_document_is_what_its_schema_dumps(items, carried, tax):
    items = [b if b.service_start else BillItem(b.id, b.provider_id, b.amount, b.currency, b.description)
             for b in items]
    rates = {("USD", "AUD"): Decimal("1.52"), ("JPY", "AUD"): Decimal("0.0101")}
    draft = build_invoice("AUD", Decimal(tax), items, carried, rates)
    upcoming = UpcomingInvoice("cust-1", PERIOD, draft, frozenset({"upcoming_1"}))
    assert upcoming_document(upcoming) == UpcomingInvoiceSchema().dump(upcoming)


def test_a_rated_line_has_no_bill_and_says_its_source():
    draft = build_invoice("AUD", Decimal(0), [BillItem("upcoming_1", "prov_a", 1500, "AUD", "Hosting")], [], {})
    document = upcoming_document(UpcomingInvoice("cust-1", PERIOD, draft, frozenset({"upcoming_1"})))
    assert (document["lines"][0]["bill"], document["lines"][0]["source"]) == (None, "subscription")
