"""Bill intake API (provider keys), plus read access for admin keys."""
from __future__ import annotations

from flask import current_app

from ..errors import describe
from ..fields import page_schema
from ..metrics import BILLS_ACCEPTED
from ..web import (
    Blueprint,
    clock_now,
    current,
    documents,
    header_text,
    items_one_by_one,
    json_body,
    requires,
    unstorable_items,
)
from . import service
from .bills import BillRequest
from .schemas import (
    BatchResultSchema,
    BatchSchema,
    BillInputSchema,
    BillListArgs,
    BillSchema,
    IdempotencyHeader,
    TrialInputSchema,
    TrialSchema,
    bill_document,
    load_bill,
)

blp = Blueprint("ingest", __name__, url_prefix="/v1", description="Bill intake")

@blp.route("/bills", methods=["POST"])
@requires("provider", recalled=True)
@documents(blp.arguments(IdempotencyHeader(), location="headers"))
@documents(blp.arguments(BillInputSchema()))
@blp.response(201, BillSchema)
def create_bill():
    # The hot path: loaded by load_bill (the schemas' rules, fast for well-formed bills) and
    # answered with bill_document (what BillSchema dumps), not through webargs and a dump. The
    # key may be recalled from memory: record_bill checks it again (see requires).
    principal = current()
    bill = load_bill(json_body(), header_text("Idempotency-Key"))
    outcome = service.record_bill(principal, bill, clock_now(principal))
    if outcome.error:
        raise outcome.error
    response = current_app.json.response(bill_document(outcome.bill))
    response.status_code = 201
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    else:
        BILLS_ACCEPTED.labels(principal.mode).inc()
    return response


@blp.route("/bills/batch", methods=["POST"])
@items_one_by_one("bills")
@requires("provider")
@blp.arguments(BatchSchema())
@blp.response(200, BatchResultSchema)
def create_bills(body):
    principal = current()
    items, refused = body["bills"], unstorable_items()
    if refused:
        items = [refused.get(i, item) for i, item in enumerate(items)]
    valid = [item for item in items if isinstance(item, BillRequest)]
    outcomes = iter(service.record_bills(principal, valid, clock_now(principal)) if valid else [])
    results, accepted = [], 0
    for item in items:
        outcome = next(outcomes) if isinstance(item, BillRequest) else service.Outcome(error=item)
        if outcome.error:
            status, error = describe(outcome.error)
            results.append({"status": status, "error": error})
        else:
            results.append({"status": 201, "replayed": outcome.replayed, "bill": bill_document(outcome.bill)})
            accepted += not outcome.replayed
    BILLS_ACCEPTED.labels(principal.mode).inc(accepted)
    return current_app.json.response({"data": results})  # BatchResultSchema, without its dump


@blp.route("/bills", methods=["GET"])
@requires("provider", "admin")
@blp.arguments(BillListArgs(), location="query")
@blp.response(200, page_schema(BillSchema, "BillPage"))
def list_bills(args):
    principal = current()
    if principal.role == "provider":
        args.pop("provider", None)
    return service.list_bills(principal, **args)


@blp.route("/bills/<bill_id>", methods=["GET"])
@requires("provider", "admin")
@blp.response(200, BillSchema)
def get_bill(bill_id):
    return service.get_bill(current(), bill_id)


@blp.route("/bills/<bill_id>", methods=["DELETE"])
@requires("provider")
@blp.response(200, BillSchema)
def cancel_bill(bill_id):
    principal = current()
    return service.cancel_bill(principal, bill_id, clock_now(principal))


@blp.route("/customers/<path:external_id>/trial", methods=["PUT"])
@requires("provider")
@blp.arguments(TrialInputSchema())
@blp.response(200, TrialSchema)
def set_trial(body, external_id):
    principal = current()
    return service.set_trial(principal, external_id, body["ends_at"], clock_now(principal))


@blp.route("/customers/<path:external_id>/trial", methods=["GET"])
@requires("provider")
@blp.response(200, TrialSchema)
def get_trial(external_id):
    return service.get_trial(current(), external_id)


@blp.route("/customers/<path:external_id>/trial", methods=["DELETE"])
@requires("provider")
@blp.response(200, TrialSchema)
def end_trial(external_id):
    principal = current()
    return service.end_trial(principal, external_id, clock_now(principal))
