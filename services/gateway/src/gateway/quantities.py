"""How a parcel's sizes and weight may be written as text, for the OpenAPI document.

The forms and the retry's corrections take them as text (multipart fields are text),
and jauge_shared.contracts.fields bounds them: positive, at most 6 decimal places. A
pattern says so to generated clients and fuzzers; pydantic's own schema for a Decimal
allows any string, "" included, which it then refuses.
"""

from __future__ import annotations

# a fraction of 1 to 6 digits that is not all zeros
_FRACTION = "|".join(f"0{{{zeros}}}[1-9][0-9]{{0,{5 - zeros}}}" for zeros in range(6))

DIMENSION_DIGITS = 4  # up to 9999.x cm as text (10 000 as a number)
WEIGHT_DIGITS = 5  # up to 99999.x kg as text


def quantity_pattern(digits: int) -> str:
    """A positive decimal written with at most `digits` digits before its point and at
    most 6 after it."""
    return rf"^\+?0*([1-9][0-9]{{0,{digits - 1}}}(\.[0-9]{{1,6}})?|0?\.({_FRACTION}))$"
