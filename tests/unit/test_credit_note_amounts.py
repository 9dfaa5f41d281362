"""What a credit note takes back of an invoice (consolidate/credit_notes.py): never more than is
left per line and per invoice; the tax follows the invoice's, so crediting an invoice whole, in
one note or many, by lines or by amounts, gives back exactly its subtotal and tax; numbers;
whether a finalized invoice may be voided."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator import money
from aggregator.consolidate.credit_notes import (
    Creditable,
    CreditableLine,
    CreditExceedsInvoice,
    CreditExceedsLine,
    amount_split,
    credit_of_amount,
    credit_of_lines,
    format_number,
    void_allowed,
)
from aggregator.consolidate.invoices import totals
from aggregator.errors import InvalidInput

RATE = Decimal("0.1")


def _invoice(amounts, rate=RATE, credited=(0, 0)):
    t = totals(amounts, rate, "AUD")
    lines = {f"bill_{n}": CreditableLine(f"bill_{n}", "prov_a", f"Line {n}", a) for n, a in enumerate(amounts)}
    return Creditable("AUD", rate, t.subtotal, t.tax, *credited), lines


def test_numbers_read_prefix_cn_year_and_six_digits():
    assert format_number("INV", 2026, 123) == "INV-CN-2026-000123"


def test_a_line_is_credited_with_the_invoices_tax_rate():
    invoice, lines = _invoice([10000, 2000])
    note = credit_of_lines(invoice, lines, [("bill_0", "30.00")])
    assert (note.subtotal, note.tax, note.total) == (3000, 300, 3300)
    assert note.lines[0].bill_id == "bill_0" and note.lines[0].description == "Line 0"


def test_more_than_a_line_has_left_is_refused_naming_it():
    invoice, lines = _invoice([10000, 2000])
    lines["bill_1"] = CreditableLine("bill_1", "prov_a", "Line 1", 2000, credited=1500)
    with pytest.raises(CreditExceedsLine) as refused:
        credit_of_lines(invoice, lines, [("bill_0", None), ("bill_1", "5.01")])
    assert "lines.1.amount" in refused.value.fields
    with pytest.raises(InvalidInput) as unknown:
        credit_of_lines(invoice, lines, [("bill_9", None)])
    assert "lines.0.invoice_line" in unknown.value.fields


def test_more_than_the_invoice_has_left_is_refused():
    invoice, _ = _invoice([10000], credited=(9000, 900))
    with pytest.raises(CreditExceedsInvoice):
        credit_of_amount(invoice, "11.01", "x")
    assert credit_of_amount(invoice, "11.00", "x").total == 1100


def test_an_invoice_without_tax_credits_none():
    invoice, lines = _invoice([999], rate=Decimal(0))
    assert credit_of_lines(invoice, lines, [("bill_0", "3.33")]).tax == 0
    assert credit_of_amount(invoice, "9.99", "x").tax == 0


@given(amounts=st.lists(st.integers(1, 10**7), min_size=1, max_size=6),
       rate=st.sampled_from([Decimal(0), Decimal("0.1"), Decimal("0.19"), Decimal("0.0825")]),
       data=st.data())
def test_crediting_every_line_in_any_steps_gives_back_exactly_the_subtotal_and_tax(amounts, rate, data):
    invoice, lines = _invoice(amounts, rate)
    credited_subtotal = credited_tax = 0
    for step in range(5):  # four notes of parts of lines, then one of all that is left
        unfinished = [b for b, line in lines.items() if line.left]
        if not unfinished:
            break
        bill_id = data.draw(st.sampled_from(unfinished))
        part = data.draw(st.integers(1, lines[bill_id].left)) if step < 4 else lines[bill_id].left
        left = Creditable("AUD", rate, invoice.subtotal, invoice.tax, credited_subtotal, credited_tax)
        requested = [(bill_id, money.format_amount(part, "AUD"))] if step < 4 else [(b, None) for b in unfinished]
        note = credit_of_lines(left, lines, requested)
        assert note.tax <= left.tax_left
        credited_subtotal, credited_tax = credited_subtotal + note.subtotal, credited_tax + note.tax
        for credited_line in note.lines:
            line = lines[credited_line.bill_id]
            lines[line.bill_id] = CreditableLine(line.bill_id, line.provider_id, line.description, line.amount,
                                                 line.credited + credited_line.amount)
    assert not any(line.left for line in lines.values())
    assert (credited_subtotal, credited_tax) == (invoice.subtotal, invoice.tax)


@given(amounts=st.lists(st.integers(1, 10**7), min_size=1, max_size=6),
       rate=st.sampled_from([Decimal(0), Decimal("0.1"), Decimal("0.19")]), data=st.data())
def test_crediting_amounts_until_nothing_is_left_gives_back_exactly_the_subtotal_and_tax(amounts, rate, data):
    invoice, _ = _invoice(amounts, rate)
    credited = (0, 0)
    for step in range(5):  # four notes of some amount, then one of all that is left
        left = Creditable("AUD", rate, invoice.subtotal, invoice.tax, *credited)
        if not left.total_left:
            break
        note = amount_split(left, data.draw(st.integers(1, left.total_left)) if step < 4 else left.total_left, "x")
        assert 0 <= note.tax <= left.tax_left and 0 <= note.subtotal <= left.subtotal_left
        credited = (credited[0] + note.subtotal, credited[1] + note.tax)
    assert credited == (invoice.subtotal, invoice.tax)


@pytest.mark.parametrize("setting, country, allowed", [
    (None, None, True), (None, "AU", True), (None, "US", True), (None, "GB", True),
    (None, "DE", False), (None, "fr", False), (True, "DE", True), (False, "AU", False),
])
def test_a_finalized_invoice_is_voided_by_the_tenants_setting_else_outside_the_eu(setting, country, allowed):
    assert void_allowed(setting, country) is allowed
