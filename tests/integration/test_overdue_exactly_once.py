"""An invoice becomes overdue exactly once: the conditional UPDATE (`overdue_at IS NULL` in its
WHERE) lets one run set it and announce it; a re-run, or workers racing on PostgreSQL, set and
announce nothing more."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime

import sqlalchemy as sa

from aggregator.db import db
from aggregator.events.models import Event
from aggregator.payments import overdue_service
from tests.support.invoicing import advance, send

DUE = date(2026, 12, 2)
END_OF_DUE_DATE = datetime.fromisoformat("2026-12-02T13:00:00+00:00")  # Sydney


def _closed(tenant, customers: int = 3):
    provider = tenant.provider()
    for n in range(customers):
        tenant.customer(f"cust-{n}")
        send(provider, f"b{n}", customer=f"cust-{n}")
    advance(tenant)  # closed, due on 2 December, not yet overdue
    return tenant


def _overdue_events(app, tenant) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Event).where(
            Event.tenant_id == tenant.id, Event.type == "invoice.overdue"))


def test_the_next_unit_is_the_end_of_the_earliest_due_date(app, tenant):
    _closed(tenant)
    with app.app_context():
        assert overdue_service.next_overdue(tenant.id, False, "Australia/Sydney") == (DUE, END_OF_DUE_DATE)
        assert overdue_service.next_overdue(tenant.id, True, "Australia/Sydney") is None  # live mode has none


def test_a_second_run_sets_and_announces_nothing(app, tenant):
    _closed(tenant)
    with app.app_context():
        first = overdue_service.mark_overdue_due(tenant.id, False, DUE, END_OF_DUE_DATE)
        again = overdue_service.mark_overdue_due(tenant.id, False, DUE, END_OF_DUE_DATE)
        assert (len(first), again) == (3, [])
        assert overdue_service.next_overdue(tenant.id, False, "Australia/Sydney") is None
    assert _overdue_events(app, tenant) == 3


def test_a_large_due_date_is_marked_in_chunks_each_its_own_transaction(app, tenant):
    _closed(tenant, customers=7)
    with app.app_context():
        assert len(overdue_service.mark_overdue_due(tenant.id, False, DUE, END_OF_DUE_DATE, chunk=3)) == 7
        assert overdue_service.next_overdue(tenant.id, False, "Australia/Sydney") is None
    assert _overdue_events(app, tenant) == 7


def test_workers_racing_mark_each_invoice_overdue_once(app, tenant, postgres_only):
    _closed(tenant, customers=20)
    barrier = threading.Barrier(4)

    def worker(_):
        with app.app_context():
            barrier.wait()
            return overdue_service.mark_overdue_due(tenant.id, False, DUE, END_OF_DUE_DATE, chunk=3)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    marked = [invoice for result in results for invoice in result]
    assert len(marked) == len(set(marked)) == 20
    assert _overdue_events(app, tenant) == 20
