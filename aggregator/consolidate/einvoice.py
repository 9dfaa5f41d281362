"""E-invoices: an invoice (or a credit note) as EN 16931 data, written as UN/CEFACT CII XML in
the Factur-X / ZUGFeRD "EN 16931" profile. Pure: plain values in, bytes out, no database.

`EInvoice` holds what the standard calls the semantic model (the business terms BT-… and groups
BG-… named beside each field); `einvoice_of` builds one from an invoice's values (its row, its
lines, the parties it was issued between); `to_cii` writes the XML. A credit note is the same
document with type code 381 and the invoice it credits as the preceding invoice (BG-3).

How our invoices map onto the model (docs/invoices.md, "E-invoices (Factur-X)", says it for
readers):
- One line per invoice line (bills and applied credits), in the invoice's order. A line whose
  amount is negative (an applied credit, a provider's adjustment) has quantity -1 and a positive
  price: EN 16931 forbids a negative price (BR-27), not a negative line.
- One tax category for the whole invoice (an invoice has one rate): S (standard, rate > 0),
  Z (rate 0), AE (reverse charge: the buyer accounts for the VAT), E (exempt), or O (outside the
  tax's scope: a seller with no tax id that charges no tax).
- A negative subtotal is not invoiced: our total is 0 and the difference is carried to the
  next invoice as credit. The XML states that as a document-level charge of the carried amount
  ("Credit carried to the next invoice"), so that its sums hold (BR-CO-10..16) and the grand
  total is the invoice's, 0.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any, Mapping, Sequence

from lxml import etree

from .. import money

INVOICE = "380"
CREDIT_NOTE = "381"
EN16931 = "urn:cen.eu:en16931:2017"  # the Factur-X / ZUGFeRD EN 16931 (COMFORT) profile's guideline id

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "qdt": "urn:un:unece:uncefact:data:standard:QualifiedDataType:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}

#: Stripe's tax id types that are VAT numbers (BT-31 / BT-48, scheme "VA"). Any other type (an
#: ABN, a GST number, an EIN) identifies the business and registers it for its tax at once: the
#: seller's is its legal registration id (BT-30) and tax registration (BT-32, scheme "FC"), the
#: buyer's its legal registration id (BT-47).
VAT_TYPES = frozenset({"eu_vat", "gb_vat", "ch_vat", "no_vat", "is_vat", "li_vat", "za_vat", "ae_trn"})

#: Exemption reasons (BT-120/121) for the categories that need one (BR-AE-10, BR-E-10).
EXEMPTION = {
    "AE": ("VATEX-EU-AE", "Reverse charge"),
    "E": (None, "Exempt from tax"),
    "O": ("VATEX-EU-O", "Not subject to VAT"),
}

CARRIED_CREDIT_REASON = "Credit carried to the next invoice"


class EInvoiceError(ValueError):
    """Values that no e-invoice can be made of (a draft without a number)."""


@dataclass(frozen=True)
class Party:
    """A seller (BG-4) or buyer (BG-7)."""

    name: str  # BT-27 / BT-44
    country: str | None  # BT-40 / BT-55 (ISO 3166-1 alpha-2)
    id: str | None = None  # BT-29 / BT-46: the seller's id on this platform (its tenant id)
    line1: str | None = None  # BT-35 / BT-50
    line2: str | None = None  # BT-36 / BT-51
    city: str | None = None  # BT-37 / BT-52
    postal_code: str | None = None  # BT-38 / BT-53
    state: str | None = None  # BT-39 / BT-54
    vat_id: str | None = None  # BT-31 / BT-48
    tax_number: str | None = None  # BT-32 (seller only)
    legal_id: str | None = None  # BT-30 / BT-47
    email: str | None = None  # BT-34 / BT-49


@dataclass(frozen=True)
class Line:
    """An invoice line (BG-25). `net_amount` in minor units of the invoice's currency."""

    id: str  # BT-126
    name: str  # BT-153
    net_amount: int  # BT-131
    tax_category: str  # BT-151
    tax_rate: Decimal | None  # BT-152, a percentage (none for category O)
    quantity: int = 1  # BT-129: -1 for a negative line (the price stays positive)
    unit: str = "C62"  # BT-130: UN/ECE rec. 20 "one"
    note: str | None = None  # BT-127 (one per line)
    seller_item_id: str | None = None  # BT-155
    service_start: date | None = None  # BT-134
    service_end: date | None = None  # BT-135


