"""The ledger export read by an accountant's tool: a journal of every kind, in two currencies,
exported as Beancount is accepted by `bean-check` (beancount's own checker: syntax, accounts
opened before use, every transaction balanced), and its balances are the ledger's."""
from __future__ import annotations

import csv
import io
import subprocess  # nosec B404  # runs bean-check, installed with the tests
import sys
from collections import defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from aggregator.auth import Principal
from aggregator.db import db
from aggregator.ledger import export_service, service
from aggregator.ledger import journal as books
from aggregator.ledger.export import CSV_COLUMNS, beancount_account
from tests.support.ledger import at, post_every_kind

BEAN_CHECK = Path(sys.executable).with_name("bean-check")


def export_text(app, tenant_id: str, form: str, start: date | None = None, end: date | None = None) -> str:
    with app.app_context():
        found = export_service.ledger_export(Principal(tenant_id, False, "admin", None, "test"), start, end)
        return "".join(export_service.chunks(found, form))


def bean_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BEAN_CHECK), str(path)], capture_output=True, text=True, timeout=60)  # nosec B603


def test_an_export_with_every_journal_kind_passes_bean_check_and_has_the_ledgers_balances(app, tenant, tmp_path):
    ids = post_every_kind(app, tenant.id)
    assert set(ids) - {"first", "all"} == set(books.KINDS), "add a journal of the new kind to post_every_kind"
    path = tmp_path / "books.beancount"
    path.write_text(export_text(app, tenant.id, "beancount"), encoding="utf-8")
    checked = bean_check(path)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), (
        checked.stdout + checked.stderr + path.read_text())

    from beancount import loader
    from beancount.core import data

    entries, errors, options = loader.load_file(str(path))
    assert not errors
    transactions = [e for e in entries if isinstance(e, data.Transaction)]
    assert sorted(t.meta["journal_id"] for t in transactions) == sorted(ids["all"].split())
    assert {t.meta["kind"] for t in transactions} == set(books.KINDS)
    assert options["operating_currency"] == ["AUD"]
    sums: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for t in transactions:
        for posting in t.postings:
            sums[posting.account, posting.units.currency] += posting.units.number
    with app.app_context():
        ledger = service.balances(Principal(tenant.id, False, "admin", None, "test"))
    assert {key: value for key, value in sums.items() if value} == {
        (beancount_account(b.account), b.currency): Decimal(b.balance) / 100 for b in ledger if b.balance}
    opens = {e.account: e for e in entries if isinstance(e, data.Open)}
    assert opens["Liabilities:ProviderPayable:Prov-a"].meta["account"] == "provider_payable:prov_a"
    assert opens["Equity:Fx"].date == date(2026, 11, 2)  # its first use
    voided = [t for t in transactions if "inv_3" in t.links]
    assert sorted(t.meta["kind"] for t in voided) == ["invoice_finalized", "invoice_voided"]


def test_a_range_is_of_the_tenants_days_both_ends_included_and_still_passes_bean_check(app, tenant, tmp_path):
    ids = post_every_kind(app, tenant.id)
    text = export_text(app, tenant.id, "beancount", date(2026, 11, 5), date(2026, 11, 30))
    assert ids["first"] not in text and ids["payment_received"] in text
    assert ids["reversal"] not in text  # Dec 1, 01:00 in Sydney
    path = tmp_path / "november.beancount"
    path.write_text(text, encoding="utf-8")
    assert bean_check(path).returncode == 0
    december = export_text(app, tenant.id, "beancount", date(2026, 12, 1), date(2026, 12, 1))
    assert ids["reversal"] in december and "2026-12-01 * " in december and "2026-12-01 open Assets:Cash" in december


def test_the_csv_is_a_row_per_entry_signed_decimal_amounts_adding_to_zero_per_journal(app, tenant):
    ids = post_every_kind(app, tenant.id)
    rows = list(csv.DictReader(io.StringIO(export_text(app, tenant.id, "csv"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["journal_id"] for r in rows if r["account"] == "cash" and r["kind"] == "payment_received"] == [
        ids["payment_received"]]
    per_journal: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in rows:
        per_journal[row["journal_id"], row["currency"]] += Decimal(row["amount"])
    assert set(per_journal.values()) == {Decimal(0)} and {j for j, _ in per_journal} == set(ids["all"].split())
    first = next(r for r in rows if r["journal_id"] == ids["first"])
    assert (first["date"], first["object_type"], first["object_id"], first["memo"], first["posted_at"]) == (
        "2026-11-02", "invoice", "inv_1", 'Nov "hosting"', "2026-11-02T01:00:00+00:00")
    reversal = next(r for r in rows if r["journal_id"] == ids["reversal"])
    assert reversal["date"] == "2026-12-01"


def test_other_tenants_and_modes_are_not_exported(app, tenant, make_tenant):
    post_every_kind(app, make_tenant(name="Other").id)
    with app.app_context():
        service.post(tenant.id, True, books.payment_received("pay_live", "AUD", 100), at(2))
        db.session.commit()
    assert "pay_live" not in export_text(app, tenant.id, "csv")
    assert export_text(app, tenant.id, "csv").count("\r\n") == 1  # the header only


@pytest.mark.parametrize("form", ["beancount", "csv"])
def test_an_empty_export_is_still_a_valid_file(app, tenant, tmp_path, form):
    text = export_text(app, tenant.id, form)
    if form == "beancount":
        path = tmp_path / "empty.beancount"
        path.write_text(text, encoding="utf-8")
        assert bean_check(path).returncode == 0
    else:
        assert text == ",".join(CSV_COLUMNS) + "\r\n"


def test_on_postgresql_the_export_reads_each_journals_entries_by_its_id_not_the_tenants_entries(
        postgres_only, app, tenant):
    """Joined on the tenant too, PostgreSQL (its statistics stale after a close's bulk insert)
    read all the tenant's entries for each journal through the balance index: 20,000 journals
    took 144 s instead of 3."""
    import sqlalchemy as sa

    post_every_kind(app, tenant.id)
    with app.app_context():
        found = export_service.ledger_export(Principal(tenant.id, False, "admin", None, "test"))
        query = export_service._joined(found, export_service.LedgerEntry.amount)
        sql = str(query.compile(db.engine, compile_kwargs={"literal_binds": True}))
        plan = "\n".join(row[0] for row in db.session.execute(sa.text(f"EXPLAIN {sql}")))  # nosec B608
    assert "ix_ledger_entries_balance" not in plan, plan
