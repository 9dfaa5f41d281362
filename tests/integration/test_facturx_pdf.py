"""The renderer writes Factur-X PDFs against the real WeasyPrint: PDF/A-3b, the e-invoice's XML
and any other attachment (a large invoice's lines as CSV) each embedded once with its
relationship and MIME type, and the Factur-X properties inside the one XMP packet. A template of
the test's own, so the invoice templates can change freely."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import facturx
import pytest
from lxml import etree
from pypdf import PdfReader

from aggregator.consolidate import einvoice
from aggregator.consolidate.einvoice_service import facturx_context
from aggregator.consolidate.render import Attachment, WeasyPrintRenderer

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    (folder / "note.html").write_text("<html><head><title>{{ title }}</title></head>"
                                      "<body><h1>{{ title }}</h1><p>{{ text }}</p></body></html>")
    (folder / "note.css").write_text("body { font-family: DejaVu Sans, sans-serif; }")
    return WeasyPrintRenderer(folder)


def _xml() -> bytes:
    seller = einvoice.Party("Marché Numérique SAS", "FR", vat_id="FR40303265045", city="Paris")
    buyer = einvoice.Party("Kunde GmbH", "DE", vat_id="DE136695976", city="Berlin")
    line = einvoice.Line("1", "Seats", 10_000, "S", Decimal(20))
    tax = einvoice.TaxBreakdown("S", Decimal(20), 10_000, 2_000)
    return einvoice.to_cii(einvoice.EInvoice(
        einvoice.INVOICE, "INV-2026-000042", date(2026, 11, 25), "EUR", seller, buyer, (line,), (tax,),
        line_total=10_000, tax_basis=10_000, tax_total=2_000, grand_total=12_000, due_payable=12_000))


def test_the_xml_and_a_csv_are_each_attached_once_with_their_relationship_and_type(renderer):
    xml, csv = _xml(), b"line,amount\n1,100.00\n"
    context = facturx_context({"title": "Invoice INV-2026-000042", "text": "Seats: €100.00",
                               "attachments": [Attachment("lines.csv", csv, "text/csv", "All lines")]}, xml)
    pdf = renderer.render("note.html", context)
    catalog = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    attached = {}
    for reference in catalog["/AF"]:
        spec = reference.get_object()
        stream = spec["/EF"]["/F"].get_object()
        assert spec["/F"] not in attached, "listed twice in /AF"
        attached[spec["/F"]] = (spec["/AFRelationship"], stream["/Subtype"], stream.get_data())
    assert attached == {"factur-x.xml": ("/Data", "/text/xml", xml),
                        "lines.csv": ("/Supplement", "/text/csv", csv)}
    names = catalog["/Names"]["/EmbeddedFiles"]["/Names"][::2]
    assert sorted(names) == ["factur-x.xml", "lines.csv"]
    assert facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True) == ("factur-x.xml", xml)


def test_the_factur_x_properties_are_in_the_one_rdf_of_the_xmp_packet(renderer):
    pdf = renderer.render("note.html", facturx_context({"title": "Invoice", "text": "—"}, _xml()))
    packet = PdfReader(io.BytesIO(pdf)).trailer["/Root"]["/Metadata"].get_object().get_data()
    xmpmeta = etree.fromstring(packet[packet.index(b"<x:xmpmeta"):packet.rindex(b"</x:xmpmeta>") + 12])
    (rdf,) = xmpmeta.findall(f"{RDF}RDF")
    values = {element.tag.split("}")[1]: element.text for element in rdf.iter()
              if str(element.tag).startswith(f"{{{einvoice.FACTURX_NS}}}")}
    assert values == {"DocumentType": "INVOICE", "DocumentFileName": "factur-x.xml", "Version": "1.0",
                      "ConformanceLevel": "EN 16931"}
    identification = [d for d in rdf.findall(f"{RDF}Description") if d.get("{http://www.aiim.org/pdfa/ns/id/}part")]
    assert [(d.get("{http://www.aiim.org/pdfa/ns/id/}part"), d.get("{http://www.aiim.org/pdfa/ns/id/}conformance"))
            for d in identification] == [("3", "B")]
    schemas = rdf.findall(f"{RDF}Description/{{http://www.aiim.org/pdfa/ns/extension/}}schemas")
    assert len(schemas) == 1 and b"<pdfaSchema:prefix>fx</pdfaSchema:prefix>" in packet


def test_a_pdf_without_a_variant_is_left_as_it_was(renderer):
    pdf = renderer.render("note.html", {"title": "Plain", "text": "no e-invoice"})
    catalog = PdfReader(io.BytesIO(pdf)).trailer["/Root"]
    assert "/Metadata" not in catalog and "/AF" not in catalog