@dataclass(frozen=True)
class TaxBreakdown:
    """A VAT breakdown (BG-23): one per category and rate."""

    category: str  # BT-118: S, Z, E, AE, O
    rate: Decimal | None  # BT-119, a percentage (none for category O)
    basis: int  # BT-116
    amount: int  # BT-117
    exemption_code: str | None = None  # BT-121
    exemption_reason: str | None = None  # BT-120


@dataclass(frozen=True)
class Charge:
    """A document level charge (BG-21)."""

    amount: int  # BT-99
    reason: str  # BT-104


@dataclass(frozen=True)
class PaymentMeans:
    """How the buyer pays (BG-16): 58 SEPA credit transfer, 30 credit transfer, 48 bank card."""

    code: str  # BT-81
    information: str | None = None  # BT-82
    iban: str | None = None  # BT-84 (an IBAN)
    account_id: str | None = None  # BT-84 (another account number)
    account_name: str | None = None  # BT-85
    bic: str | None = None  # BT-86


@dataclass(frozen=True)
class EInvoice:
    type_code: str  # BT-3: 380 invoice, 381 credit note
    number: str  # BT-1
    issue_date: date  # BT-2
    currency: str  # BT-5
    seller: Party
    buyer: Party
    lines: tuple[Line, ...]
    taxes: tuple[TaxBreakdown, ...]
    line_total: int  # BT-106
    tax_basis: int  # BT-109
    tax_total: int  # BT-110
    grand_total: int  # BT-112
    due_payable: int  # BT-115
    charges: tuple[Charge, ...] = ()
    buyer_reference: str | None = None  # BT-10
    payment_reference: str | None = None  # BT-83
    due_date: date | None = None  # BT-9
    payment_terms: str | None = None  # BT-20
    payment_means: PaymentMeans | None = None
    period_start: date | None = None  # BT-73
    period_end: date | None = None  # BT-74
    notes: tuple[str, ...] = ()  # BT-22
    preceding_number: str | None = None  # BT-25 (a credit note's invoice)
    preceding_date: date | None = None  # BT-26


# --- building one from an invoice's values ------------------------------------------------------

def party_of(values: Mapping[str, Any] | None, *, name_key: str, seller: bool, email: str | None = None,
             party_id: str | None = None) -> Party:
    """A Party from an `invoices.parties` side ({legal_name | name, address, country, tax_ids})."""
    values = values or {}
    address = values.get("address") or {}
    vat_id = tax_number = legal_id = None
    for tax_id in values.get("tax_ids") or ():
        kind, value = tax_id.get("type"), tax_id.get("value")
        if not value:
            continue
        if kind in VAT_TYPES:
            vat_id = vat_id or value
        else:
            legal_id = legal_id or value
            if seller:
                tax_number = tax_number or value
    return Party(name=values.get(name_key) or values.get("name") or "", id=party_id, country=values.get("country") or
                 address.get("country") or None, line1=address.get("line1") or None,
                 line2=address.get("line2") or None, city=address.get("city") or None,
                 postal_code=address.get("postal_code") or None, state=address.get("state") or None,
                 vat_id=vat_id, tax_number=tax_number, legal_id=legal_id, email=email or None)


def tax_category(treatment: str, rate: Decimal, seller: Party) -> str:
    """The EN 16931 VAT category of an invoice with this treatment and rate (a fraction) from
    this seller. A seller with no tax registration that charges no tax is outside the tax's
    scope (O): zero-rated (Z) and exempt (E) supplies are those of a registered seller."""
    if treatment == "reverse_charge":
        return "AE"
    if rate > 0 and treatment == "standard":
        return "S"
    if not (seller.vat_id or seller.tax_number):
        return "O"
    return "E" if treatment == "exempt" else "Z"


