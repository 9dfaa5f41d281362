"""Provider payouts as Stripe Connect Transfers (payouts' port, `payments/transfers.py`): sent
with the payout's idempotency key; a transfer whose outcome is unknown is found again
(`find_transfer`: its group's transfers, matched on metadata.payout and destination), never
sent under another key."""
from __future__ import annotations

from typing import Callable

import stripe

from ..failures import known_code, reason
from ..transfers import TransferOutcome, TransferRequest
from .answers import plain, stripe_id
from .client import MISCONFIGURED, describe, error_reason, log, misconfigured, send_idempotently


class StripeTransfers:
    """The Connect transfers of one StripeClient."""

    def __init__(self, client: stripe.StripeClient, *, sleep: Callable[[float], None], backoff: float):
        self.client, self._sleep, self._backoff = client, sleep, backoff

    def create_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                        ) -> TransferOutcome:
        """Send one payout's Transfer, with its idempotency key. A 429 (Stripe did not act) is
        sent again with the same key, up to RESOLVE_TRIES times; any other unknown outcome is
        returned as `unknown` at once, for the caller to resolve with find_transfer."""
        what = f"transfer {request.payout_id}"
        params = {"amount": request.amount, "currency": request.currency.lower(),
                  "destination": request.destination, "transfer_group": request.transfer_group,
                  "metadata": {**request.metadata, "payout": request.payout_id}}
        if request.source_transaction:
            params["source_transaction"] = request.source_transaction

        def answer(transfer, requests: int) -> TransferOutcome:
            transfer = plain(transfer)
            return TransferOutcome("paid", stripe_id(transfer.get("id")), None, None, requests, transfer)

        def refused(exc: stripe.StripeError, requests: int) -> TransferOutcome:
            if isinstance(exc, stripe.IdempotencyError):  # the key was used with other parameters: a defect
                log.error("%s: %s", what, describe(exc))
                return TransferOutcome("unknown", None, "idempotency_error", error_reason(exc), requests)
            log.warning("%s: refused (%s)", what, describe(exc))  # no such destination, insufficient balance, …
            return TransferOutcome("failed", None, known_code(getattr(exc, "code", None)) or "transfer_failed",
                                   error_reason(exc), requests)

        def unknown(exc: stripe.StripeError, requests: int) -> TransferOutcome:
            if isinstance(exc, stripe.RateLimitError):  # still rate limited after every try
                return TransferOutcome("unknown", None, "rate_limit", reason("stripe_rate_limited"), requests)
            return TransferOutcome("unknown", None, None, error_reason(exc), requests)

        return send_idempotently(
            what, send=lambda: self.client.v1.transfers.create(params=params,
                                                               options={"idempotency_key": request.idempotency_key}),
            answer=answer, refused=refused, unknown=unknown, pace=pace, sleep=self._sleep, backoff=self._backoff)

    def find_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                      ) -> TransferOutcome:
        """The payout's Transfer, if Stripe made it: among the transfers of its group, the one
        whose metadata.payout is the payout's id and whose destination is the payout's account.
        -> `paid` (found), `missing` (Stripe has none), `unknown` (the lookup got no answer)."""
        requests = 0
        try:
            pace()
            requests += 1
            page = self.client.v1.transfers.list(params={"transfer_group": request.transfer_group, "limit": 100})
            while True:
                for transfer in page.data:
                    transfer = plain(transfer)
                    destination = transfer.get("destination")
                    if isinstance(destination, dict):
                        destination = destination.get("id")
                    if ((transfer.get("metadata") or {}).get("payout") == request.payout_id
                            and destination == request.destination):
                        return TransferOutcome("paid", stripe_id(transfer.get("id")), None, None, requests,
                                               transfer)
                if not page.has_more or not page.data:
                    return TransferOutcome("missing", None, None, None, requests)
                pace()
                requests += 1
                page = page.next_page()
        except MISCONFIGURED as exc:
            raise misconfigured(exc, f"transfer {request.payout_id}") from exc
        except stripe.StripeError as exc:  # no answer, or a refused lookup: not a sign there is no transfer
            log.warning("transfer %s: looking it up failed (%s)", request.payout_id, describe(exc))
            return TransferOutcome("unknown", None, known_code(getattr(exc, "code", None)), error_reason(exc), requests)

