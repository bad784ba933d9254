"""The header's search box: a parcel by tracking number, or a lot by number, as typed.

Typing is forgiven the cheap way, so that every lookup stays one read by `_id` (the only
index FerretDB uses): case, spaces, dashes and look-alike letters (the tracking-number
normaliser of `domain.lots`), a missing `TS` prefix or lot dash, and, when the number as
typed is nobody's, one swap of two neighbouring symbols (the commonest slip when copying
a number by hand): fifteen more lookups, never a scan. Anything further (a wrong symbol,
one left out) finds nothing rather than a neighbour's parcel.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from colis_svc.domain import normalize_tracking_number, parse_lot_number
from colis_svc.repository import ColisRepository, Doc

_SEPARATORS = re.compile(r"[\s\-_./]")
_LOT = re.compile(r"(?P<type>[A-Z]+)(?P<digits>[0-9OIL]{11,})")
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def tracking_number(text: str) -> str | None:
    """The tracking number `text` stands for (`TS20261122-7KQ2M9XH`), or None."""
    compact = _SEPARATORS.sub("", text).upper()
    if len(compact) == 16 and compact[:1].isdigit():
        compact = "TS" + compact  # the prefix left out
    if compact.startswith("TS"):  # look-alike letters in the day too (O for 0)
        compact = "TS" + compact[2:10].translate(_DIGIT_LOOKALIKES) + compact[10:]
    return normalize_tracking_number(compact)


def swapped(numero: str) -> list[str]:
    """Every valid number one swap of neighbouring symbols away from `numero`."""
    body = numero[2:10] + numero[11:]
    out: list[str] = []
    for i in range(len(body) - 1):
        if body[i] == body[i + 1]:
            continue
        chars = list(body)
        chars[i], chars[i + 1] = chars[i + 1], chars[i]
        candidate = normalize_tracking_number("TS" + "".join(chars))
        if candidate is not None and candidate not in out:
            out.append(candidate)
    return out


def lot_number(text: str) -> str | None:
    """The lot number `text` stands for (`CARGO-20261122001`), or None."""
    match = _LOT.fullmatch(_SEPARATORS.sub("", text).upper())
    if match is None:
        return None
    numero = f"{match['type']}-{match['digits'].translate(_DIGIT_LOOKALIKES)}"
    try:
        parse_lot_number(numero)
    except ValueError:
        return None
    return numero


def colis_result(doc: Doc, exact: bool) -> dict[str, Any]:
    return {
        "type": "colis",
        "id": doc["_id"],
        "numero": doc["numero_suivi"],
        "lot_id": doc.get("lot_id"),
        "numero_lot": doc.get("numero_lot"),
        "statut": doc.get("statut"),
        "url": f"/colis/{doc['_id']}",
        "exact": exact,
    }


def lot_result(doc: Doc) -> dict[str, Any]:
    return {
        "type": "lot",
        "id": doc["_id"],
        "numero": doc["numero_lot"],
        "type_lot": doc.get("type_lot"),
        "statut": doc.get("statut"),
        "url": f"/lots/{doc['_id']}",
        "exact": True,
    }


async def search(repo: ColisRepository, text: str) -> list[dict[str, Any]]:
    """What `text` leads to: the parcel or lot it names, else the parcels one swap away
    (`exact: false`, for the person to choose); empty when nothing matches."""
    numero = lot_number(text)
    if numero is not None:
        lot = await repo.lot_by_number(numero)
        return [lot_result(lot)] if lot is not None else []
    numero = tracking_number(text)
    if numero is None:
        return []
    parcel = await repo.colis_by_number(numero)
    if parcel is not None:
        return [colis_result(parcel, exact=True)]
    near = await asyncio.gather(*(repo.colis_by_number(n) for n in swapped(numero)))
    return [colis_result(doc, exact=False) for doc in near if doc is not None]