def payment_means_of(*, card: bool, instructions: Mapping[str, Any] | None, currency: str,
                     due_date: date | None) -> PaymentMeans | None:
    """Card when the customer has one on file and the tenant charges it; else the tenant's bank
    details (SEPA credit transfer for an IBAN in euros, a credit transfer otherwise); else none."""
    if card:
        when = f" on {due_date.isoformat()}" if due_date else ""
        return PaymentMeans("48", information=f"Charged to the card on file{when}")
    instructions = instructions or {}
    holder = instructions.get("account_holder") or None
    if instructions.get("iban"):
        return PaymentMeans("58" if currency == "EUR" else "30", information="Bank transfer",
                            iban=instructions["iban"], account_name=holder, bic=instructions.get("bic") or None)
    if instructions.get("account_number"):
        bank = ", ".join(filter(None, [instructions.get("bank_name"),
                                      f"BSB {instructions['bsb']}" if instructions.get("bsb") else None]))
        return PaymentMeans("30", information=f"Bank transfer{f' ({bank})' if bank else ''}",
                            account_id=instructions["account_number"], account_name=holder)
    return None


def einvoice_of(*, invoice: Mapping[str, Any], lines: Sequence[Any], seller: Party, buyer: Party,
                treatment: str, provider_names: Mapping[str, str], payment_means: PaymentMeans | None,
                buyer_reference: str | None, type_code: str = INVOICE, preceding_number: str | None = None,
                preceding_date: date | None = None) -> EInvoice:
    """The e-invoice of an invoice: `invoice` has its values by name (number, issue_date,
    currency, tax_rate, tax, total, carried_credit, due_date, period_start, period_end);
    `lines` are its lines (consolidate.invoices.Line: kind, amount, description, provider_id,
    service_start, service_end, original_amount, original_currency, fx_rate) in order, whose
    amounts add up to its subtotal. A credit note (type 381) passes its own values the same way
    (amounts credited, positive), with the invoice it credits as `preceding_*`."""
    if not invoice.get("number"):
        raise EInvoiceError("A draft has no number: only a finalized invoice has an e-invoice.")
    currency = invoice["currency"]
    rate = Decimal(invoice["tax_rate"])
    category = tax_category(treatment, rate, seller)
    percent = {"S": (rate * 100).normalize(), "O": None}.get(category, Decimal(0))
    if category == "O":  # BR-O-02: no VAT identifiers on a supply outside the tax's scope
        buyer = replace(buyer, vat_id=None)
    e_lines = tuple(_line(position, line, currency, provider_names, category, percent)
                    for position, line in enumerate(lines, 1))
    line_total = sum(line.net_amount for line in e_lines)
    carried = invoice.get("carried_credit") or 0
    charges = (Charge(carried, CARRIED_CREDIT_REASON),) if carried else ()
    basis = line_total + carried
    code, reason = EXEMPTION.get(category, (None, None))
    tax = TaxBreakdown(category, percent, basis, invoice["tax"], code, reason)
    return EInvoice(
        type_code=type_code, number=invoice["number"], issue_date=invoice["issue_date"], currency=currency,
        seller=seller, buyer=buyer, lines=e_lines, taxes=(tax,), charges=charges, line_total=line_total,
        tax_basis=basis, tax_total=invoice["tax"], grand_total=basis + invoice["tax"],
        due_payable=invoice["total"], buyer_reference=buyer_reference, payment_reference=invoice["number"],
        due_date=invoice.get("due_date"), payment_means=payment_means,
        period_start=invoice.get("period_start"), period_end=invoice.get("period_end"),
        notes=(("VAT reverse charged: the customer accounts for the VAT (Article 196, Directive 2006/112/EC).",)
               if category == "AE" else ()),
        preceding_number=preceding_number, preceding_date=preceding_date)


def _line(position: int, line: Any, currency: str, provider_names: Mapping[str, str], category: str,
          percent: Decimal | None) -> Line:
    notes = []
    if line.provider_id:
        notes.append(f"Provider: {provider_names.get(line.provider_id, line.provider_id)}")
    if line.original_currency:
        notes.append(f"Billed as {money.format_amount(line.original_amount, line.original_currency)} "
                     f"{line.original_currency} at {money.format_rate(Decimal(line.fx_rate))} {currency} per "
                     f"{line.original_currency}")
    name = _xml_chars(line.description or "").strip() or ("Credit" if line.kind == "credit" else "Charge")
    return Line(id=str(position), name=name, net_amount=line.amount, tax_category=category, tax_rate=percent,
                quantity=-1 if line.amount < 0 else 1,
                note="; ".join(notes) or None, seller_item_id=line.provider_id,
                service_start=line.service_start, service_end=line.service_end)


# --- writing it as CII -----------------------------------------------------------------------

