"""The payment gateway port: only the Stripe adapter imports `stripe`, and manual collection is
a gateway like the others (it charges nothing and learns nothing)."""
from __future__ import annotations

import ast
from pathlib import Path

import aggregator
from aggregator.payments.gateway import MANUAL, NOT_CONFIGURED, Charge, PaymentGateway, RefundRequest
from aggregator.payments.transfers import NoTransfers, TransferRequest

ROOT = Path(aggregator.__file__).parent


def _imports_stripe(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "stripe" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "stripe":
            return True
    return False


def test_only_the_stripe_adapter_imports_stripe():
    importers = {path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.py")
                 if _imports_stripe(ast.parse(path.read_text()))}
    assert importers and all(name.startswith("payments/stripe/") for name in importers), importers


def test_manual_collection_charges_nothing_and_learns_nothing():
    gateway: PaymentGateway = MANUAL
    charge = Charge("pay_1", "payment-pay_1", 1000, "AUD", "cus_1", "pm_1", {})
    assert not gateway.charges_cards
    assert (gateway.charge(charge, resume=True).status, gateway.charge(charge).message) == ("unknown", NOT_CONFIGURED)
    assert gateway.find_intents([charge]) == ({}, 0)
    assert gateway.cancel("pi_1").status == "unknown"
    refund = RefundRequest("re_1", "refund-re_1", "pi_1", 500, None, {})
    assert (gateway.refund(refund).status, gateway.refund(refund).requests) == ("unknown", 0)


def test_without_stripe_a_payout_is_neither_sent_nor_found():
    request = TransferRequest("po_1", "payout-po_1", 900, "AUD", "acct_1", "run_1", None, {})
    for outcome in (NoTransfers().create_transfer(request), NoTransfers().find_transfer(request)):
        assert (outcome.status, outcome.requests) == ("unknown", 0)
