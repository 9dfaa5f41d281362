"""Provider payouts: what each provider is owed from the money collected on its bills.

The rules are `aggregator.revenue`'s (pure: the fee/net split of a bill, the pro rata attribution
of what an invoice collected, and of what a refund gave back, to its bills, the FX difference the
platform bears on a converted bill, a provider's payout from its lines and carried balance). This
package reads what they need from the database (`collections.py`), builds the payout days
(`build_service.py`), sends the payouts and reports on them.
"""
