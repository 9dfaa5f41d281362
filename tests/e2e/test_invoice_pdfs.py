"""Invoice PDFs: rendering never blocks finalization; long invoices paginate properly."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from pypdf import PdfReader

from tests.support.invoicing import advance, bill_body, pdf_text, send


class BrokenRenderer:
    """An honest stand-in for a renderer whose rendering fails (fonts gone, disk full…)."""

    def render(self, template, context):
        raise OSError("renderer unavailable")

    def render_many(self, jobs, processes=1):
        return [OSError("renderer unavailable") for _ in jobs]


@pytest.fixture
def shop(tenant):
    tenant.customer("cust-1", name="Customer One")
    tenant.apps = [tenant.provider(name="Accounting App")]
    return tenant


def _renderer(app, monkeypatch, renderer):
    adapters = app.extensions["aggregator.adapters"]
    monkeypatch.setitem(app.extensions, "aggregator.adapters", adapters.replacing(renderer=renderer))
    return adapters.renderer


def test_a_rendering_failure_does_not_block_finalization_and_is_retried(app, shop, monkeypatch, clock):
    send(shop.apps[0], "a1")
    working = _renderer(app, monkeypatch, BrokenRenderer())
    ran = advance(shop)["ran"]
    assert ran["pdfs"] == {"rendered": 0, "failed": 1}
    admin = shop.admin["test"]
    invoice = admin.get("/v1/invoices").json["data"][0]
    assert invoice["status"] == "open" and invoice["number"] and invoice["pdf_url"] is None
    assert admin.get(f"/v1/invoices/{invoice['id']}/pdf").json["error"]["code"] == "pdf_not_ready"
    _renderer(app, monkeypatch, working)
    # a failure is retried after a backoff, in real time (a minute after the first)
    assert advance(shop, "2026-11-25T01:00:00+00:00")["ran"]["pdfs"] == {"rendered": 0, "failed": 0}
    clock.set(clock.now() + timedelta(minutes=1))
    assert advance(shop, "2026-11-25T02:00:00+00:00")["ran"]["pdfs"] == {"rendered": 1, "failed": 0}
    assert admin.get(f"/v1/invoices/{invoice['id']}/pdf").status_code == 200


def test_many_invoices_render_on_several_processes_each_to_its_own_pdf(app, shop, monkeypatch):
    for n in range(2, 6):
        shop.customer(f"cust-{n}", name=f"Customer {n}")
    for n in range(1, 6):
        send(shop.apps[0], f"k{n}", customer=f"cust-{n}", description=f"Seats for customer {n}")
    working = _renderer(app, monkeypatch, BrokenRenderer())
    assert advance(shop)["ran"]["pdfs"] == {"rendered": 0, "failed": 5}
    adapters = _renderer(app, monkeypatch, working) and app.extensions["aggregator.adapters"]

    from aggregator.consolidate import pdf_service
    with app.app_context():  # an operator's re-run renders them at once, on two processes
        report = pdf_service.render_pending(adapters, tenant_id=shop.id, livemode=False, processes=2,
                                            retry_now=True)
    assert (report.rendered, report.failed) == (5, 0)
    for invoice in shop.admin["test"].get("/v1/invoices").json["data"]:
        text = pdf_text(shop, invoice)
        assert invoice["number"] in text
        customer = shop.admin["test"].get(f"/v1/customers/{invoice['customer']}").json
        assert f"Seats for customer {customer['external_id'].removeprefix('cust-')}" in text


def test_a_long_invoice_has_page_numbers_and_repeats_the_table_header(shop):
    admin = shop.admin["test"]
    admin.patch("/v1/tenant", {"locale": "de_DE"})
    items = [{**bill_body(amount=f"{i}.25", description=f"Seat licence {i}"), "idempotency_key": f"k{i}"}
             for i in range(120)]
    assert shop.apps[0].post("/v1/bills/batch", {"bills": items}).status_code == 200
    advance(shop)
    invoice = admin.get("/v1/invoices").json["data"][0]
    pdf = PdfReader(io.BytesIO(admin.get(f"/v1/invoices/{invoice['id']}/pdf").data))
    pages = [page.extract_text() for page in pdf.pages]
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        if number > 1:  # the detail, after the summary page
            assert "Description" in text and "Amount" in text  # the header, on every page of it
    assert "Amount due 7.170,00" in pages[0]  # 0.25 + 1.25 + … + 119.25, formatted for de_DE, on the summary
    assert "Accounting App 120" in pages[0]  # the summary per provider: its lines and subtotal


def test_the_url_fetcher_refuses_the_network_and_files_outside_the_templates(tmp_path):
    from aggregator.consolidate.render import TEMPLATE_DIR, confined_fetcher

    fetch = confined_fetcher(TEMPLATE_DIR)
    assert fetch.fetch((TEMPLATE_DIR / "invoice_v1.css").as_uri()).read().startswith(b"@page")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0")
    for url in ("http://127.0.0.1:9/x.png", "https://example.com/a.css", "file:///etc/passwd",
                secret.as_uri(), (TEMPLATE_DIR / ".." / ".." / "pyproject.toml").as_uri(),
                "file://otherhost/etc/passwd", "ftp://127.0.0.1/x"):
        with pytest.raises(ValueError):
            fetch.fetch(url)


def test_a_hostile_template_value_cannot_reach_outside(tmp_path):
    """Even markup that escaped into the HTML (it cannot: values are autoescaped) fails the render
    instead of fetching: the fetcher refuses and WeasyPrint aborts."""
    import weasyprint

    from aggregator.consolidate.render import TEMPLATE_DIR, confined_fetcher

    html = '<img src="file:///etc/passwd"><img src="http://127.0.0.1:9/x.png">'
    with pytest.raises(BaseException) as raised:
        weasyprint.HTML(string=html, base_url=TEMPLATE_DIR.as_uri() + "/",
                        url_fetcher=confined_fetcher(TEMPLATE_DIR)).write_pdf()
    assert "Fetching" in str(raised.value) or "blocked" in str(raised.value).lower() \
        or raised.type.__name__.startswith("Fatal")
