"""Field types that bound what a message may carry: ids, file names, decimals.

Anything on the broker may have been published by anything that can reach it, so the
contracts themselves refuse what could escape a folder or grow without bound:

- an id or a file name becomes a path component (`work/<job_id>/<item>`,
  `uploads/<upload_id>/`): `..`, `/` and NUL are refused by pattern, so no message can
  move a file outside a job's folder;
- a decimal is bounded in digits and places: `9.99e-999990` is 12 characters that
  Decimal accepts and that become a megabyte of text once written out positionally,
  in every event and frame that repeats it.

The gateway uses the same types for its forms, so the rule is written once.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Final

from pydantic import AfterValidator, Field

# A job, task or lot id: letters, digits, `_ : -`, and dots between them (never two in a
# row, never first or last), so `.` and `..` cannot be one.
ID_PATTERN: Final = r"^[A-Za-z0-9_:-]+(?:\.[A-Za-z0-9_:-]+)*$"
MAX_ID_LENGTH: Final = 64
# An upload id is a name the gateway makes (uuid4().hex): no dot at all.
UPLOAD_ID_PATTERN: Final = r"^[A-Za-z0-9_-]+$"
# A file name as claimed into a job's folder: one path component, never hidden (so never
# `.` or `..`), without `/`, `\` or any control character (NUL included).
FILE_ITEM_PATTERN: Final = r"^[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*$"
MAX_FILE_ITEM_LENGTH: Final = 255

# Every decimal of a form: at most 15 significant digits, at most 6 decimal places
# (far below any scale a parcel is measured on); each field's bounds (`gt`, `le`) come on top.
MAX_DECIMAL_DIGITS: Final = 15
MAX_DECIMAL_PLACES: Final = 6

_FILE_ITEM = re.compile(FILE_ITEM_PATTERN)


def is_file_item(name: str) -> bool:
    """Whether `name` may travel as an `import.file` item (see FILE_ITEM_PATTERN)."""
    return len(name) <= MAX_FILE_ITEM_LENGTH and _FILE_ITEM.fullmatch(name) is not None


def _positional(value: Decimal) -> Decimal:
    """`1E+3` → `1000`: every event and frame carries plain notation (bounded, since the
    digits and places are)."""
    return Decimal(format(value, "f"))


JobId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN)]
UploadId = Annotated[str, Field(min_length=1, max_length=MAX_ID_LENGTH, pattern=UPLOAD_ID_PATTERN)]
FileItem = Annotated[
    str, Field(min_length=1, max_length=MAX_FILE_ITEM_LENGTH, pattern=FILE_ITEM_PATTERN)
]

BoundedDecimal = Annotated[
    Decimal,
    Field(
        max_digits=MAX_DECIMAL_DIGITS,
        decimal_places=MAX_DECIMAL_PLACES,
        allow_inf_nan=False,
    ),
    AfterValidator(_positional),
]
# parcel sizes in cm and weights in kg, as the form and the edits of a retry take them
Centimetres = Annotated[BoundedDecimal, Field(gt=0, le=10_000)]
Kilograms = Annotated[BoundedDecimal, Field(gt=0, le=100_000)]
