"""Lots (a shipment grouping parcels of one transport type) and parcel tracking numbers."""

from __future__ import annotations

import random
import re
import secrets
from datetime import date, datetime
from enum import StrEnum
from typing import TypeAlias

from jauge_shared.contracts import TransportType

from .errors import PermanentTaskError

# A lot's type is its main transport (the seed's `type_lot`); the values are the same.
LotType: TypeAlias = TransportType
LOT_TYPES: tuple[LotType, ...] = tuple(TransportType)


class LotStatut(StrEnum):
    OUVERT = "ouvert"
    FERME = "ferme"
    EXPEDIE = "expedie"


LOT_STATUT_LABELS: dict[LotStatut, str] = {
    LotStatut.OUVERT: "ouvert",
    LotStatut.FERME: "fermé",
    LotStatut.EXPEDIE: "expédié",
}

# A lot only moves forward: it is filled, closed, then shipped.
_LOT_TRANSITIONS: dict[LotStatut, frozenset[LotStatut]] = {
    LotStatut.OUVERT: frozenset({LotStatut.FERME}),
    LotStatut.FERME: frozenset({LotStatut.EXPEDIE}),
    LotStatut.EXPEDIE: frozenset(),
}


def can_change_lot_statut(current: LotStatut | str, target: LotStatut | str) -> bool:
    try:
        return LotStatut(target) in _LOT_TRANSITIONS[LotStatut(current)]
    except ValueError:
        return False


def counter_key(type_lot: LotType | str, day: date) -> str:
    """The (type, day) sequence a lot number belongs to. The repository does not keep a
    `$inc` counter here: FerretDB does not apply `$inc` atomically (docs/decisions.md).
    It reserves each number by inserting it as a unique `_id`, trying the next candidate
    when another replica got there first, so two lots never share a number."""
    return f"lot:{LotType(type_lot).value}:{day:%Y%m%d}"


def format_lot_number(type_lot: LotType | str, day: date, counter: int) -> str:
    """`CARGO-20261122001`. Past 999 the counter just gets longer (`…1000`): the date part
    has a fixed width, so the number still maps back to exactly one (type, day, counter)."""
    if counter < 1:
        raise ValueError(f"lot counter starts at 1, got {counter}")
    return f"{LotType(type_lot).value.upper()}-{day:%Y%m%d}{counter:03d}"


_LOT_NUMBER = re.compile(
    r"(?P<type>[A-Z]+)-(?P<day>\d{8})(?P<counter>00[1-9]|0[1-9]\d|[1-9]\d{2,})"
)


def parse_lot_number(numero_lot: str) -> tuple[LotType, date, int]:
    """The inverse of `format_lot_number`; ValueError if it is not one of ours."""
    match = _LOT_NUMBER.fullmatch(numero_lot)
    if match is None:
        raise ValueError(f"not a lot number: {numero_lot!r}")
    type_lot = LotType(match["type"].lower())
    day = datetime.strptime(match["day"], "%Y%m%d").date()
    return type_lot, day, int(match["counter"])


def parcel_refusal(
    lot_statut: LotStatut | str, numero_lot: str, *, update: bool = False
) -> str | None:
    """Why no parcel may be added to (or, `update`, changed in) this lot, in French; None
    when it may. Only an open lot takes new parcels or parcel edits: once closed, its
    contents are what was weighed and priced for the shipment (seed: « Impossible
    d'ajouter des colis à un lot fermé »)."""
    name = f"Le lot {numero_lot}" if numero_lot else "Le lot"
    what = "le colis ne peut plus être modifié" if update else "impossible d'y ajouter un colis"
    try:
        statut = LotStatut(lot_statut)
    except ValueError:
        return f"{name} a un statut inconnu ({lot_statut!r})."
    if statut is LotStatut.FERME:
        return f"{name} est fermé : {what}."
    if statut is LotStatut.EXPEDIE:
        return f"{name} est déjà expédié : {what}."
    return None


def ensure_open(
    lot_statut: LotStatut | str, numero_lot: str | None = None, *, update: bool = False
) -> None:
    """`parcel_refusal` as a permanent task error: retrying will not reopen the lot."""
    refusal = parcel_refusal(lot_statut, numero_lot or "", update=update)
    if refusal is not None:
        raise PermanentTaskError(refusal)


def ship_refusal(lot_statut: LotStatut | str, numero_lot: str) -> str | None:
    """Why the lot cannot be shipped, in French; None when it can (a closed lot only: its
    parcels are final). Shipping a shipped lot is not refused: it changes nothing."""
    if lot_statut in (LotStatut.FERME.value, LotStatut.EXPEDIE.value):
        return None
    if lot_statut == LotStatut.OUVERT.value:
        return f"Le lot {numero_lot} est encore ouvert : fermez-le avant de l'expédier."
    return f"Le lot {numero_lot} ne peut pas être expédié (statut {lot_statut!r})."


# Crockford's base32: digits and capitals without I, L, O and U, so a number read out over
# the phone or copied by hand cannot mix up 1/I/L or 0/O.
TRACKING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRACKING_SUFFIX_LENGTH = 8
_SYSTEM_RANDOM = secrets.SystemRandom()


def make_tracking_number(day: date, *, rng: random.Random | None = None) -> str:
    """`TS20261122-7KQ2M9XH`: a prefix, the day, 8 random base32 symbols (40 bits).

    Random rather than sequential so numbers cannot be guessed to look up other clients'
    parcels, and drawn from the OS's CSPRNG for the same reason (`rng` is for tests).
    With 2⁴⁰ ≈ 1.1·10¹² suffixes a day, n parcels on one day collide with probability
    about n²/2⁴¹: 4.5·10⁻⁷ for 1,000 a day, 4.5·10⁻⁵ for 10,000. The repository's unique
    index is what finally guarantees uniqueness; on a duplicate it draws again.
    """
    source = rng if rng is not None else _SYSTEM_RANDOM
    suffix = "".join(source.choice(TRACKING_ALPHABET) for _ in range(TRACKING_SUFFIX_LENGTH))
    return f"TS{day:%Y%m%d}-{suffix}"


_TRACKING_NUMBER = re.compile(rf"TS\d{{8}}-[{TRACKING_ALPHABET}]{{{TRACKING_SUFFIX_LENGTH}}}")
# What people type instead of the real symbol (Crockford's decoding rules).
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normalize_tracking_number(text: str) -> str | None:
    """What a client or agent typed, as stored: case, spaces, dashes and look-alike
    letters forgiven; None if it cannot be one of our tracking numbers."""
    compact = re.sub(r"[\s\-]", "", text).upper()
    if len(compact) != 2 + 8 + TRACKING_SUFFIX_LENGTH or not compact.startswith("TS"):
        return None
    day, suffix = compact[2:10], compact[10:].translate(_LOOKALIKES)
    candidate = f"TS{day}-{suffix}"
    return candidate if _TRACKING_NUMBER.fullmatch(candidate) else None
