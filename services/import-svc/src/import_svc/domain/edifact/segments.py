"""Text to segments: pydifact's tokenizer, the per-segment limits, and the access to a
segment's components that the rest of the reader uses."""

from __future__ import annotations

from collections.abc import Iterator

from pydifact.constants import Element
from pydifact.control.characters import Characters
from pydifact.parser import Parser, TokenIterator
from pydifact.segments import Segment, SegmentFactory
from pydifact.tokenizer import Tokenizer

from import_svc.domain.edifact.limits import (
    MAX_COMPONENTS,
    MAX_ELEMENTS,
    MAX_SEGMENT_CHARS,
    reject,
    segment_too_long,
    thousands,
)
from import_svc.domain.errors import FileRejectedError


class _SegmentFactory(SegmentFactory):
    """Plain segments: pydifact's per-tag plugins and XML validation are skipped because
    they cost a quarter of the parse time and only warn about missing directories."""

    @staticmethod
    def create_segment(
        name: str,
        *elements: Element,
        validate: bool = True,
        version: str = "",
        directory: str = "",
    ) -> Segment:
        if not (len(name) == 3 and name.isascii() and name.isalpha() and name.isupper()):
            raise ValueError(f"invalid segment tag {name!r}")
        if not elements:
            raise ValueError(f"segment {name} has no data")
        return Segment(name, *elements)


def segments(text: str, characters: Characters) -> Iterator[Segment]:
    # Parser.parse() would look for a "'UNA" anywhere in the text, even inside released
    # free text, so the tokens are fed to the parser's segment builder directly.
    parser = Parser(factory=_SegmentFactory(), characters=characters)
    tokens = TokenIterator(Tokenizer().get_tokens(text, characters))
    position, last_tag = 0, ""
    while True:
        try:
            raw = next(parser.convert_tokens_to_raw_segments(tokens), None)
            if raw is None:
                return
            _check_raw_segment(position + 1, raw)
            segment = parser.convert_raw_segment_to_segment(raw, directory="")
        except FileRejectedError:
            raise
        except Exception as e:  # pydifact raises many kinds on malformed input
            where = (
                f"après le segment n° {position} ({last_tag})"
                if position
                else "dans le premier segment"
            )
            raise FileRejectedError(
                f"Syntaxe EDIFACT invalide {where} : le fichier est mal formé."
            ) from e
        position += 1
        last_tag = segment.tag
        yield segment


def _check_raw_segment(segment_no: int, raw: list[Element]) -> None:
    """Element, component and length limits of one tokenised segment.

    The length was checked on the bytes, but released terminators can hide a long
    segment from that check: counted again here, on what pydifact built.
    """
    tag = raw[0] if raw and isinstance(raw[0], str) else "?"
    if len(raw) - 1 > MAX_ELEMENTS:
        reject(
            f"Le segment n° {thousands(segment_no)} ({tag[:3]}) compte {thousands(len(raw) - 1)} "
            f"éléments de données, au-delà de la limite de {MAX_ELEMENTS} : ce n'est pas un "
            "fichier EDIFACT valide."
        )
    length = 0
    for element in raw:
        parts = [element] if isinstance(element, str) else element
        if len(parts) > MAX_COMPONENTS:
            reject(
                f"Le segment n° {thousands(segment_no)} ({tag[:3]}) a un élément de "
                f"{thousands(len(parts))} composants, au-delà de la limite de {MAX_COMPONENTS} : "
                "ce n'est pas un fichier EDIFACT valide."
            )
        length += sum(len(part) for part in parts if part) + len(parts)
    if length > MAX_SEGMENT_CHARS:
        reject(segment_too_long(segment_no, length))


def components(segment: Segment, index: int) -> list[str]:
    element = segment[index]
    if element is None:
        return []
    if isinstance(element, str):
        return [element]
    return list(element)


def component(segment: Segment, index: int, position: int = 0) -> str:
    parts = components(segment, index)
    return parts[position].strip() if position < len(parts) else ""
