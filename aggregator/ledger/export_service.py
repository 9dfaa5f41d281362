"""The ledger export (docs/invoices.md, Books and payout documents): every journal of a range of
days of a tenant in one mode, as Beancount text or a flat CSV (`export.py`), read as a stream:
`GET /v1/ledger/export` and `aggregator ledger export` write the same text.

The range is of the tenant's local days, both ends included (`from` 2026-11-01 `to`
2026-11-30 is November in the tenant's time zone); without `from` from the first journal, without
`to` up to the last. Journals come in the order they were posted (posted_at, then id), each
with all its entries; the accounts they use are opened first (one GROUP BY: the day each is
first used in the range), so memory stays at one batch of rows whatever the range's size."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from itertools import groupby
from typing import Callable, Iterator
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from ..accounts.models import Customer, Provider
from ..accounts.service import tenant_settings
from ..auth import Principal
from ..db import db, in_ids, run
from ..errors import InvalidInput
from ..periods import calendar as C
from . import export as X
from . import journal as books
from .models import LedgerEntry, LedgerJournal

#: Journals written to the stream together (one chunk of text).
CHUNK_JOURNALS = 500
#: Rows fetched from the database at a time.
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class LedgerExport:
    tenant_id: str
    livemode: bool
    tenant_name: str
    currency: str
    timezone: str
    start: date | None
    end: date | None  # included

    @property
    def name(self) -> str:
        mode = "live" if self.livemode else "test"
        return (f"ledger-{self.tenant_id}-{mode}-{self.start.isoformat() if self.start else 'start'}-"
                f"{self.end.isoformat() if self.end else 'now'}")

    @property
    def title(self) -> str:
        mode = "live" if self.livemode else "test"
        return (f"{self.tenant_name} ({mode} mode): the journals of "
                f"{self.start.isoformat() if self.start else 'the first'} to "
                f"{self.end.isoformat() if self.end else 'the last'} ({self.timezone} days)")


#: The days an export may name (the API documents them): beyond, a day's bounds leave the calendar.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2200, 12, 31)


def ledger_export(principal: Principal, start: date | None = None, end: date | None = None) -> LedgerExport:
    """The export of the caller's tenant and mode from `start` to `end` (local days, included).
    InvalidInput naming `to` when the range ends before it starts."""
    for name, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidInput.on(name, f"A day from {FIRST_DAY.isoformat()} to {LAST_DAY.isoformat()}.")
    if start is not None and end is not None and end < start:
        raise InvalidInput.on("to", f"The range ends ({end.isoformat()}) before it starts ({start.isoformat()}).")
    settings = tenant_settings(principal.tenant_id, principal.livemode)
    return LedgerExport(principal.tenant_id, principal.livemode, settings.legal_name or settings.name,
                        settings.default_currency, settings.timezone, start, end)


def _scope(export: LedgerExport) -> list[sa.ColumnElement[bool]]:
    scope = [LedgerJournal.tenant_id == export.tenant_id, LedgerJournal.livemode == export.livemode]
    if export.start is not None:
        scope.append(LedgerJournal.posted_at >= C.local_midnight(export.start, export.timezone))
    if export.end is not None:
        scope.append(LedgerJournal.posted_at < C.local_midnight(export.end + timedelta(days=1), export.timezone))
    return scope


def _joined(export: LedgerExport, *columns) -> sa.Select:
    """The range's journals joined to their entries by journal id alone (an entry is in its
    journal's tenant and mode: migration 0012's trigger): joined also on the tenant, PostgreSQL
    planned a BitmapAnd with the (tenant, mode, account) index, reading all the tenant's entries
    for each journal."""
    return (sa.select(*columns).select_from(LedgerJournal)
            .join(LedgerEntry, LedgerEntry.journal_id == LedgerJournal.id)
            .where(*_scope(export)))


def journals(export: LedgerExport) -> Iterator[X.ExportedJournal]:
    """The range's journals with their entries, in the order they were posted, read in batches."""
    zone = ZoneInfo(export.timezone)
    query = _joined(export, LedgerJournal.id, LedgerJournal.kind, LedgerJournal.object_type, LedgerJournal.object_id,
                    LedgerJournal.memo, LedgerJournal.posted_at, LedgerEntry.account, LedgerEntry.currency,
                    LedgerEntry.amount).order_by(LedgerJournal.posted_at, LedgerJournal.id, LedgerEntry.id)
    rows = db.session.execute(query, execution_options={"yield_per": BATCH_ROWS})
    for journal_id, group in groupby(rows, key=lambda row: row[0]):
        entries = list(group)
        _, kind, object_type, object_id, memo, posted_at, *_ = entries[0]
        yield X.ExportedJournal(journal_id, kind, object_type, object_id, memo, posted_at,
                                posted_at.astimezone(zone).date(),
                                tuple((account, currency, int(amount)) for *_, account, currency, amount in entries))


def party_names(export: LedgerExport, accounts) -> dict[str, str]:
    """account -> the name of the provider or customer a party account belongs to."""
    parties: dict[str, list[str]] = {}
    for account in accounts:
        code, _, party = account.partition(":")
        if party:
            parties.setdefault(code, []).append(party)
    names: dict[str, str] = {}
    scope = lambda model: (model.tenant_id == export.tenant_id, model.livemode == export.livemode)  # noqa: E731
    providers = sorted({p for code in (books.PROVIDER_PAYABLE, books.PROVIDER_CLAWBACK) for p in parties.get(code, ())})
    if providers:
        found = dict(run(sa.select(Provider.id, Provider.name)
                         .where(*scope(Provider), in_ids(Provider.id, providers))).all())
        for code in (books.PROVIDER_PAYABLE, books.PROVIDER_CLAWBACK):
            names.update({f"{code}:{p}": found[p] for p in parties.get(code, ()) if found.get(p)})
    customers = sorted(parties.get(books.CUSTOMER_CREDIT, ()))
    if customers:
        found = {cid: name or external for cid, name, external in run(
            sa.select(Customer.id, Customer.name, Customer.external_id)
            .where(*scope(Customer), in_ids(Customer.id, customers)))}
        names.update({f"{books.CUSTOMER_CREDIT}:{c}": found[c] for c in customers if found.get(c)})
    return names


def _chunked(items: Iterator[X.ExportedJournal], render: Callable[[list[X.ExportedJournal]], str]) -> Iterator[str]:
    chunk: list[X.ExportedJournal] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= CHUNK_JOURNALS:
            yield render(chunk)
            chunk = []
    if chunk:
        yield render(chunk)


def chunks(export: LedgerExport, form: str) -> Iterator[str]:
    """The export as text, in chunks of CHUNK_JOURNALS journals."""
    if form == "csv":
        yield X.csv_text((), header=True)
        yield from _chunked(journals(export), lambda chunk: X.csv_text(chunk, header=False))
        return
    opened: dict[str, date] = {}  # the day of each account's first use, in what was written
    count = [0]

    def tracked() -> Iterator[X.ExportedJournal]:
        for journal in journals(export):  # in posting order: an account's first is its earliest day
            for account, _, _ in journal.postings:
                opened.setdefault(account, journal.day)
            count[0] += 1
            yield journal

    yield X.beancount_header(export.title, export.currency)
    yield from _chunked(tracked(), lambda chunk: "".join(map(X.beancount_transaction, chunk)))
    # Opened from the journals written, not by a query of its own: a journal posted while the
    # export streams cannot bring an account that is never opened.
    yield X.beancount_opens(opened, party_names(export, opened))
    yield X.beancount_end(count[0])
