"""The books out, as accountants' tools read them: journals as Beancount text and as a flat CSV.
Pure functions over plain values (`export_service` reads the journals and streams these).

Beancount (beancount.github.io/docs/beancount_language_syntax.html). An account name is a root,
one of Assets, Liabilities, Equity, Income, Expenses, then components that each start with a
capital letter or a digit, followed by letters, digits or dashes. Ours map by their type in the
chart (journal.CHART): asset -> Assets, liability -> Liabilities, revenue and contra_revenue ->
Income (`refunds` is a debit-balance Income account, as contra-revenue is), clearing -> Equity
(`fx`, balanced across its two currencies, is Beancount's Equity:Conversions idea); a code
becomes CamelCase (tax_payable -> TaxPayable) and a party's id one component with its first
letter capital and `_` as `-` (prov_01jd… -> Prov-01jd…): ids are `[a-z]+_[0-9a-z]+`, so the
mapping is one to one. Each account is opened (`open`) on the day of its first posting in the
export; each journal is a transaction on its local day (the tenant's time zone), flagged `*`,
tagged with its kind, linked to the object it records (`^inv_…`: an invoice's finalized and
voided journals share the link) and with our ids as metadata. A journal balances in each
currency on its own, so Beancount balances every transaction without prices.

CSV: one row per posting, amounts as decimal strings, signed (a debit positive, a credit
negative), through csv_cells (no cell read as a formula)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Iterable, Mapping, Sequence

from .. import csv_cells, money
from .journal import LedgerError, account_type

FORMATS = ("beancount", "csv")
MEDIA_TYPES = {"beancount": "text/plain", "csv": "text/csv"}  # UTF-8 (werkzeug adds the charset)
EXTENSIONS = {"beancount": "beancount", "csv": "csv"}

#: Our account types -> Beancount's roots.
ROOTS = {"asset": "Assets", "liability": "Liabilities", "revenue": "Income", "contra_revenue": "Income",
         "clearing": "Equity"}

CSV_COLUMNS = ("journal_id", "date", "posted_at", "kind", "object_type", "object_id", "account", "currency",
               "amount", "memo")


@dataclass(frozen=True, slots=True)
class ExportedJournal:
    """A posted journal as exported: `day` is its local date (the tenant's time zone),
    `postings` (account, currency, amount in minor units) in the order they were written."""

    id: str
    kind: str
    object_type: str
    object_id: str
    memo: str | None
    posted_at: datetime
    day: date
    postings: tuple[tuple[str, str, int], ...]


def beancount_account(account: str) -> str:
    """Our account code -> its Beancount name (provider_payable:prov_01jd -> Liabilities:ProviderPayable:Prov-01jd)."""
    kind = account_type(account).name  # raises for an account outside the chart
    if kind not in ROOTS:
        raise LedgerError(f"No Beancount root for the account type {kind!r}.")
    code, _, party = account.partition(":")
    name = f"{ROOTS[kind]}:{''.join(word.capitalize() for word in code.split('_'))}"
    return f"{name}:{party[0].upper()}{party[1:].replace('_', '-')}" if party else name


def _quoted(text: str) -> str:
    """A Beancount string: backslashes and quotes escaped, on one line."""
    flat = " ".join(text.split())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def beancount_header(title: str, operating_currency: str | None) -> str:
    lines = [f"; {title}", "; Written by aggregator (GET /v1/ledger/export); amounts in each currency's minor-unit "
             "precision.", f"option \"title\" {_quoted(title)}"]
    if operating_currency:
        lines.append(f"option \"operating_currency\" {_quoted(operating_currency)}")
    return "\n".join(lines) + "\n\n"


def beancount_opens(first_used: Mapping[str, date], names: Mapping[str, str] | None = None) -> str:
    """An `open` for each account, dated the day of its first posting in the export, in account
    order; `names` gives a party account's provider or customer name (metadata)."""
    names = names or {}
    out = []
    for account in sorted(first_used, key=lambda a: (beancount_account(a), a)):
        out.append(f"{first_used[account].isoformat()} open {beancount_account(account)}\n"
                   f"  account: {_quoted(account)}\n")
        if account in names:
            out.append(f"  name: {_quoted(names[account])}\n")
    return "".join(out) + ("\n" if out else "")


def beancount_transaction(journal: ExportedJournal) -> str:
    narration = f"{journal.kind.replace('_', ' ').capitalize()} {journal.object_id}"
    if journal.memo and journal.memo.strip():  # a blank memo adds nothing (not a dangling ": ")
        narration += f": {journal.memo}"
    lines = [f"{journal.day.isoformat()} * {_quoted(narration)} #{journal.kind} ^{journal.object_id}",
             f"  journal_id: {_quoted(journal.id)}",
             f"  kind: {_quoted(journal.kind)}",
             f"  object_type: {_quoted(journal.object_type)}",
             f"  object_id: {_quoted(journal.object_id)}",
             f"  posted_at: {_quoted(journal.posted_at.isoformat())}"]
    width = max(len(beancount_account(account)) for account, _, _ in journal.postings)
    for account, currency, amount in journal.postings:
        lines.append(f"  {beancount_account(account):<{width}}  {money.format_amount(amount, currency):>16} {currency}")
    return "\n".join(lines) + "\n\n"


def beancount_text(title: str, operating_currency: str | None, journals: Sequence[ExportedJournal],
                   names: Mapping[str, str] | None = None) -> str:
    """A whole export at once (the streamed one is the same text in chunks): the header, the
    transactions, then the `open` of each account they use (Beancount orders directives by date,
    wherever they stand: written last, they are exactly the accounts of the journals written), and
    a closing line saying how many journals it holds (a file cut short lacks it)."""
    return "".join([beancount_header(title, operating_currency),
                    *(beancount_transaction(j) for j in journals),
                    beancount_opens(first_use(journals), names), beancount_end(len(journals))])


def beancount_end(count: int) -> str:
    return f"; end of the export: {count} {'journal' if count == 1 else 'journals'}\n"


def first_use(journals: Iterable[ExportedJournal]) -> dict[str, date]:
    """account -> the day of its first posting among `journals`."""
    first: dict[str, date] = {}
    for journal in journals:
        for account, _, _ in journal.postings:
            if account not in first or journal.day < first[account]:
                first[account] = journal.day
    return first


def csv_rows(journal: ExportedJournal) -> list[list[str]]:
    return [[journal.id, journal.day.isoformat(), journal.posted_at.isoformat(), journal.kind, journal.object_type,
             journal.object_id, account, currency, money.format_amount(amount, currency), journal.memo or ""]
            for account, currency, amount in journal.postings]


def csv_text(journals: Iterable[ExportedJournal], header: bool = True) -> str:
    out = io.StringIO()
    writer = csv_cells.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for journal in journals:
        writer.writerows(csv_rows(journal))
    return out.getvalue()
