"""Who gets what of a bill and of the money an invoice collected: pure, no database.

All amounts are integer minor units. Every rounding is `money`'s one rule (half up, away from
zero), through `money.apply_rate` or `money.allocate`; every split below adds up exactly.

The rules
---------
1. Split. A revenue-share bill of `amount` with the platform's `rate` (recorded when the bill was
   invoiced): fee = money.apply_rate(amount, rate), net = amount - fee. A pass-through bill: fee 0,
   net = amount. A bill that carries its own platform fee: that fee, net = amount - fee (negative
   when the fee exceeds the bill). Each is a share policy of `terms.py`. Both in the bill's own
   currency; fee + net == amount, also for a negative amount (a credit the provider grants: fee
   and net are then both <= 0, the platform gives its fee back).
2. Pro rata collection. An invoice's parts are its bill lines (each bill's amount in the invoice
   currency), its tax and its applied carried credit (negative); they add up to its total T.
   When K of T has been collected (0 <= K <= T, net of refunds), every part, positive or negative,
   is collected K/T of itself, made exact so the parts add up to K:
     - n = |N| * K / T rounded half up, where N (<= 0) is the sum of the negative parts;
     - the positive parts share K + n by money.allocate (weights: their amounts);
     - the negative parts share -n by money.allocate (weights: their magnitudes).
   So each part lies between 0 and its amount, is all of it when K == T and nothing when K == 0,
   and is less than 1.5 minor units from its exact proportion (two roundings of < 1 and <= 0.5;
   within 1 in every case the tests have found).
   - Tax collected and the carried credit applied belong to the platform, never to a provider.
   - A negative bill (a provider's credit) reduces that provider's own share, in step with what is
     collected; a carried credit is the platform's (the providers whose bills made the earlier
     invoice negative were charged their full credit when that invoice was settled, see 4.).
   - A bill's collected part is split into fee and net in the proportions of its split: fee =
     its split's fee * collected part / amount, rounded half up (away from zero), net = the rest:
     exact, and equal to the split when fully collected. (The same as money.allocate with weights
     (|fee|, |net|) when fee and net have the bill's sign; also right for a bill whose own fee
     exceeds it, terms.ExplicitFee, whose net is then negative.)
   - A converted bill is collected in its own currency the same fraction as in the invoice
     currency: original amount * collected part / invoiced amount, rounded half up (when the
     bill converted to 0, the invoice's fraction K/T). See 5. for the FX difference.
3. Path independence. The shares of an invoice are a function of its net collected amount K alone
   (collected_shares). A payment or refund is recorded as the difference between the shares after
   and before it (payment_lines, clawback). So any sequence of partial payments and refunds
   reaching K attributes exactly what a single payment of K would, to the minor unit, and the
   final payment (K == T) settles every bill at exactly its split. The price: largest remainder
   is not monotone (the "Alabama paradox"): in rare cases a partial payment's line for a bill goes
   the wrong way, -1 minor unit (+1 in a refund; at most 2 by the bound above), e.g. bills of 1, 3
   and 3 get 1, 1, 1 of 3 collected but 0, 2, 2 of 4. Its cumulative share stays within 0..amount,
   and lines are summed per provider and currency before any transfer (rule 6).
4. An invoice with nothing to pay (T == 0: its credits cover its bills) is settled in full when it
   is finalized: collected_shares(invoice, 0) gives each bill its whole split, and its `carried`
   part (the credit the customer keeps for the next invoice) is the platform's.
5. FX. A bill converted onto an invoice in another currency is paid out in its own currency, its
   share computed on its original amount (rule 1). The platform bears the difference: for what
   was collected of the bill, fx_difference = collected (invoice currency) - money.convert(
   collected in the bill's currency, at a rate). At the invoice's own rate it is only rounding;
   at the rate the platform settles at, it is the realised gain (> 0) or loss (< 0). Each
   currency balances on its own: in the invoice currency, bill parts + tax + credit == K; in the
   bill's currency, fee + net == its collected amount; the FX account holds the two sides.
6. Payout. A provider's payout in one currency: total = sum of its lines + carried (its negative
   balance from before, <= 0); transfer = max(0, total), carry = min(0, total); never a negative
   transfer, and transfer + carry == total.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from .. import money
from .parts import InvoicedBill, InvoiceParts
from .terms import Split


@dataclass(frozen=True, slots=True)
class Share:
    """One provider's part of an invoice (or of a refund or credit of it), summed over its bills:
    `net` to the provider and `fee` to the platform, both in `currency`, the bill's original
    currency (what payouts are made in). `invoiced` is what the customer was billed for it in
    the invoice's currency: net + fee when the currencies are the same; the converted amount
    otherwise (the difference between the two goes through the ledger's fx account)."""

    provider_id: str
    currency: str
    net: int
    fee: int
    invoiced: int


def provider_shares(bills: Iterable[tuple[str, str, int, Split, int]]) -> tuple[Share, ...]:
    """Σ per (provider, bill currency) of (provider id, bill currency, invoiced amount, split,
    count): `count` bills each invoiced `invoiced` (invoice currency) and split `split` (their
    own currency). In (provider, currency) order."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for provider_id, currency, invoiced, split, count in bills:
        total = sums[provider_id, currency]
        total[0] += split.net * count
        total[1] += split.fee * count
        total[2] += invoiced * count
    return tuple(Share(p, c, net, fee, invoiced) for (p, c), (net, fee, invoiced) in sorted(sums.items()))


# --- what was collected ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BillShare:
    """What one bill got of a collection: `collected` in the invoice currency; `amount` the same in
    the bill's own currency, split into the platform's `fee` and the provider's `net`."""

    bill_id: str
    provider_id: str
    currency: str
    collected: int
    amount: int
    fee: int
    net: int


@dataclass(frozen=True, slots=True)
class Collection:
    """An amount collected on an invoice (or given back: negative), attributed to its parts:
    sum(b.collected for b in bills) + tax + credit + carried == collected, in `currency`."""

    currency: str
    collected: int
    bills: tuple[BillShare, ...]
    tax: int
    credit: int
    carried: int = 0


def _scaled(amount: int, numerator: int, denominator: int) -> int:
    """amount * numerator / denominator (0 <= numerator <= denominator), rounded half up away from
    zero: a two-way money.allocate gives its first part exactly that, in integers."""
    if numerator == denominator:
        return amount
    return money.allocate(amount, [numerator, denominator - numerator])[0]


def _pro_rata(collected: int, parts: Sequence[int]) -> list[int]:
    """Rule 2: each part collected `collected / sum(parts)` of itself, adding up to `collected`."""
    owed_by_negatives = _scaled(-sum(p for p in parts if p < 0), collected, sum(parts))
    positive = money.allocate(collected + owed_by_negatives, [max(p, 0) for p in parts])
    if not owed_by_negatives:
        return positive
    negative = money.allocate(owed_by_negatives, [max(-p, 0) for p in parts])
    return [p - n for p, n in zip(positive, negative)]


def _bill_share(bill: InvoicedBill, collected: int, fraction: tuple[int, int]) -> BillShare:
    """The bill's collected part in its own currency, split like the bill (rule 2). A bill of
    nothing that carries a platform fee of its own (a plan priced at 0 on a paid parent plan:
    terms.ExplicitFee) has no part to scale: its fee is owed as the invoice is collected, by the
    invoice's `fraction`, so a whole collection gives its whole split however it was paid."""
    if bill.amount == 0:
        fee = _scaled(bill.share.fee, *fraction)
        return BillShare(bill.bill_id, bill.provider_id, bill.currency, collected, 0, fee, -fee)
    if bill.invoiced_amount:
        amount = _scaled(bill.amount, abs(collected), abs(bill.invoiced_amount))
    else:
        amount = _scaled(bill.amount, *fraction)
    fee = _scaled(bill.share.fee, abs(amount), abs(bill.amount)) if amount else 0
    return BillShare(bill.bill_id, bill.provider_id, bill.currency, collected, amount, fee, amount - fee)


def collected_shares(invoice: InvoiceParts, collected: int) -> Collection:
    """The shares of `invoice` once `collected` has been collected on it in all (net of refunds):
    rules 2 and 4. 0 <= collected <= invoice.total."""
    total = invoice.total
    if not 0 <= collected <= total:
        raise ValueError(f"collected {collected} is outside 0..{total}, the invoice's total")
    if total == 0:  # rule 4: settled by its credits
        bills = tuple(_bill_share(b, b.invoiced_amount, (1, 1)) for b in invoice.bills)
        return Collection(invoice.currency, 0, bills, invoice.tax, invoice.credit, invoice.carried)
    parts = _pro_rata(collected, [*(b.invoiced_amount for b in invoice.bills), invoice.tax, invoice.credit])
    bills = tuple(_bill_share(b, part, (collected, total)) for b, part in zip(invoice.bills, parts))
    return Collection(invoice.currency, collected, bills, parts[-2], parts[-1])


def difference(after: Collection, before: Collection | None) -> Collection:
    """What changed from `before` to `after` (two collections of one invoice): the lines of the
    payment or refund between them (rule 3). `before` None: nothing attributed yet."""
    if before is None:
        return after
    bills = tuple(BillShare(a.bill_id, a.provider_id, a.currency, a.collected - b.collected,
                            a.amount - b.amount, a.fee - b.fee, a.net - b.net)
                  for a, b in zip(after.bills, before.bills, strict=True))
    return Collection(after.currency, after.collected - before.collected, bills, after.tax - before.tax,
                      after.credit - before.credit, after.carried - before.carried)


def payment_lines(invoice: InvoiceParts, collected_before: int, paid: int) -> Collection:
    """Rule 3: the lines of a payment of `paid` on an invoice that had collected `collected_before`."""
    return difference(collected_shares(invoice, collected_before + paid),
                      collected_shares(invoice, collected_before))


def lines_of_source(invoice: InvoiceParts, collected_before: int, amount: int, settled: bool = False) -> Collection:
    """The lines of one collection paid out: a payment's or a refund's (`amount` < 0) after
    `collected_before` (rule 3), or, `settled`, an invoice its credits cover: its whole split
    (rule 4, nothing collected before it)."""
    if settled:
        return difference(collected_shares(invoice, 0), None)
    return payment_lines(invoice, collected_before, amount)


def clawback(refunded: int, invoice: InvoiceParts, collected_before: int) -> Collection:
    """Rule 3: a refund of `refunded` (0 <= refunded <= collected_before) gives back the refunded
    amount pro rata over what was collected: negative lines per bill, adding up to -refunded, that
    the providers' next payouts carry (rule 6)."""
    if not 0 <= refunded <= collected_before:
        raise ValueError(f"refunded {refunded} is outside 0..{collected_before}, what was collected")
    return difference(collected_shares(invoice, collected_before - refunded),
                      collected_shares(invoice, collected_before))


# --- FX and payouts ----------------------------------------------------------------------------

def fx_difference(collected: int, invoice_currency: str, original: int, original_currency: str,
                  rate: Decimal) -> int:
    """Rule 5: the platform's FX difference on a converted bill, in the invoice currency: what was
    collected of it there (`BillShare.collected`), less money.convert of what it is owed in its own
    currency (`BillShare.amount`) at `rate` (invoice currency per one unit of the bill's). Positive:
    a gain. So collected == convert(original) + fx_difference, exactly."""
    return collected - money.convert(original, original_currency, invoice_currency, rate)


@dataclass(frozen=True, slots=True)
class Payout:
    """What is transferred to a provider in one currency, and the negative balance it carries."""

    transfer: int  # >= 0
    carry: int  # <= 0


def payout(lines: Sequence[int], carried: int) -> Payout:
    """Rule 6: total = sum(lines) + carried (<= 0); transfer = max(0, total), carry = min(0, total)."""
    if carried > 0:
        raise ValueError(f"a carried balance is never positive (got {carried}): it would have been paid")
    total = sum(lines) + carried
    return Payout(max(total, 0), min(total, 0))
