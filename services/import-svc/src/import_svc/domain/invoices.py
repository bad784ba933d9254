"""Supplier invoices and credit notes, as read from EDI files.

Amounts are kept exactly as the supplier sent them (Decimal, never float): a credit
note carries positive amounts and its `type` says it is a credit.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

InvoiceType = Literal["invoice", "credit_note"]

INVOICE_LABELS: dict[InvoiceType, str] = {"invoice": "facture", "credit_note": "avoir"}


def decimal_text(value: Decimal) -> str:
    """Plain positional notation: JSON clients must never see '1E+3'."""
    return format(value, "f")


def french_amount(value: Decimal) -> str:
    """'1 250,00': how accountants read amounts in error messages."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        # Cents are always shown; more decimals (unit prices) are kept as sent.
        value = value.quantize(Decimal("0.01"))
    sign = "-" if value < 0 else ""
    whole, _, fraction = format(abs(value), "f").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        whole, tail = whole[:-3], whole[-3:]
        groups.insert(0, tail)
    groups.insert(0, whole)
    text = " ".join(groups)
    return f"{sign}{text},{fraction}" if fraction else f"{sign}{text}"


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    number: int
    product_code: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal

    def to_document(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "product_code": self.product_code,
            "description": self.description,
            "quantity": decimal_text(self.quantity),
            "unit_price": decimal_text(self.unit_price),
            "amount": decimal_text(self.amount),
        }


@dataclass(frozen=True, slots=True)
class Invoice:
    supplier_id: str
    supplier_name: str
    buyer_id: str | None
    buyer_name: str | None
    number: str
    type: InvoiceType
    date: dt.date
    currency: str
    lines: tuple[InvoiceLine, ...]
    net: Decimal
    tax: Decimal
    gross: Decimal
    # None when the message carries no VAT rate or several different ones.
    tax_rate: Decimal | None = None

    def key(self) -> tuple[str, str]:
        """Re-importing the same supplier's number updates the invoice, never duplicates it."""
        return (self.supplier_id, self.number)

    @property
    def label(self) -> str:
        """'facture F-1024' or 'avoir A-77', as named in French messages."""
        return f"{INVOICE_LABELS[self.type]} {self.number}"

    def to_document(self) -> dict[str, Any]:
        """JSON-ready dict with the field names of the design (`GET /api/invoices`)."""
        return {
            "supplier_id": self.supplier_id,
            "supplier_name": self.supplier_name,
            "buyer_id": self.buyer_id,
            "buyer_name": self.buyer_name,
            "number": self.number,
            "type": self.type,
            "date": self.date.isoformat(),
            "currency": self.currency,
            "lines": [line.to_document() for line in self.lines],
            "net": decimal_text(self.net),
            "tax": decimal_text(self.tax),
            "gross": decimal_text(self.gross),
            "tax_rate": None if self.tax_rate is None else decimal_text(self.tax_rate),
        }
