"""Bytes to text: the service characters (UNA), the character set (UNB), and the
limits that can be checked on the raw bytes before any tokenising."""

from __future__ import annotations

import re

from pydifact.control.characters import Characters

from import_svc.domain.edifact.limits import (
    MAX_EDI_BYTES,
    MAX_SEGMENT_CHARS,
    reject,
    segment_too_long,
    too_many_segments,
)
from import_svc.domain.errors import FileRejectedError

# Character repertoire of UNB 0001 → codec. Levels A and B are 7-bit in theory only.
_ENCODINGS = {
    "UNOA": "latin-1",
    "UNOB": "latin-1",
    "UNOC": "latin-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}
_DEFAULT_SERVICE_CHARS = ":+.? '"
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLANK = re.compile(rb"\s*")
# A release character of " " in UNA means "no release character"; NUL is refused in the
# file beforehand, so it can stand for one that never matches.
_NO_RELEASE = "\x00"


def decode(data: bytes, max_segments: int) -> tuple[str, Characters]:
    # Positions are kept as offsets into `data`: slicing a large file would copy it.
    if _BLANK.fullmatch(data):
        reject("Le fichier est vide.")
    if b"\x00" in data:
        reject(
            "Le fichier contient des octets nuls : c'est un fichier binaire (ou UTF-16), "
            "pas un fichier texte EDIFACT."
        )
    start = _skip_blank(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
    service = _DEFAULT_SERVICE_CHARS
    if data.startswith(b"UNA", start):
        if len(data) < start + 9:
            reject("Le fichier est tronqué : le segment UNA est incomplet.")
        service = data[start + 3 : start + 9].decode("latin-1")
        start = _skip_blank(data, start + 9)
    characters = _characters(service)
    syntax = _syntax_identifier(data[start : start + 64], characters)

    # Counting terminators is a C-speed lower bound of the segment count: an oversized
    # file is refused before pydifact's per-character tokenizer ever sees it.
    terminator = characters.segment_terminator.encode("latin-1")
    release = characters.escape_character.encode("latin-1")
    at_least = data.count(terminator, start) - data.count(release + terminator, start)
    if at_least > max_segments:
        reject(too_many_segments(max_segments, at_least))
    if len(data) > MAX_EDI_BYTES:
        reject(
            f"Le fichier EDI fait {_megabytes(len(data))}, au-delà de la limite de "
            f"{_megabytes(MAX_EDI_BYTES)} : il n'est pas importé (découpez-le en plusieurs "
            "fichiers)."
        )
    _check_segment_lengths(data, start, terminator)

    # Control bytes are single bytes in every accepted charset, so the check runs on the
    # raw file and reports the byte offset an editor shows.
    separators = {
        characters.component_separator.encode("latin-1"),
        characters.data_separator.encode("latin-1"),
        terminator,
    }
    for match in _CONTROL_BYTES.finditer(data, start):
        if match.group() not in separators:
            reject(
                f"Le fichier contient un caractère de contrôle interdit (code "
                f"0x{match.group()[0]:02X}, octet n° {match.start() + 1}) : "
                "ce n'est pas un fichier texte EDIFACT."
            )
    text = _decode_text(data, start, syntax)
    if not _ends_with_terminator(text.rstrip(" \r\n"), characters):
        reject(
            "Le fichier est tronqué : il ne se termine pas par un segment complet "
            f"(terminateur « {characters.segment_terminator} » final absent)."
        )
    return text, characters


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} Mo".replace(".", ",")


def _check_segment_lengths(data: bytes, start: int, terminator: bytes) -> None:
    """Refuse a segment longer than MAX_SEGMENT_CHARS before any tokenising.

    The distance between two terminator bytes is a lower bound of a segment's length
    (a released terminator only makes the segment longer), found at C speed by `find`:
    the segment count is already bounded, so this loop is too.
    """
    previous, segment_no = start, 0
    while previous < len(data):
        end = data.find(terminator, previous)
        if end < 0:
            end = len(data)
        segment_no += 1
        if end - previous > MAX_SEGMENT_CHARS:
            reject(segment_too_long(segment_no, end - previous))
        previous = end + len(terminator)


def _skip_blank(data: bytes, position: int) -> int:
    match = _BLANK.match(data, position)
    return match.end() if match else position


def _characters(service: str) -> Characters:
    characters = Characters.from_str(service)
    separators = [
        characters.component_separator,
        characters.data_separator,
        characters.segment_terminator,
    ]
    if characters.escape_character == " ":
        characters.escape_character = _NO_RELEASE
    else:
        separators.append(characters.escape_character)
    if len(set(separators)) != len(separators) or any(c.isalnum() for c in separators):
        reject(f"Le segment UNA définit des séparateurs invalides (« {service} »).")
    return characters


def _syntax_identifier(head: bytes, characters: Characters) -> str:
    text = head.decode("latin-1")
    if not text.startswith("UNB" + characters.data_separator):
        reject(
            "Le fichier ne commence pas par l'en-tête d'échange UNB : "
            "ce n'est pas un fichier EDIFACT."
        )
    syntax = text[4:].split(characters.component_separator, 1)[0]
    syntax = syntax.split(characters.data_separator, 1)[0]
    if syntax not in _ENCODINGS:
        reject(
            f"Jeu de caractères « {syntax[:8]} » inconnu dans l'en-tête UNB "
            "(attendu UNOA, UNOB, UNOC, UNOD, UNOE, UNOF, UNOW ou UNOY)."
        )
    return syntax


def _decode_text(data: bytes, start: int, syntax: str) -> str:
    codec = _ENCODINGS[syntax]
    body = data[start:]
    if codec != "utf-8" and not body.isascii():
        # Many senders write UTF-8 whatever UNB declares, and Latin-1 text that happens
        # to be valid UTF-8 is practically unheard of: prefer UTF-8 when it decodes.
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            pass
    try:
        return body.decode(codec)
    except UnicodeDecodeError as e:
        charset = "UTF-8" if codec == "utf-8" else codec.upper()
        raise FileRejectedError(
            f"Le fichier n'est pas lisible dans le jeu de caractères annoncé par UNB "
            f"({syntax}, {charset}) : octet invalide (octet n° {start + e.start + 1})."
        ) from e


def _ends_with_terminator(text: str, characters: Characters) -> bool:
    if not text.endswith(characters.segment_terminator):
        return False
    body = text[: -len(characters.segment_terminator)]
    releases = len(body) - len(body.rstrip(characters.escape_character))
    return releases % 2 == 0  # an odd count means the last terminator is released
