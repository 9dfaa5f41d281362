"""Payouts: admin keys see and review all of them; a provider's key sees its own (its
statement), read-only."""
from __future__ import annotations

from ..fields import ListArgs, page_schema
from ..web import Blueprint, clock_now, current, requires
from . import service
from .schemas import (
    ApprovePeriodSchema,
    MarkPaidSchema,
    PayoutLinePageSchema,
    PayoutListArgs,
    PayoutSchema,
    PayoutWithLinesSchema,
)

blp = Blueprint("payouts", __name__, url_prefix="/v1", description="Payouts")
PayoutPage = page_schema(PayoutSchema, "PayoutPage")


@blp.route("/payouts", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(PayoutListArgs(), location="query")
@blp.response(200, PayoutPage)
def list_payouts(args):
    """Payouts, newest first (a provider's key: its own)."""
    return service.list_payouts(current(), **args)


@blp.route("/payouts/<payout_id>", methods=["GET"])
@requires("admin", "provider")
@blp.response(200, PayoutWithLinesSchema)
def get_payout(payout_id):
    """A payout, with its first lines (the rest: GET /v1/payouts/{id}/lines)."""
    principal = current()
    payout = service.get_payout(principal, payout_id)
    payout.lines = service.payout_lines(principal, payout_id, limit=100)
    return payout


@blp.route("/payouts/<payout_id>/lines", methods=["GET"])
@requires("admin", "provider")
@blp.arguments(ListArgs(), location="query")
@blp.response(200, PayoutLinePageSchema)
def list_payout_lines(args, payout_id):
    """A payout's lines: each bill's part of each payment (or refund) it pays, with its fee and
    net. `starting_after`: a line's `source`/`bill`."""
    return service.payout_lines(current(), payout_id, **args)


@blp.route("/payouts/<payout_id>/approve", methods=["POST"])
@requires("admin")
@blp.response(200, PayoutSchema)
def approve_payout(payout_id):
    """Approve a payout pending review: a Stripe payout is then sent, a bank-transfer one waits
    for POST /v1/payouts/{id}/mark_paid. Approving it again is refused (409): it is paid once."""
    principal = current()
    return service.approve_payout(principal, payout_id, clock_now(principal))


@blp.route("/payouts/approve", methods=["POST"])
@requires("admin")
@blp.arguments(ApprovePeriodSchema())
@blp.response(200, PayoutPage)
def approve_period(body):
    """Approve every payout of a period pending review. -> those approved by this call."""
    principal = current()
    return {"data": service.approve_period(principal, body["period"], clock_now(principal)), "has_more": False}


@blp.route("/payouts/<payout_id>/cancel", methods=["POST"])
@requires("admin")
@blp.response(200, PayoutSchema)
def cancel_payout(payout_id):
    """Cancel a payout before it is sent: its amount goes into the provider's next payout."""
    principal = current()
    return service.cancel_payout(principal, payout_id, clock_now(principal))


@blp.route("/payouts/<payout_id>/mark_paid", methods=["POST"])
@requires("admin")
@blp.arguments(MarkPaidSchema())
@blp.response(200, PayoutSchema)
def mark_paid(body, payout_id):
    """Record an approved bank-transfer payout paid, with the transfer's reference."""
    principal = current()
    return service.record_bank_transfer(principal, payout_id, body["reference"], clock_now(principal))
