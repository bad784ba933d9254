"""The limits that keep one hostile EDIFACT file's time and memory bounded, and the
French sentences that refuse a file (docs/imports.md, "Limits")."""

from __future__ import annotations

from typing import NoReturn

from import_svc.domain.errors import FileRejectedError

MAX_SEGMENTS = 200_000
# Limits that keep one hostile file's time and memory bounded (docs/imports.md, "Limits").
# pydifact tokenises in pure Python (about 1.7 µs a character): 16 MiB is about 30 s of
# work at worst, and twice the largest real interchange (200,000 segments of ~40 bytes).
MAX_EDI_BYTES = 16 * 1024 * 1024
# D.96A's longest segment (FTX: five an..512 texts) is under 3,000 characters.
MAX_SEGMENT_CHARS = 8 * 1024
# ISO 9735 numbers the data elements of a segment and the components of an element on
# two digits: no directory segment has more than 99 of either.
MAX_ELEMENTS = 99
MAX_COMPONENTS = 99
# n..6: message counts (UNZ 0036), segment counts (UNT 0074) and line numbers (LIN 1082).
# Also what keeps int() away from Python's 4,300-digit limit, whose ValueError once
# escaped the parser and hung the whole import queue.
_MAX_COUNT_DIGITS = 6


def reject(reason: str) -> NoReturn:
    raise FileRejectedError(reason)


def is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def is_count(text: str) -> bool:
    """A count or a line number: digits only, at most n..6 of them."""
    return is_digits(text) and len(text) <= _MAX_COUNT_DIGITS


def shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({thousands(len(text))} caractères)"


def thousands(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def too_many_segments(max_segments: int, at_least: int) -> str:
    return (
        f"Le fichier compte au moins {thousands(at_least)} segments, au-delà de la limite de "
        f"{thousands(max_segments)} : il n'est pas importé (découpez-le en plusieurs fichiers)."
    )


def segment_too_long(segment_no: int, length: int) -> str:
    return (
        f"Le segment n° {thousands(segment_no)} fait au moins {thousands(length)} caractères, "
        f"au-delà de la limite de {thousands(MAX_SEGMENT_CHARS)} : ce n'est pas un fichier "
        "EDIFACT valide."
    )
