"""UN/EDIFACT INVOIC (D.96A) supplier invoices: bytes in, invoices out, or a French reason.

pydifact does the tokenising; this module decides what a supplier file means and refuses,
with a sentence an accountant can act on, any file it cannot read with certainty. One bad
message rejects the whole file: half an interchange in the books is worse than none.

The file is walked segment by segment and each message is interpreted as soon as its
`UNT` arrives, so only one message's segments are held at a time.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NoReturn

from pydifact.constants import Element
from pydifact.control.characters import Characters
from pydifact.parser import Parser, TokenIterator
from pydifact.segments import Segment, SegmentFactory
from pydifact.tokenizer import Tokenizer

from import_svc.domain.errors import FileRejectedError
from import_svc.domain.invoices import (
    INVOICE_LABELS,
    Invoice,
    InvoiceLine,
    InvoiceType,
    french_amount,
)

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
# Suppliers round each line and the tax separately: one cent of drift is not an error.
TOLERANCE = Decimal("0.01")
DEFAULT_CURRENCY = "EUR"

DOCUMENT_TYPES: dict[str, InvoiceType] = {"380": "invoice", "381": "credit_note"}

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
# ISO 9735 accepts both the comma and the full stop as decimal mark, whatever UNA says.
_NUMBER = re.compile(r"-?(?:\d+(?:[.,]\d*)?|[.,]\d+)", re.ASCII)
_MAX_NUMBER_LENGTH = 35  # an..35 / n..35: the longest numeric data element of D.96A
_CURRENCY = re.compile(r"[A-Z]{3}")
_DATE_FORMATS = {"102": 8, "203": 12, "204": 14}  # CCYYMMDD, +HHMM, +HHMMSS
# A release character of " " in UNA means "no release character"; NUL is refused in the
# file beforehand, so it can stand for one that never matches.
_NO_RELEASE = "\x00"


def _reject(reason: str) -> NoReturn:
    raise FileRejectedError(reason)


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_count(text: str) -> bool:
    """A count or a line number: digits only, at most n..6 of them."""
    return _is_digits(text) and len(text) <= _MAX_COUNT_DIGITS


def _shown(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({_count(len(text))} caractères)"


def _count(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def parse_invoic(data: bytes, *, max_segments: int = MAX_SEGMENTS) -> list[Invoice]:
    """Every invoice and credit note of an INVOIC interchange, in file order.

    Raises FileRejectedError, with a French reason, for anything that cannot be
    imported as a whole; never anything else, whatever the bytes.
    """
    text, characters = _decode(data, max_segments)
    invoices: list[Invoice] = []
    control_ref: str | None = None
    message: list[Segment] | None = None
    message_no = 0
    ended = False
    for position, segment in enumerate(_segments(text, characters), start=1):
        if position > max_segments:
            _reject(_too_many_segments(max_segments, position))
        tag = segment.tag
        if ended:
            _reject(f"Des données suivent la fin d'échange UNZ (segment {tag} n° {position}).")
        if control_ref is None:
            if tag != "UNB":
                _reject("Le fichier ne commence pas par l'en-tête d'échange UNB.")
            control_ref = _component(segment, 4)
            continue
        if tag == "UNH":
            if message is not None:
                label = _message_label(_component(message[0], 0), message)
                _reject(
                    f"Message {message_no} ({label}) : segment de fin de message UNT absent "
                    "avant le message suivant."
                )
            message_no += 1
            message = [segment]
        elif message is not None:
            message.append(segment)
            if tag == "UNT":
                invoices.append(_read_message(message_no, message))
                message = None
        elif tag == "UNZ":
            _check_unz(segment, message_no, control_ref)
            ended = True
        elif tag in ("UNG", "UNE"):
            _reject("Les groupes fonctionnels (UNG/UNE) ne sont pas pris en charge.")
        elif tag == "UNB":
            _reject("Le fichier contient plusieurs échanges (second segment UNB).")
        else:
            _reject(f"Segment {tag} (n° {position}) hors d'un message : UNH attendu.")
    if message is not None:
        label = _message_label(_component(message[0], 0), message)
        _reject(
            f"Le fichier est tronqué : le message {message_no} ({label}) n'est pas terminé "
            "(segment UNT absent)."
        )
    if not ended:
        _reject("Le fichier est tronqué : le segment de fin d'échange UNZ est absent.")
    return invoices


def _too_many_segments(max_segments: int, at_least: int) -> str:
    return (
        f"Le fichier compte au moins {_count(at_least)} segments, au-delà de la limite de "
        f"{_count(max_segments)} : il n'est pas importé (découpez-le en plusieurs fichiers)."
    )


def _check_unz(unz: Segment, messages: int, control_ref: str) -> None:
    if messages == 0:
        _reject("L'échange ne contient aucun message (aucun segment UNH).")
    announced = _component(unz, 0)
    if not _is_count(announced):
        _reject(
            f"Le segment UNZ ne donne pas un nombre de messages valide (« {_shown(announced)} »)."
        )
    if int(announced) != messages:
        _reject(
            f"Le fichier est incomplet : le segment UNZ annonce {int(announced)} message(s) "
            f"mais l'échange en contient {messages}."
        )
    if _component(unz, 1) != control_ref:
        _reject(
            f"La référence de fin d'échange UNZ (« {_component(unz, 1)} ») ne correspond pas "
            f"à celle de l'en-tête UNB (« {control_ref} »)."
        )


# --- bytes to text -----------------------------------------------------------------------


def _decode(data: bytes, max_segments: int) -> tuple[str, Characters]:
    # Positions are kept as offsets into `data`: slicing a large file would copy it.
    if _BLANK.fullmatch(data):
        _reject("Le fichier est vide.")
    if b"\x00" in data:
        _reject(
            "Le fichier contient des octets nuls : c'est un fichier binaire (ou UTF-16), "
            "pas un fichier texte EDIFACT."
        )
    start = _skip_blank(data, 3 if data.startswith(b"\xef\xbb\xbf") else 0)
    service = _DEFAULT_SERVICE_CHARS
    if data.startswith(b"UNA", start):
        if len(data) < start + 9:
            _reject("Le fichier est tronqué : le segment UNA est incomplet.")
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
        _reject(_too_many_segments(max_segments, at_least))
    if len(data) > MAX_EDI_BYTES:
        _reject(
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
            _reject(
                f"Le fichier contient un caractère de contrôle interdit (code "
                f"0x{match.group()[0]:02X}, octet n° {match.start() + 1}) : "
                "ce n'est pas un fichier texte EDIFACT."
            )
    text = _decode_text(data, start, syntax)
    if not _ends_with_terminator(text.rstrip(" \r\n"), characters):
        _reject(
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
            _reject(_segment_too_long(segment_no, end - previous))
        previous = end + len(terminator)


def _segment_too_long(segment_no: int, length: int) -> str:
    return (
        f"Le segment n° {_count(segment_no)} fait au moins {_count(length)} caractères, "
        f"au-delà de la limite de {_count(MAX_SEGMENT_CHARS)} : ce n'est pas un fichier "
        "EDIFACT valide."
    )


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
        _reject(f"Le segment UNA définit des séparateurs invalides (« {service} »).")
    return characters


def _syntax_identifier(head: bytes, characters: Characters) -> str:
    text = head.decode("latin-1")
    if not text.startswith("UNB" + characters.data_separator):
        _reject(
            "Le fichier ne commence pas par l'en-tête d'échange UNB : "
            "ce n'est pas un fichier EDIFACT."
        )
    syntax = text[4:].split(characters.component_separator, 1)[0]
    syntax = syntax.split(characters.data_separator, 1)[0]
    if syntax not in _ENCODINGS:
        _reject(
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


# --- text to segments --------------------------------------------------------------------


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


def _segments(text: str, characters: Characters) -> Iterator[Segment]:
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
        _reject(
            f"Le segment n° {_count(segment_no)} ({tag[:3]}) compte {_count(len(raw) - 1)} "
            f"éléments de données, au-delà de la limite de {MAX_ELEMENTS} : ce n'est pas un "
            "fichier EDIFACT valide."
        )
    length = 0
    for element in raw:
        parts = [element] if isinstance(element, str) else element
        if len(parts) > MAX_COMPONENTS:
            _reject(
                f"Le segment n° {_count(segment_no)} ({tag[:3]}) a un élément de "
                f"{_count(len(parts))} composants, au-delà de la limite de {MAX_COMPONENTS} : "
                "ce n'est pas un fichier EDIFACT valide."
            )
        length += sum(len(part) for part in parts if part) + len(parts)
    if length > MAX_SEGMENT_CHARS:
        _reject(_segment_too_long(segment_no, length))


def _components(segment: Segment, index: int) -> list[str]:
    element = segment[index]
    if element is None:
        return []
    if isinstance(element, str):
        return [element]
    return list(element)


def _component(segment: Segment, index: int, component: int = 0) -> str:
    components = _components(segment, index)
    return components[component].strip() if component < len(components) else ""


# --- segments to an invoice --------------------------------------------------------------


@dataclass
class _Line:
    raw_number: str
    product_code: str
    description: str = ""
    quantity: str | None = None
    unit_price: str | None = None
    amount: str | None = None


@dataclass
class _Message:
    """What one message says, before it is checked."""

    document_code: str | None = None
    number: str = ""
    date: tuple[str, str] | None = None
    supplier: tuple[str, str] | None = None
    buyer: tuple[str, str] | None = None
    currency: str | None = None
    lines: list[_Line] = field(default_factory=list)
    totals: dict[str, str] = field(default_factory=dict)
    tax_amounts: list[str] = field(default_factory=list)
    tax_rates: list[str] = field(default_factory=list)


def _read_message(no: int, segments: list[Segment]) -> Invoice:
    unh, unt = segments[0], segments[-1]
    ref = _component(unh, 0)
    where = f"Message {no} ({_message_label(ref, segments)})"
    message_type = _component(unh, 1, 0)
    if message_type != "INVOIC":
        _reject(f"{where} : message de type « {message_type} » au lieu de INVOIC (facture).")
    if _component(unh, 1, 1) != "D":
        version = ":".join(_components(unh, 1)[1:3])
        _reject(f"{where} : version « {version} » non prise en charge (attendu D:96A).")
    announced = _component(unt, 0)
    if not _is_count(announced):
        _reject(
            f"{where} : le segment UNT ne donne pas un nombre de segments valide "
            f"(« {_shown(announced)} »)."
        )
    if int(announced) != len(segments):
        _reject(
            f"{where} : le segment UNT annonce {int(announced)} segments mais le message "
            f"en contient {len(segments)} (de UNH à UNT inclus)."
        )
    if _component(unt, 1) != ref:
        _reject(
            f"{where} : la référence du segment UNT (« {_component(unt, 1)} ») ne "
            f"correspond pas à celle de UNH (« {ref} »)."
        )
    return _to_invoice(no, ref, _collect(segments[1:-1]))


def _message_label(ref: str, segments: list[Segment]) -> str:
    """'facture F-1024' when BGM says so: what an accountant can look up; else the ref."""
    for segment in segments:
        if segment.tag == "BGM":
            invoice_type = DOCUMENT_TYPES.get(_component(segment, 0))
            number = _component(segment, 1)
            if invoice_type is not None and number:
                return f"{INVOICE_LABELS[invoice_type]} {number}"
            break
    return f"réf. {ref}"


def _collect(segments: list[Segment]) -> _Message:
    message = _Message()
    line: _Line | None = None
    summary = False  # after UNS: totals, never line data
    for segment in segments:
        tag = segment.tag
        if tag == "BGM" and message.document_code is None:
            message.document_code = _component(segment, 0)
            message.number = _component(segment, 1)
        elif tag == "DTM" and line is None and not summary:
            if _component(segment, 0) == "137" and message.date is None:
                message.date = (_component(segment, 0, 1), _component(segment, 0, 2))
        elif tag == "NAD":
            party = (_component(segment, 1), _party_name(segment))
            if _component(segment, 0) == "SU" and message.supplier is None:
                message.supplier = party
            elif _component(segment, 0) == "BY" and message.buyer is None:
                message.buyer = party
        elif tag == "CUX" and message.currency is None:
            message.currency = _component(segment, 0, 1)
        elif tag == "LIN":
            line = _Line(_component(segment, 0), _component(segment, 2))
            message.lines.append(line)
        elif tag == "UNS":
            line, summary = None, True
        elif tag == "TAX":
            if _component(segment, 0) == "7" and _component(segment, 1) == "VAT":
                rate = _component(segment, 4, 3)
                if rate:
                    message.tax_rates.append(rate)
        elif tag == "MOA":
            qualifier, amount = _component(segment, 0), _component(segment, 0, 1)
            if qualifier == "203" and line is not None:
                line.amount = line.amount or amount
            elif qualifier in ("77", "79", "86", "176"):
                message.totals.setdefault(qualifier, amount)
            elif qualifier == "124" and line is None:
                # Per-line MOA+124 is the line's own tax, already within the message's.
                message.tax_amounts.append(amount)
        elif line is not None:
            _collect_line_detail(line, segment)
    return message


def _collect_line_detail(line: _Line, segment: Segment) -> None:
    tag = segment.tag
    if tag == "PIA" and not line.product_code:
        line.product_code = _component(segment, 1)
    elif tag == "IMD" and not line.description:
        parts = _components(segment, 2)[3:5]
        line.description = " ".join(p.strip() for p in parts if p.strip())
    elif tag == "QTY" and _component(segment, 0) == "47" and line.quantity is None:
        line.quantity = _component(segment, 0, 1)
    elif tag == "PRI" and _component(segment, 0) == "AAA" and line.unit_price is None:
        line.unit_price = _component(segment, 0, 1)


def _party_name(nad: Segment) -> str:
    # C080 (structured party name) first, the free-form C058 name and address second.
    for index in (3, 2):
        name = " ".join(p.strip() for p in _components(nad, index) if p.strip())
        if name:
            return name
    return ""


def _to_invoice(no: int, ref: str, message: _Message) -> Invoice:
    where = f"Message {no} (réf. {ref})"
    if message.document_code is None:
        _reject(f"{where} : segment BGM (type et numéro du document) absent.")
    invoice_type = DOCUMENT_TYPES.get(message.document_code)
    if invoice_type is None:
        _reject(
            f"{where} : document de type « {message.document_code} » non pris en charge "
            "(BGM 380 = facture ou 381 = avoir attendu)."
        )
    if not message.number:
        _reject(f"{where} : numéro du document absent (BGM).")
    where = f"Message {no} ({INVOICE_LABELS[invoice_type]} {message.number})"

    if message.date is None:
        _reject(f"{where} : date du document (DTM+137) absente.")
    date = _date(where, *message.date)
    if message.supplier is None:
        _reject(f"{where} : fournisseur (NAD+SU) absent.")
    supplier_id, supplier_name = message.supplier
    if not supplier_id:
        _reject(f"{where} : identifiant du fournisseur absent dans NAD+SU.")
    currency = message.currency or DEFAULT_CURRENCY
    if not _CURRENCY.fullmatch(currency):
        _reject(f"{where} : code devise « {currency} » invalide (CUX).")

    lines = tuple(_to_line(where, index, line) for index, line in enumerate(message.lines, 1))
    if not lines:
        _reject(f"{where} : aucune ligne de facture (LIN).")
    gross_text = message.totals.get("77", message.totals.get("86"))
    if gross_text is None:
        _reject(f"{where} : total TTC (MOA+77) absent.")
    gross = _amount(where, gross_text, "MOA+77")
    if "79" not in message.totals:
        _reject(f"{where} : total HT des lignes (MOA+79) absent.")
    net = _amount(where, message.totals["79"], "MOA+79")
    tax = _tax(where, message, net, gross)

    lines_total = sum((line.amount for line in lines), Decimal(0))
    if abs(lines_total - net) > TOLERANCE:
        _reject(
            f"{where} : la somme des lignes ({french_amount(lines_total)}) ne correspond "
            f"pas au total HT ({french_amount(net)})."
        )
    if abs(net + tax - gross) > TOLERANCE:
        _reject(
            f"{where} : le total HT ({french_amount(net)}) plus la TVA ({french_amount(tax)}) "
            f"donne {french_amount(net + tax)} et non le total TTC annoncé "
            f"({french_amount(gross)})."
        )
    rates = {_amount(where, rate, "TAX") for rate in message.tax_rates}
    buyer_id, buyer_name = message.buyer or (None, None)
    return Invoice(
        supplier_id=supplier_id,
        supplier_name=supplier_name,
        buyer_id=buyer_id or None,
        buyer_name=buyer_name or None,
        number=message.number,
        type=invoice_type,
        date=date,
        currency=currency,
        lines=lines,
        net=net,
        tax=tax,
        gross=gross,
        tax_rate=rates.pop() if len(rates) == 1 else None,
    )


def _tax(where: str, message: _Message, net: Decimal, gross: Decimal) -> Decimal:
    if "176" in message.totals:
        return _amount(where, message.totals["176"], "MOA+176")
    if message.tax_amounts:
        amounts = (_amount(where, text, "MOA+124") for text in message.tax_amounts)
        return sum(amounts, Decimal(0))
    if net == gross:
        return Decimal("0.00")  # an untaxed document may omit the tax segments
    _reject(f"{where} : montant de la TVA (MOA+124 ou MOA+176) absent.")


def _to_line(where: str, index: int, line: _Line) -> InvoiceLine:
    if not _is_count(line.raw_number):
        _reject(
            f"{where}, ligne n° {index} du message : numéro de ligne LIN "
            f"« {_shown(line.raw_number)} » invalide."
        )
    number = int(line.raw_number)
    where = f"{where}, ligne {number}"
    if line.quantity is None:
        _reject(f"{where} : quantité facturée (QTY+47) absente.")
    if line.unit_price is None:
        _reject(f"{where} : prix unitaire net (PRI+AAA) absent.")
    if line.amount is None:
        _reject(f"{where} : montant de la ligne (MOA+203) absent.")
    return InvoiceLine(
        number=number,
        product_code=line.product_code,
        description=line.description,
        quantity=_amount(where, line.quantity, "QTY+47"),
        unit_price=_amount(where, line.unit_price, "PRI+AAA"),
        amount=_amount(where, line.amount, "MOA+203"),
    )


def _amount(where: str, text: str, source: str) -> Decimal:
    if len(text) > _MAX_NUMBER_LENGTH or not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        _reject(f"{where} : valeur numérique « {shown} » invalide dans {source}.")
    return Decimal(text.replace(",", "."))


def _date(where: str, value: str, date_format: str) -> dt.date:
    date_format = date_format or "102"
    if date_format not in _DATE_FORMATS:
        _reject(
            f"{where} : format de date « {date_format} » non pris en charge dans DTM+137 "
            "(attendu 102 = SSAAMMJJ)."
        )
    if len(value) != _DATE_FORMATS[date_format] or not _is_digits(value):
        _reject(f"{where} : date du document « {value} » invalide (format {date_format}).")
    try:
        return dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError as e:
        raise FileRejectedError(
            f"{where} : date du document « {value} » invalide (jour ou mois impossible)."
        ) from e
