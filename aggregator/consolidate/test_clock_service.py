"""Moving a tenant's test clock (the use case behind `POST /v1/test_clock/advance` and
`aggregator periods advance-clock`): the clock itself, its lane's catch-up and the PDFs it
produced. The clock's record and its states are `aggregator.testmode`'s."""
from __future__ import annotations

import time
from datetime import datetime
from typing import Callable

from .. import due
from ..accounts.service import tenant_settings
from ..db import db
from ..errors import Conflict
from ..testmode import get_test_clock, lock_and_advance
from . import due_work


class TestClockBusy(Conflict):
    code = "test_clock_busy"


def advance_test_clock(tenant_id: str, to: datetime, adapters, *, wait: bool = True,
                       wait_seconds: float = 120.0, on_unit: Callable[[due.Unit], None] | None = None) -> dict:
    """Move the tenant's test clock forward. With `wait`, run everything that became due by then
    here (in order, each unit as of its own instant, `on_unit` told of each before it runs) and
    render the PDFs it produced; otherwise leave it to the workers and answer at once (status
    `advancing`). NotFound if there is no such tenant."""
    tenant_settings(tenant_id, False)
    base = adapters.clocks.base
    previous, now = lock_and_advance(tenant_id, to, base.now())
    db.session.commit()
    lane = due.Lane(tenant_id, False)
    if not wait:
        return {"previous": previous, "now": now, "status": "advancing", "ran": None,
                "pending": due.pending_work(lane, now)}
    deadline = time.monotonic() + wait_seconds
    while (claim := due.claim_lane(lane, base.now())) is None:
        if time.monotonic() > deadline:
            raise TestClockBusy("A worker has been running this test clock's due work for too long; "
                                "try again later.")
        time.sleep(0.05)
    try:
        caught_up = due.run_lane(claim, adapters, base.now(), on_unit=on_unit)
    except due.DueWorkFailed as exc:  # recorded (retried after a backoff) and shown in `pending`
        caught_up = exc.caught_up or due.CatchUp(lane, now)
    pdfs = due.drain(due_work.PDF_QUEUE, adapters, lane=lane)
    clock = get_test_clock(tenant_id, now, caught_up)
    return {"previous": previous, "now": now, "status": clock["status"],
            "ran": due_work.summary(caught_up, pdfs), "pending": clock["pending"]}
