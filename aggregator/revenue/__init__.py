"""The revenue rules: who gets what of a bill and of the money an invoice collects. Pure values
and functions over integer minor units, below every area: no framework, no database, nothing
but the standard library and `aggregator.money`.

- `terms.py`: a bill's split into the platform's fee and the provider's net;
- `parts.py`: what an invoice is made of, for attributing what it collects;
- `shares.py`: what a collection (payment, refund, settlement) pays each bill, and a payout.

The areas read and write the amounts these rules take and give: consolidate records the terms a
period's bills are invoiced on and posts the close's shares, payouts pays them out, the ledger
books them.
"""
