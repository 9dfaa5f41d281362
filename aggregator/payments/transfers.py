"""The port payouts send provider payouts through: a Connect transfer from the platform's
balance to a provider's connected account (`payouts/send_service.py`). The Stripe adapter
implements it (`payments/stripe/transfers.py`); `NoTransfers` stands for a tenant without
Stripe settings in a mode. Separate from the charges' gateway (`payments/gateway.py`): payouts
never see charges, and charges never see transfers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(frozen=True)
class TransferRequest:
    """One provider payout, as a Connect Transfer from the platform's balance to the provider's
    connected account."""

    payout_id: str  # our payout row id (po_…)
    idempotency_key: str  # derived from the payout row, saved before the call
    amount: int  # minor units, > 0
    currency: str  # ISO 4217, upper case (Stripe is sent it lower case)
    destination: str  # the provider's connected account, acct_…
    transfer_group: str  # the payout run id: find_transfer lists the group
    source_transaction: str | None  # the charge (ch_…) that funds the payout, when a single one does
    metadata: dict[str, str]  # payout, provider, tenant, period…; `payout` is always set to payout_id


@dataclass(frozen=True)
class TransferOutcome:
    """What became of a transfer. `status`: paid (the transfer was made), failed (refused for
    good: no such destination, insufficient balance, …), unknown (no answer, a 5xx, a 429 after
    retries, an idempotency key reused with other parameters: resolve it with find_transfer,
    never by another key), missing (find_transfer only: there is no such transfer, so it may be
    sent again with the same key)."""

    status: str
    transfer_id: str | None
    failure_code: str | None
    failure_message: str | None
    requests: int  # HTTP requests made
    raw: dict | None = None


class Transfers(Protocol):
    def create_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = ...) -> TransferOutcome:
        """Send one payout's transfer, with its idempotency key."""

    def find_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = ...) -> TransferOutcome:
        """The payout's transfer, if it was made: paid, missing or unknown."""


class NoTransfers:
    """A tenant without Stripe settings in a mode: nothing is sent, and nothing can be learned
    (`unknown`: the payout stays approved until the settings are back)."""

    def create_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                        ) -> TransferOutcome:
        return TransferOutcome("unknown", None, None, "Stripe is not configured for this tenant.", 0)

    def find_transfer(self, request: TransferRequest, *, pace: Callable[[], None] = lambda: None
                      ) -> TransferOutcome:
        return TransferOutcome("unknown", None, None, "Stripe is not configured for this tenant.", 0)
