"""The import domain: supplier files in, plain Python objects or a French reason out.

Pure on purpose (no broker, no database, no asyncio): the service calls it from a worker
thread, and tests call it directly.
"""

from import_svc.domain.bbgr import BBGR_COLUMNS, BbgrFile, BbgrRow, Column, read_bbgr
from import_svc.domain.edifact import MAX_SEGMENTS, parse_invoic
from import_svc.domain.errors import FileRejectedError, ImportDomainError
from import_svc.domain.invoices import Invoice, InvoiceLine, InvoiceType

__all__ = [
    "BBGR_COLUMNS",
    "MAX_SEGMENTS",
    "BbgrFile",
    "BbgrRow",
    "Column",
    "FileRejectedError",
    "ImportDomainError",
    "Invoice",
    "InvoiceLine",
    "InvoiceType",
    "parse_invoic",
    "read_bbgr",
]
