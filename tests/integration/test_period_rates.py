"""The rate a provider's bills were invoiced on is recorded when their period closes: a later
change of the provider's rate never rewrites it."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from tests.support.invoicing import advance, send


def test_the_close_records_each_providers_rate_once_and_a_later_change_does_not_rewrite_it(app, tenant):
    from aggregator.consolidate.period_rates import rates_of

    admin = tenant.admin["test"]
    tenant.customer("cust-1")
    provider = tenant.provider()
    provider_id = admin.get("/v1/providers").json["data"][0]["id"]
    assert admin.patch(f"/v1/providers/{provider_id}", {"revenue_share_rate": "0.25"}).status_code == 200
    send(provider, "b1", amount="100.00")
    advance(tenant, "2026-11-26T00:00:00+00:00")  # the period 2026-10-25 closes
    assert admin.patch(f"/v1/providers/{provider_id}", {"revenue_share_rate": "0.40"}).status_code == 200
    send(provider, "b2", amount="100.00")
    advance(tenant, "2026-12-26T00:00:00+00:00")  # the next one closes at the new rate
    with app.app_context():
        assert rates_of(tenant.id, False, date(2026, 10, 25)) == {provider_id: Decimal("0.25")}
        assert rates_of(tenant.id, False, date(2026, 11, 25)) == {provider_id: Decimal("0.40")}
        assert rates_of(tenant.id, True, date(2026, 10, 25)) == {}  # live mode: nothing closed
