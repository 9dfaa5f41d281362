"""The WeasyPrint renderer adapter against the real WeasyPrint: what the PDF says, in every
template version an invoice may carry, with the fonts shipped with the template."""
from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader

from aggregator.consolidate.document import INVOICE_TEMPLATE, DocumentLine, invoice_document
from aggregator.consolidate.render import TEMPLATE_DIR, WeasyPrintRenderer

NAMES = {
    "latin": "Müller & Søn GmbH, Łódź, Ångström, Çağrı, Nguyễn Thị Hương",
    "greek": "Αθηνά Παπαδοπούλου",
    "cyrillic": "ООО «Ромашка»",
}


def document(*, customer_name: str = NAMES["latin"], currency: str = "EUR", locale: str = "en",
             lines: int = 4) -> dict:
    bill_lines = [DocumentLine("bill", f"prov_{i % 2}", f"{NAMES['cyrillic']} seat {i}", date(2026, 9, 25),
                               date(2026, 10, 24), 1000 + i, 1200 + i if i == 1 else None,
                               "USD" if i == 1 else None, "0.9" if i == 1 else None)
                  for i in range(lines)]
    bill_lines.sort(key=lambda line: line.provider_id)
    credit = DocumentLine("credit", None, "Credit carried from invoice INV-2026-000041", None, None, -500,
                          None, None, None)
    subtotal = sum(line.amount for line in bill_lines) - 500
    return invoice_document(
        invoice={"number": "INV-2026-000042", "currency": currency, "issue_date": date(2026, 10, 25),
                 "period_start": date(2026, 9, 25), "period_end": date(2026, 10, 24),
                 "due_date": date(2026, 11, 2), "subtotal": subtotal, "tax": 0, "tax_rate": "0",
                 "total": subtotal, "amount_due": subtotal, "carried_credit": 0},
        lines=bill_lines + [credit], provider_names={"prov_0": NAMES["greek"], "prov_1": "Beacon CRM"},
        tenant={"legal_name": "Aggregator Marketplace Ltd", "logo": None, "address_lines": ["1 Harbour Street"]},
        customer={"name": customer_name, "email": "ap@example.com", "external_id": "ext-1",
                  "address_lines": ["Hauptstraße 1", "10115 Berlin"]},
        locale=locale)


def text_of(pdf: bytes) -> tuple[PdfReader, str]:
    reader = PdfReader(io.BytesIO(pdf))
    return reader, "\n".join(page.extract_text() for page in reader.pages)


def font_names(reader: PdfReader) -> set[str]:
    return {str(font["/BaseFont"]).split("+", 1)[-1]
            for page in reader.pages for font in page["/Resources"]["/Font"].values()}


@pytest.fixture(scope="module")
def renderer():
    return WeasyPrintRenderer()


def test_new_invoices_use_the_v3_template():
    assert INVOICE_TEMPLATE == "invoice_v3.html"


@pytest.mark.parametrize("template", ["invoice_v1.html", "invoice_v2.html", "invoice_v3.html"])
def test_every_template_version_prints_the_invoice(renderer, template):
    reader, text = text_of(renderer.render(template, document()))
    flat = " ".join(text.split())
    for expected in ("INV-2026-000042", "Aggregator Marketplace Ltd", "Bill to", "Hauptstraße 1",
                     "Subtotal Beacon CRM", "Credit carried from invoice INV-2026-000041", "Amount due",
                     "€10.00", "$12.01 at 0.9", "-€5.00", "Page 1 of 1", "Sep 25, 2026 – Oct 24, 2026"):
        assert expected in flat, expected
    for name in NAMES.values():
        assert name in flat, name


def test_v2_embeds_the_fonts_shipped_with_the_template_whatever_the_system_has(renderer):
    reader, _ = text_of(renderer.render("invoice_v2.html", document()))
    assert font_names(reader) == {"Invoice-Sans", "Invoice-Sans-Bold", "Invoice-Sans-Italic"}


def test_v2_falls_back_to_a_system_font_for_scripts_outside_the_shipped_fonts(renderer):
    """Hebrew is not in the shipped subset; the system's DejaVu Sans (a system requirement) has it."""
    reader, text = text_of(renderer.render("invoice_v2.html", document(customer_name="חברה בע״מ")))
    assert {"Invoice-Sans", "DejaVu-Sans"} <= font_names(reader)
    assert "INV-2026-000042" in text


