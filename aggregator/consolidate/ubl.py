"""An e-invoice (einvoice.EInvoice) as OASIS UBL 2.1 XML, EN 16931's other syntax (the one Peppol
carries). Pure: the same business terms as the CII in einvoice.py, in UBL's element order.

It declares plain EN 16931 (`urn:cen.eu:en16931:2017`), not Peppol BIS Billing 3.0: Peppol also
wants each party's Peppol participant id (its electronic address, BT-34/BT-49, in a Peppol
scheme), which no tenant or customer holds here.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from lxml import etree

from .. import money
from .einvoice import CREDIT_NOTE, EInvoice, Party, TaxBreakdown, _xml_chars

CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
ROOTS = {"Invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
         "CreditNote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"}


def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{CAC if prefix == 'cac' else CBC}}}{name}", attrib)
    if text is not None:
        element.text = _xml_chars(text)
    return element


def to_ubl(e: EInvoice) -> bytes:
    """The e-invoice as a UBL 2.1 Invoice (type 380) or CreditNote (381)."""
    credit_note = e.type_code == CREDIT_NOTE
    kind = "CreditNote" if credit_note else "Invoice"
    root = etree.Element(f"{{{ROOTS[kind]}}}{kind}", nsmap={None: ROOTS[kind], "cac": CAC, "cbc": CBC})

    def amount(parent: etree._Element, tag: str, minor: int) -> None:
        _el(parent, tag, money.format_amount(minor, e.currency), currencyID=e.currency)

    _el(root, "cbc:CustomizationID", "urn:cen.eu:en16931:2017")
    _el(root, "cbc:ID", e.number)
    _el(root, "cbc:IssueDate", e.issue_date.isoformat())
    if e.due_date and not credit_note:
        _el(root, "cbc:DueDate", e.due_date.isoformat())
    _el(root, "cbc:CreditNoteTypeCode" if credit_note else "cbc:InvoiceTypeCode", e.type_code)
    for note in e.notes:
        _el(root, "cbc:Note", note)
    _el(root, "cbc:DocumentCurrencyCode", e.currency)
    if e.buyer_reference:
        _el(root, "cbc:BuyerReference", e.buyer_reference)
    if e.period_start and e.period_end:
        _period(root, e.period_start, e.period_end)
    if e.preceding_number:
        reference = _el(_el(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        _el(reference, "cbc:ID", e.preceding_number)
        if e.preceding_date:
            _el(reference, "cbc:IssueDate", e.preceding_date.isoformat())
    _party(_el(root, "cac:AccountingSupplierParty"), e.seller, seller=True)
    _party(_el(root, "cac:AccountingCustomerParty"), e.buyer, seller=False)
    if e.payment_means:
        means = _el(root, "cac:PaymentMeans")
        code = _el(means, "cbc:PaymentMeansCode", e.payment_means.code)
        if e.payment_means.information:
            code.set("name", _xml_chars(e.payment_means.information))
        if credit_note and e.due_date:
            _el(means, "cbc:PaymentDueDate", e.due_date.isoformat())
        if e.payment_reference:
            _el(means, "cbc:PaymentID", e.payment_reference)
        account_id = e.payment_means.iban or e.payment_means.account_id
        if account_id:
            account = _el(means, "cac:PayeeFinancialAccount")
            _el(account, "cbc:ID", account_id)
            if e.payment_means.account_name:
                _el(account, "cbc:Name", e.payment_means.account_name)
            if e.payment_means.bic:
                _el(_el(account, "cac:FinancialInstitutionBranch"), "cbc:ID", e.payment_means.bic)
    if e.payment_terms:
        _el(_el(root, "cac:PaymentTerms"), "cbc:Note", e.payment_terms)
    for charge in e.charges:
        element = _el(root, "cac:AllowanceCharge")
        _el(element, "cbc:ChargeIndicator", "true")
        _el(element, "cbc:AllowanceChargeReason", charge.reason)
        amount(element, "cbc:Amount", charge.amount)
        _category(element, "cac:TaxCategory", e.taxes[0].category, e.taxes[0].rate)
    total = _el(root, "cac:TaxTotal")
    amount(total, "cbc:TaxAmount", e.tax_total)
    for tax in e.taxes:
        _subtotal(total, tax, amount)
    sums = _el(root, "cac:LegalMonetaryTotal")
    amount(sums, "cbc:LineExtensionAmount", e.line_total)
    amount(sums, "cbc:TaxExclusiveAmount", e.tax_basis)
    amount(sums, "cbc:TaxInclusiveAmount", e.grand_total)
    if e.charges:
        amount(sums, "cbc:ChargeTotalAmount", sum(c.amount for c in e.charges))
    amount(sums, "cbc:PayableAmount", e.due_payable)
    for line in e.lines:
        item_line = _el(root, "cac:CreditNoteLine" if credit_note else "cac:InvoiceLine")
        _el(item_line, "cbc:ID", line.id)
        if line.note:
            _el(item_line, "cbc:Note", line.note)
        _el(item_line, "cbc:CreditedQuantity" if credit_note else "cbc:InvoicedQuantity", str(line.quantity),
            unitCode=line.unit)
        amount(item_line, "cbc:LineExtensionAmount", line.net_amount)
        if line.service_start and line.service_end:
            _period(item_line, line.service_start, line.service_end)
        item = _el(item_line, "cac:Item")
        _el(item, "cbc:Name", line.name)
        if line.seller_item_id:
            _el(_el(item, "cac:SellersItemIdentification"), "cbc:ID", line.seller_item_id)
        _category(item, "cac:ClassifiedTaxCategory", line.tax_category, line.tax_rate)
        amount(_el(item_line, "cac:Price"), "cbc:PriceAmount", abs(line.net_amount))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _period(parent: etree._Element, start: date, end: date) -> None:
    period = _el(parent, "cac:InvoicePeriod")
    _el(period, "cbc:StartDate", start.isoformat())
    _el(period, "cbc:EndDate", end.isoformat())


def _category(parent: etree._Element, tag: str, category: str, rate: Decimal | None,
              tax: TaxBreakdown | None = None) -> None:
    element = _el(parent, tag)
    _el(element, "cbc:ID", category)
    if rate is not None:
        _el(element, "cbc:Percent", f"{rate.normalize():f}")
    if tax is not None and tax.exemption_code:
        _el(element, "cbc:TaxExemptionReasonCode", tax.exemption_code)
    if tax is not None and tax.exemption_reason:
        _el(element, "cbc:TaxExemptionReason", tax.exemption_reason)
    _el(_el(element, "cac:TaxScheme"), "cbc:ID", "VAT")


def _subtotal(total: etree._Element, tax: TaxBreakdown, amount) -> None:
    subtotal = _el(total, "cac:TaxSubtotal")
    amount(subtotal, "cbc:TaxableAmount", tax.basis)
    amount(subtotal, "cbc:TaxAmount", tax.amount)
    _category(subtotal, "cac:TaxCategory", tax.category, tax.rate, tax)


def _party(holder: etree._Element, party: Party, *, seller: bool) -> None:
    element = _el(holder, "cac:Party")
    if party.email:
        _el(element, "cbc:EndpointID", party.email, schemeID="EM")
    if party.id:
        _el(_el(element, "cac:PartyIdentification"), "cbc:ID", party.id)
    lines = [(tag, value) for tag, value in (
        ("cbc:StreetName", party.line1), ("cbc:AdditionalStreetName", party.line2), ("cbc:CityName", party.city),
        ("cbc:PostalZone", party.postal_code), ("cbc:CountrySubentity", party.state)) if value]
    if lines or party.country:  # as in the CII: no empty address
        address = _el(element, "cac:PostalAddress")
        for tag, value in lines:
            _el(address, tag, value)
        if party.country:
            _el(_el(address, "cac:Country"), "cbc:IdentificationCode", party.country)
    if party.vat_id:
        scheme = _el(element, "cac:PartyTaxScheme")
        _el(scheme, "cbc:CompanyID", party.vat_id)
        _el(_el(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
    if seller and party.tax_number:
        scheme = _el(element, "cac:PartyTaxScheme")
        _el(scheme, "cbc:CompanyID", party.tax_number)
        _el(_el(scheme, "cac:TaxScheme"), "cbc:ID", "TAX")
    legal = _el(element, "cac:PartyLegalEntity")
    _el(legal, "cbc:RegistrationName", party.name)
    if party.legal_id:
        _el(legal, "cbc:CompanyID", party.legal_id)
