"""Provider payouts: what each provider is owed from the money collected on its bills.

`shares.py` is the pure core: the fee/net split of a bill, the pro rata attribution of what an
invoice collected (and of what a refund gave back) to its bills, the FX difference the platform
bears on a converted bill, and a provider's payout from its lines and carried balance. It imports
neither Flask nor SQLAlchemy, and all its arithmetic goes through `aggregator.money`.
"""