@pytest.mark.parametrize("locale,currency,symbol", [
    ("fr_FR", "EUR", "€"), ("de_CH", "CHF", "CHF"), ("en_IN", "INR", "₹"), ("ko_KR", "KRW", "₩"),
    ("ru_RU", "RUB", "₽"), ("vi_VN", "VND", "₫"), ("tr_TR", "TRY", "₺"), ("en_GB", "GBP", "£"),
])
def test_v2_prints_amounts_formatted_for_the_locale_in_the_shipped_fonts(renderer, locale, currency, symbol):
    doc = document(locale=locale, currency=currency)
    assert symbol in doc["amount_due"]
    reader, text = text_of(renderer.render("invoice_v2.html", doc))
    assert font_names(reader) <= {"Invoice-Sans", "Invoice-Sans-Bold", "Invoice-Sans-Italic"}
    assert doc["amount_due"] in text and doc["issue_date"] in text


def test_a_long_v2_invoice_repeats_the_table_header_and_numbers_its_pages(renderer):
    reader, _ = text_of(renderer.render("invoice_v2.html", document(lines=120)))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 3
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in text
        assert "Description" in text and "Service period" in text and "Amount" in text
        assert "Invoice INV-2026-000042" in text  # the footer's number, from string-set


def test_the_standalone_document_links_its_stylesheet_and_prints_the_same(renderer):
    import weasyprint

    html = renderer.standalone_html("invoice_v2.html", document())
    assert '<link rel="stylesheet" href="invoice_v2.css">' in html
    assert "<link" not in renderer.html("invoice_v2.html", document())
    plain = weasyprint.HTML(string=html, base_url=TEMPLATE_DIR.as_uri() + "/").write_pdf()
    assert text_of(plain)[1] == text_of(renderer.render("invoice_v2.html", document()))[1]
    assert renderer.standalone_html("invoice_v1.html", document()) == renderer.html("invoice_v1.html", document())


@pytest.mark.slow
def test_many_invoices_render_in_worker_processes_and_a_failure_stays_in_its_place(renderer):
    from aggregator.consolidate.render import RenderError

    jobs = [("invoice_v2.html", document(customer_name=f"Customer {i}")) for i in range(4)]
    jobs.insert(2, ("no_such_template.html", document()))
    results = renderer.render_many(jobs, processes=2)
    assert [type(r) for r in results] == [bytes, bytes, RenderError, bytes, bytes]
    assert "TemplateNotFound" in str(results[2])
    for i, pdf in enumerate(results[:2] + results[3:]):
        assert f"Customer {i}" in text_of(pdf)[1]
    in_process = renderer.render_many(jobs[:3], processes=1)
    assert isinstance(in_process[2], Exception) and text_of(in_process[0])[1] == text_of(results[0])[1]


def test_a_refused_fetch_fails_the_render_with_an_ordinary_exception(renderer):
    """WeasyPrint's FatalURLFetchingError is a BaseException: the renderer turns it into an
    Exception, so render_pdfs records the failure on the invoice instead of aborting the run."""
    from aggregator.consolidate.render import RenderError

    doc = document()
    doc["tenant"] = {**doc["tenant"], "logo": "file:///etc/passwd"}
    with pytest.raises(RenderError, match="blocked"):
        renderer.render("invoice_v2.html", doc)


class _KillsTheWorker:
    """Unpickled in a worker process, it ends that process at once (as an OOM kill would)."""

    def __reduce__(self):
        import os
        return os._exit, (1,)


@pytest.mark.slow
def test_a_worker_process_that_dies_fails_the_unfinished_jobs_not_the_run(renderer):
    from aggregator.consolidate.render import RenderError

    jobs = [("invoice_v2.html", document()), ("invoice_v2.html", {"poison": _KillsTheWorker()})]
    results = renderer.render_many(jobs, processes=2)
    assert len(results) == 2 and isinstance(results[1], RenderError)
    assert all(isinstance(r, (bytes, RenderError)) for r in results)
