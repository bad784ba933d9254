"""One INVOIC message's segments to an invoice: what each segment says (BGM, DTM, NAD,
CUX, LIN and its details, TAX, MOA), then the checks an accountant relies on (totals that
add up, a date, a supplier), each failure with its French reason."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from pydifact.segments import Segment

from import_svc.domain.edifact.limits import is_count, is_digits, reject, shown
from import_svc.domain.edifact.segments import component, components
from import_svc.domain.errors import FileRejectedError
from import_svc.domain.invoices import (
    INVOICE_LABELS,
    Invoice,
    InvoiceLine,
    InvoiceType,
    french_amount,
)

# Suppliers round each line and the tax separately: one cent of drift is not an error.
TOLERANCE = Decimal("0.01")
DEFAULT_CURRENCY = "EUR"

DOCUMENT_TYPES: dict[str, InvoiceType] = {"380": "invoice", "381": "credit_note"}
# ISO 9735 accepts both the comma and the full stop as decimal mark, whatever UNA says.
_NUMBER = re.compile(r"-?(?:\d+(?:[.,]\d*)?|[.,]\d+)", re.ASCII)
_MAX_NUMBER_LENGTH = 35  # an..35 / n..35: the longest numeric data element of D.96A
_CURRENCY = re.compile(r"[A-Z]{3}")
_DATE_FORMATS = {"102": 8, "203": 12, "204": 14}  # CCYYMMDD, +HHMM, +HHMMSS


@dataclass
class _Line:
    raw_number: str
    product_code: str
    description: str = ""
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None


@dataclass
class _Message:
    """What one message says, before it is checked."""

    document_code: str | None = None
    number: str = ""
    date: tuple[str, str] | None = None
    supplier: tuple[str, str] | None = None
    buyer: tuple[str, str] | None = None
    currency: str | None = None
    lines: list[_Line] = field(default_factory=list)
    totals: dict[str, str] = field(default_factory=dict)
    tax_amounts: list[str] = field(default_factory=list)
    tax_rates: list[str] = field(default_factory=list)


def message_label(ref: str, segments: list[Segment]) -> str:
    """'facture F-1024' when BGM says so: what an accountant can look up; else the ref."""
    for segment in segments:
        if segment.tag == "BGM":
            invoice_type = DOCUMENT_TYPES.get(component(segment, 0))
            number = component(segment, 1)
            if invoice_type is not None and number:
                return f"{INVOICE_LABELS[invoice_type]} {number}"
            break
    return f"réf. {ref}"


def collect(segments: list[Segment]) -> _Message:
    message = _Message()
    line: _Line | None = None
    summary = False  # after UNS: totals, never line data
    for segment in segments:
        tag = segment.tag
        if tag == "BGM" and message.document_code is None:
            message.document_code = component(segment, 0)
            message.number = component(segment, 1)
        elif tag == "DTM" and line is None and not summary:
            if component(segment, 0) == "137" and message.date is None:
                message.date = (component(segment, 0, 1), component(segment, 0, 2))
        elif tag == "NAD":
            party = (component(segment, 1), _party_name(segment))
            if component(segment, 0) == "SU" and message.supplier is None:
                message.supplier = party
            elif component(segment, 0) == "BY" and message.buyer is None:
                message.buyer = party
        elif tag == "CUX" and message.currency is None:
            message.currency = component(segment, 0, 1)
        elif tag == "LIN":
            line = _Line(component(segment, 0), component(segment, 2))
            message.lines.append(line)
        elif tag == "UNS":
            line, summary = None, True
        elif tag == "TAX":
            if component(segment, 0) == "7" and component(segment, 1) == "VAT":
                rate = component(segment, 4, 3)
                if rate:
                    message.tax_rates.append(rate)
        elif tag == "MOA":
            qualifier, amount = component(segment, 0), component(segment, 0, 1)
            if qualifier == "203" and line is not None:
                line.amount = line.amount or amount
            elif qualifier in ("77", "79", "86", "176"):
                message.totals.setdefault(qualifier, amount)
            elif qualifier == "124" and line is None:
                # Per-line MOA+124 is the line's own tax, already within the message's.
                message.tax_amounts.append(amount)
        elif line is not None:
            _collect_line_detail(line, segment)
    return message


def _collect_line_detail(line: _Line, segment: Segment) -> None:
    tag = segment.tag
    if tag == "PIA" and not line.product_code:
        line.product_code = component(segment, 1)
    elif tag == "IMD" and not line.description:
        parts = components(segment, 2)[3:5]
        line.description = " ".join(p.strip() for p in parts if p.strip())
    elif tag == "QTY" and component(segment, 0) == "47" and line.quantity is None:
        line.quantity = component(segment, 0, 1)
    elif tag == "PRI" and component(segment, 0) == "AAA" and line.unit_price is None:
        line.unit_price = component(segment, 0, 1)


def _party_name(nad: Segment) -> str:
    # C080 (structured party name) first, the free-form C058 name and address second.
    for index in (3, 2):
        name = " ".join(p.strip() for p in components(nad, index) if p.strip())
        if name:
            return name
    return ""


def to_invoice(no: int, ref: str, message: _Message) -> Invoice:
    where = f"Message {no} (réf. {ref})"
    if message.document_code is None:
        reject(f"{where} : segment BGM (type et numéro du document) absent.")
    invoice_type = DOCUMENT_TYPES.get(message.document_code)
    if invoice_type is None:
        reject(
            f"{where} : document de type « {message.document_code} » non pris en charge "
            "(BGM 380 = facture ou 381 = avoir attendu)."
        )
    if not message.number:
        reject(f"{where} : numéro du document absent (BGM).")
    where = f"Message {no} ({INVOICE_LABELS[invoice_type]} {message.number})"

    if message.date is None:
        reject(f"{where} : date du document (DTM+137) absente.")
    date = _date(where, *message.date)
    if message.supplier is None:
        reject(f"{where} : fournisseur (NAD+SU) absent.")
    supplier_id, supplier_name = message.supplier
    if not supplier_id:
        reject(f"{where} : identifiant du fournisseur absent dans NAD+SU.")
    currency = message.currency or DEFAULT_CURRENCY
    if not _CURRENCY.fullmatch(currency):
        reject(f"{where} : code devise « {currency} » invalide (CUX).")

    lines = tuple(_to_line(where, index, line) for index, line in enumerate(message.lines, 1))
    if not lines:
        reject(f"{where} : aucune ligne de facture (LIN).")
    gross_text = message.totals.get("77", message.totals.get("86"))
    if gross_text is None:
        reject(f"{where} : total TTC (MOA+77) absent.")
    gross = _amount(where, gross_text, "MOA+77")
    if "79" not in message.totals:
        reject(f"{where} : total HT des lignes (MOA+79) absent.")
    net = _amount(where, message.totals["79"], "MOA+79")
    tax = _tax(where, message, net, gross)

    lines_total = sum((line.amount for line in lines), Decimal(0))
    if abs(lines_total - net) > TOLERANCE:
        reject(
            f"{where} : la somme des lignes ({french_amount(lines_total)}) ne correspond "
            f"pas au total HT ({french_amount(net)})."
        )
    if abs(net + tax - gross) > TOLERANCE:
        reject(
            f"{where} : le total HT ({french_amount(net)}) plus la TVA ({french_amount(tax)}) "
            f"donne {french_amount(net + tax)} et non le total TTC annoncé "
            f"({french_amount(gross)})."
        )
    rates = {_amount(where, rate, "TAX") for rate in message.tax_rates}
    buyer_id, buyer_name = message.buyer or (None, None)
    return Invoice(
        supplier_id=supplier_id,
        supplier_name=supplier_name,
        buyer_id=buyer_id or None,
        buyer_name=buyer_name or None,
        number=message.number,
        type=invoice_type,
        date=date,
        currency=currency,
        lines=lines,
        net=net,
        tax=tax,
        gross=gross,
        tax_rate=rates.pop() if len(rates) == 1 else None,
    )


def _tax(where: str, message: _Message, net: Decimal, gross: Decimal) -> Decimal:
    if "176" in message.totals:
        return _amount(where, message.totals["176"], "MOA+176")
    if message.tax_amounts:
        amounts = (_amount(where, text, "MOA+124") for text in message.tax_amounts)
        return sum(amounts, Decimal(0))
    if net == gross:
        return Decimal("0.00")  # an untaxed document may omit the tax segments
    reject(f"{where} : montant de la TVA (MOA+124 ou MOA+176) absent.")


def _to_line(where: str, index: int, line: _Line) -> InvoiceLine:
    if not is_count(line.raw_number):
        reject(
            f"{where}, ligne n° {index} du message : numéro de ligne LIN "
            f"« {shown(line.raw_number)} » invalide."
        )
    number = int(line.raw_number)
    where = f"{where}, ligne {number}"
    if line.quantity is None:
        reject(f"{where} : quantité facturée (QTY+47) absente.")
    if line.unit_price is None:
        reject(f"{where} : prix unitaire net (PRI+AAA) absent.")
    if line.amount is None:
        reject(f"{where} : montant de la ligne (MOA+203) absent.")
    return InvoiceLine(
        number=number,
        product_code=line.product_code,
        description=line.description,
        quantity=_amount(where, line.quantity, "QTY+47"),
        unit_price=_amount(where, line.unit_price, "PRI+AAA"),
        amount=_amount(where, line.amount, "MOA+203"),
    )


def _amount(where: str, text: str, source: str) -> Decimal:
    if len(text) > _MAX_NUMBER_LENGTH or not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        reject(f"{where} : valeur numérique « {shown} » invalide dans {source}.")
    return Decimal(text.replace(",", "."))


def _date(where: str, value: str, date_format: str) -> dt.date:
    date_format = date_format or "102"
    if date_format not in _DATE_FORMATS:
        reject(
            f"{where} : format de date « {date_format} » non pris en charge dans DTM+137 "
            "(attendu 102 = SSAAMMJJ)."
        )
    if len(value) != _DATE_FORMATS[date_format] or not is_digits(value):
        reject(f"{where} : date du document « {value} » invalide (format {date_format}).")
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError as e:
        raise FileRejectedError(
            f"{where} : date du document « {value} » invalide (jour ou mois impossible)."
        ) from e
