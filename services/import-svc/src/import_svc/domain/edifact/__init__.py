"""UN/EDIFACT INVOIC (D.96A) supplier invoices: bytes in, invoices out, or a French reason.

pydifact does the tokenising; this package decides what a supplier file means and refuses,
with a sentence an accountant can act on, any file it cannot read with certainty. One bad
message rejects the whole file: half an interchange in the books is worse than none.

Its rooms, in reading order: limits.py (the bounds on a hostile file and their reasons),
decoding.py (bytes to text), segments.py (text to segments), interchange.py (the envelope,
walked segment by segment, one message held at a time) and invoice.py (a message's
segments to an invoice, with the checks on its totals).
"""

from import_svc.domain.edifact.interchange import parse_invoic
from import_svc.domain.edifact.limits import (
    MAX_COMPONENTS,
    MAX_EDI_BYTES,
    MAX_ELEMENTS,
    MAX_SEGMENT_CHARS,
    MAX_SEGMENTS,
)

__all__ = [
    "MAX_COMPONENTS",
    "MAX_EDI_BYTES",
    "MAX_ELEMENTS",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_CHARS",
    "parse_invoic",
]
