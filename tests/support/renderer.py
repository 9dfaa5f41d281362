"""A stand-in for the invoice renderer in tests about what the PDFs are of (invoices moved by
the clock, the books), not about the PDFs: it renders each invoice's real template with its real
document, as the renderer does, and stores that HTML in place of the PDF WeasyPrint would lay out
from it (about 0.15 s an invoice, most of a test clock advance that finalizes invoices). The PDFs
themselves are tested by tests/integration/test_invoice_renderer.py and tests/e2e/test_invoice_pdfs.py."""
from __future__ import annotations

import pytest


class TemplateOnlyRenderer:
    """The real renderer's templates, without WeasyPrint: a job's bytes are its standalone HTML."""

    def __init__(self, real):
        self.real = real

    def render(self, template, context) -> bytes:
        return self.real.standalone_html(template, context).encode()

    def render_many(self, jobs, processes=1) -> list:
        results = []
        for template, context in jobs:
            try:
                results.append(self.render(template, context))
            except Exception as exc:  # in the job's place, as the real renderer reports it
                results.append(exc)
        return results


@pytest.fixture
def templates_only(app, monkeypatch):
    """The app renders invoices with TemplateOnlyRenderer for the test."""
    adapters = app.extensions["aggregator.adapters"]
    monkeypatch.setitem(app.extensions, "aggregator.adapters",
                        adapters.replacing(renderer=TemplateOnlyRenderer(adapters.renderer)))
