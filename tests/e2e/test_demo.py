"""`aggregator demo` tells a month of billing on a new test-mode tenant: it must keep working."""
from __future__ import annotations

import io

from pypdf import PdfReader
from rich.console import Console

from aggregator.demo import run_demo


def test_the_demo_closes_a_period_and_writes_each_customers_invoice(app, tmp_path):
    output = io.StringIO()
    with app.app_context():
        made = run_demo(app, app.extensions["aggregator.adapters"], tmp_path, Console(file=output, width=120))
    text = output.getvalue()
    assert "Closed period" in text and "One consolidated invoice per customer" in text
    assert sorted((i["currency"], i["total"], i["status"]) for i in made["invoices"]) == [
        ("EUR", "54.20", "open"), ("USD", "361.50", "open"), ("USD", "39.00", "open")]
    assert len(made["pdfs"]) == 3
    for pdf in made["pdfs"]:
        assert pdf.stem in PdfReader(pdf).pages[0].extract_text()  # the file is the invoice it is named after
    assert made["events"]["period.closed"] == 1 and made["events"]["invoice.pdf_ready"] == 3
    assert len(made["webhooks"]) == sum(made["events"].values()) and all(ok for _, ok in made["webhooks"])
    assert sorted((e["kind"], e["status"]) for e in made["emails"]) == [
        ("invoice", "sent")] * 3 + [("period_summary", "sent")]
