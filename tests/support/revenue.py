"""Bills and invoices for the revenue-share tests (pure): examples, and invoices drawn by hypothesis."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from aggregator.consolidate.invoices import BillItem, CreditItem, build_invoice
from aggregator.revenue.parts import InvoiceParts, invoice_parts

#: Exponents 0 (JPY, KRW), 2 (USD, EUR) and 3 (KWD, BHD).
CURRENCIES = ["JPY", "KRW", "USD", "EUR", "KWD", "BHD"]

rates = st.decimals(min_value=0, max_value=1, places=6)


def bill(id: str, amount: int, currency: str = "USD", provider: str = "prov_a") -> BillItem:
    return BillItem(id, provider, amount, currency, f"bill {id}")


def parts_of(bills, terms, currency="USD", tax_rate="0", credits=(), fx=None) -> InvoiceParts:
    draft = build_invoice(currency, Decimal(tax_rate), bills, list(credits), fx or {})
    return invoice_parts(draft.currency, draft.lines, draft.totals.tax, terms)


@st.composite
def invoices(draw) -> InvoiceParts:
    """An invoice built by consolidate.invoices from bills in several currencies (converted at
    random rates), negative bills among them, maybe a carried credit, maybe tax."""
    currency = draw(st.sampled_from(CURRENCIES))
    items, terms = [], {}
    for i, (bill_currency, amount, revenue_share, rate) in enumerate(draw(st.lists(
            st.tuples(st.sampled_from(CURRENCIES), st.integers(-10**7, 10**9), st.booleans(), rates),
            min_size=1, max_size=12))):
        items.append(bill(f"b{i}", amount, bill_currency, provider=f"prov_{i % 3}"))
        terms[f"b{i}"] = (revenue_share, rate)
    fx = {(c, currency): draw(st.decimals(min_value=Decimal("0.0001"), max_value=1000, places=6))
          for c in CURRENCIES if c != currency}
    credits = [CreditItem("cred", draw(st.integers(1, 10**8)), currency, "credit")] if draw(st.booleans()) else []
    tax_rate = draw(st.sampled_from(["0", "0.1", "0.077", "0.2"]))
    return parts_of(items, terms, currency, tax_rate, credits, fx)