def _el(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    prefix, name = tag.split(":")
    element = etree.SubElement(parent, f"{{{NS[prefix]}}}{name}", attrib)
    if text is not None:
        element.text = _xml_chars(text)
    return element


def _date(parent: etree._Element, tag: str, value: date, *, qualified: bool = False) -> None:
    holder = _el(parent, tag)
    _el(holder, "qdt:DateTimeString" if qualified else "udt:DateTimeString", value.strftime("%Y%m%d"),
        format="102")


def _percent(parent: etree._Element, tag: str, value: Decimal | None) -> None:
    if value is not None:
        _el(parent, tag, f"{value.normalize():f}")


def to_cii(e: EInvoice) -> bytes:
    """The e-invoice as CII XML (UTF-8, with its declaration), in the XSD's element order."""
    amount = lambda minor: money.format_amount(minor, e.currency)  # noqa: E731
    root = etree.Element(f"{{{NS['rsm']}}}CrossIndustryInvoice", nsmap=NS)
    context = _el(root, "rsm:ExchangedDocumentContext")
    _el(_el(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", EN16931)

    document = _el(root, "rsm:ExchangedDocument")
    _el(document, "ram:ID", e.number)
    _el(document, "ram:TypeCode", e.type_code)
    _date(document, "ram:IssueDateTime", e.issue_date)
    for note in e.notes:
        _el(_el(document, "ram:IncludedNote"), "ram:Content", note)

    transaction = _el(root, "rsm:SupplyChainTradeTransaction")
    transaction.append(etree.Comment(_LINES))  # replaced by the lines' text below

    agreement = _el(transaction, "ram:ApplicableHeaderTradeAgreement")
    if e.buyer_reference:
        _el(agreement, "ram:BuyerReference", e.buyer_reference)
    _write_party(agreement, "ram:SellerTradeParty", e.seller, seller=True)
    _write_party(agreement, "ram:BuyerTradeParty", e.buyer, seller=False)
    _el(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _el(transaction, "ram:ApplicableHeaderTradeSettlement")
    if e.payment_reference:
        _el(settlement, "ram:PaymentReference", e.payment_reference)
    _el(settlement, "ram:InvoiceCurrencyCode", e.currency)
    if e.payment_means:
        _write_payment_means(settlement, e.payment_means)
    for tax in e.taxes:
        trade_tax = _el(settlement, "ram:ApplicableTradeTax")
        _el(trade_tax, "ram:CalculatedAmount", amount(tax.amount))
        _el(trade_tax, "ram:TypeCode", "VAT")
        if tax.exemption_reason:
            _el(trade_tax, "ram:ExemptionReason", tax.exemption_reason)
        _el(trade_tax, "ram:BasisAmount", amount(tax.basis))
        _el(trade_tax, "ram:CategoryCode", tax.category)
        if tax.exemption_code:
            _el(trade_tax, "ram:ExemptionReasonCode", tax.exemption_code)
        _percent(trade_tax, "ram:RateApplicablePercent", tax.rate)
    if e.period_start and e.period_end:
        period = _el(settlement, "ram:BillingSpecifiedPeriod")
        _date(period, "ram:StartDateTime", e.period_start)
        _date(period, "ram:EndDateTime", e.period_end)
    for charge in e.charges:
        element = _el(settlement, "ram:SpecifiedTradeAllowanceCharge")
        _el(_el(element, "ram:ChargeIndicator"), "udt:Indicator", "true")
        _el(element, "ram:ActualAmount", amount(charge.amount))
        _el(element, "ram:Reason", charge.reason)
        category = _el(element, "ram:CategoryTradeTax")
        _el(category, "ram:TypeCode", "VAT")
        _el(category, "ram:CategoryCode", e.taxes[0].category)
        _percent(category, "ram:RateApplicablePercent", e.taxes[0].rate)
    if e.due_date or e.payment_terms:
        terms = _el(settlement, "ram:SpecifiedTradePaymentTerms")
        if e.payment_terms:
            _el(terms, "ram:Description", e.payment_terms)
        if e.due_date:
            _date(terms, "ram:DueDateDateTime", e.due_date)
    summation = _el(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _el(summation, "ram:LineTotalAmount", amount(e.line_total))
    if e.charges:
        _el(summation, "ram:ChargeTotalAmount", amount(sum(c.amount for c in e.charges)))
    _el(summation, "ram:TaxBasisTotalAmount", amount(e.tax_basis))
    _el(summation, "ram:TaxTotalAmount", amount(e.tax_total), currencyID=e.currency)
    _el(summation, "ram:GrandTotalAmount", amount(e.grand_total))
    _el(summation, "ram:DuePayableAmount", amount(e.due_payable))
    if e.preceding_number:
        preceding = _el(settlement, "ram:InvoiceReferencedDocument")
        _el(preceding, "ram:IssuerAssignedID", e.preceding_number)
        if e.preceding_date:
            _date(preceding, "ram:FormattedIssueDateTime", e.preceding_date, qualified=True)
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    lines = "\n    ".join(_line_xml(line, amount) for line in e.lines).encode()  # one line of text each
    return document.replace(f"<!--{_LINES}-->".encode(), lines, 1)


_LINES = "lines"


def _line_xml(line: Line, amount) -> str:
    """One line item as CII text. Lines are most of a large invoice's XML (5,000 of them: about
    1 s through lxml's element API, 0.05 s as text), so they are written as text in the XSD's
    element order, each value escaped, and spliced into the document lxml writes."""
    def period() -> str:
        if not (line.service_start and line.service_end):
            return ""
        return (f"<ram:BillingSpecifiedPeriod><ram:StartDateTime>{_day_xml(line.service_start)}</ram:StartDateTime>"
                f"<ram:EndDateTime>{_day_xml(line.service_end)}</ram:EndDateTime></ram:BillingSpecifiedPeriod>")

    note = f"<ram:IncludedNote><ram:Content>{_text(line.note)}</ram:Content></ram:IncludedNote>" if line.note else ""
    item_id = (f"<ram:SellerAssignedID>{_text(line.seller_item_id)}</ram:SellerAssignedID>"
               if line.seller_item_id else "")
    rate = (f"<ram:RateApplicablePercent>{line.tax_rate.normalize():f}</ram:RateApplicablePercent>"
            if line.tax_rate is not None else "")
    return ("<ram:IncludedSupplyChainTradeLineItem>"
            f"<ram:AssociatedDocumentLineDocument><ram:LineID>{_text(line.id)}</ram:LineID>{note}"
            "</ram:AssociatedDocumentLineDocument>"
            f"<ram:SpecifiedTradeProduct>{item_id}<ram:Name>{_text(line.name)}</ram:Name></ram:SpecifiedTradeProduct>"
            "<ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice>"
            f"<ram:ChargeAmount>{amount(abs(line.net_amount))}</ram:ChargeAmount>"
            "</ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>"
            "<ram:SpecifiedLineTradeDelivery>"
            f'<ram:BilledQuantity unitCode="{_text(line.unit)}">{line.quantity}</ram:BilledQuantity>'
            "</ram:SpecifiedLineTradeDelivery>"
            "<ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode>"
            f"<ram:CategoryCode>{_text(line.tax_category)}</ram:CategoryCode>{rate}</ram:ApplicableTradeTax>"
            f"{period()}<ram:SpecifiedTradeSettlementLineMonetarySummation>"
            f"<ram:LineTotalAmount>{amount(line.net_amount)}</ram:LineTotalAmount>"
            "</ram:SpecifiedTradeSettlementLineMonetarySummation></ram:SpecifiedLineTradeSettlement>"
            "</ram:IncludedSupplyChainTradeLineItem>")


@cache  # a large invoice's lines mostly share their service periods
def _day_xml(value: date) -> str:
    return f'<udt:DateTimeString format="102">{value:%Y%m%d}</udt:DateTimeString>'


def _text(value: str) -> str:
    """`value` as XML character data: escaped, without the characters XML 1.0 cannot hold."""
    if not _TO_ESCAPE.search(value):  # most values: nothing to do
        return value
    return html.escape(_xml_chars(value), quote=True).replace("\r", "&#13;")  # a parser reads a bare CR as LF


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TO_ESCAPE = re.compile("[&<>\"'\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_chars(value: str) -> str:
    """Without the characters XML 1.0 cannot hold (control characters a description may carry):
    lxml refuses them, and a document that cannot be written would never be issued."""
    return _NOT_XML.sub("", value)


def _write_party(agreement: etree._Element, tag: str, party: Party, *, seller: bool) -> None:
    element = _el(agreement, tag)
    if party.id:
        _el(element, "ram:ID", party.id)
    _el(element, "ram:Name", party.name)
    if party.legal_id:
        _el(_el(element, "ram:SpecifiedLegalOrganization"), "ram:ID", party.legal_id)
    address = [(tag_name, value) for tag_name, value in (
        ("ram:PostcodeCode", party.postal_code), ("ram:LineOne", party.line1), ("ram:LineTwo", party.line2),
        ("ram:CityName", party.city), ("ram:CountryID", party.country),
        ("ram:CountrySubDivisionName", party.state)) if value]
    if address:  # none known: left out (an empty one is not valid); EN 16931 wants the country (BR-09, BR-11)
        element_address = _el(element, "ram:PostalTradeAddress")
        for tag_name, value in address:
            _el(element_address, tag_name, value)
    if party.email:
        _el(_el(element, "ram:URIUniversalCommunication"), "ram:URIID", party.email, schemeID="EM")
    if party.vat_id:
        _el(_el(element, "ram:SpecifiedTaxRegistration"), "ram:ID", party.vat_id, schemeID="VA")
    if seller and party.tax_number:
        _el(_el(element, "ram:SpecifiedTaxRegistration"), "ram:ID", party.tax_number, schemeID="FC")


def _write_payment_means(settlement: etree._Element, means: PaymentMeans) -> None:
    element = _el(settlement, "ram:SpecifiedTradeSettlementPaymentMeans")
    _el(element, "ram:TypeCode", means.code)
    if means.information:
        _el(element, "ram:Information", means.information)
    if means.iban or means.account_id:
        account = _el(element, "ram:PayeePartyCreditorFinancialAccount")
        if means.iban:
            _el(account, "ram:IBANID", means.iban)
        if means.account_name:
            _el(account, "ram:AccountName", means.account_name)
        if means.account_id:
            _el(account, "ram:ProprietaryID", means.account_id)
    if means.bic:
        _el(_el(element, "ram:PayeeSpecifiedCreditorFinancialInstitution"), "ram:BICID", means.bic)


# --- the PDF/A-3 side ------------------------------------------------------------------------

FACTURX_FILENAME = "factur-x.xml"  # the name Factur-X / ZUGFeRD 2 readers look for
FACTURX_NS = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#"

#: What a Factur-X PDF/A-3 adds to its XMP metadata (Factur-X 1.0x, section 6.2.2): the fx
#: properties naming the embedded XML, its profile ("EN 16931") and the document type (INVOICE,
#: for credit notes too), and the PDF/A extension schema that declares them (PDF/A allows no
#: property that no schema declares).
FACTURX_XMP = f"""
<rdf:Description xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
    xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"
    xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#" rdf:about="">
  <pdfaExtension:schemas>
    <rdf:Bag>
      <rdf:li rdf:parseType="Resource">
        <pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>
        <pdfaSchema:namespaceURI>{FACTURX_NS}</pdfaSchema:namespaceURI>
        <pdfaSchema:prefix>fx</pdfaSchema:prefix>
        <pdfaSchema:property>
          <rdf:Seq>
{"".join(f'''            <rdf:li rdf:parseType="Resource">
              <pdfaProperty:name>{name}</pdfaProperty:name>
              <pdfaProperty:valueType>Text</pdfaProperty:valueType>
              <pdfaProperty:category>external</pdfaProperty:category>
              <pdfaProperty:description>{description}</pdfaProperty:description>
            </rdf:li>
''' for name, description in (
    ("DocumentFileName", "The name of the embedded XML document"),
    ("DocumentType", "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"),
    ("Version", "The actual version of the standard applying to the embedded XML document"),
    ("ConformanceLevel", "The conformance level of the embedded XML document")))}          </rdf:Seq>
        </pdfaSchema:property>
      </rdf:li>
    </rdf:Bag>
  </pdfaExtension:schemas>
</rdf:Description>
<rdf:Description xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:fx="{FACTURX_NS}" rdf:about="">
  <fx:DocumentType>INVOICE</fx:DocumentType>
  <fx:DocumentFileName>{FACTURX_FILENAME}</fx:DocumentFileName>
  <fx:Version>1.0</fx:Version>
  <fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>
</rdf:Description>
""".encode()
