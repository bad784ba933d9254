"""The interchange and its messages' envelopes: UNB … UNH … UNT … UNZ, walked segment by
segment, each message handed to invoice.py as soon as its UNT arrives, so only one
message's segments are held at a time."""

from __future__ import annotations

from pydifact.segments import Segment

from import_svc.domain.edifact.decoding import decode
from import_svc.domain.edifact.invoice import collect, message_label, to_invoice
from import_svc.domain.edifact.limits import (
    MAX_SEGMENTS,
    is_count,
    reject,
    shown,
    too_many_segments,
)
from import_svc.domain.edifact.segments import component, components, segments
from import_svc.domain.invoices import Invoice


def parse_invoic(data: bytes, *, max_segments: int = MAX_SEGMENTS) -> list[Invoice]:
    """Every invoice and credit note of an INVOIC interchange, in file order.

    Raises FileRejectedError, with a French reason, for anything that cannot be
    imported as a whole; never anything else, whatever the bytes.
    """
    text, characters = decode(data, max_segments)
    invoices: list[Invoice] = []
    control_ref: str | None = None
    message: list[Segment] | None = None
    message_no = 0
    ended = False
    for position, segment in enumerate(segments(text, characters), start=1):
        if position > max_segments:
            reject(too_many_segments(max_segments, position))
        tag = segment.tag
        if ended:
            reject(f"Des données suivent la fin d'échange UNZ (segment {tag} n° {position}).")
        if control_ref is None:
            if tag != "UNB":
                reject("Le fichier ne commence pas par l'en-tête d'échange UNB.")
            control_ref = component(segment, 4)
            continue
        if tag == "UNH":
            if message is not None:
                label = message_label(component(message[0], 0), message)
                reject(
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
            reject("Les groupes fonctionnels (UNG/UNE) ne sont pas pris en charge.")
        elif tag == "UNB":
            reject("Le fichier contient plusieurs échanges (second segment UNB).")
        else:
            reject(f"Segment {tag} (n° {position}) hors d'un message : UNH attendu.")
    if message is not None:
        label = message_label(component(message[0], 0), message)
        reject(
            f"Le fichier est tronqué : le message {message_no} ({label}) n'est pas terminé "
            "(segment UNT absent)."
        )
    if not ended:
        reject("Le fichier est tronqué : le segment de fin d'échange UNZ est absent.")
    return invoices


def _check_unz(unz: Segment, messages: int, control_ref: str) -> None:
    if messages == 0:
        reject("L'échange ne contient aucun message (aucun segment UNH).")
    announced = component(unz, 0)
    if not is_count(announced):
        reject(
            f"Le segment UNZ ne donne pas un nombre de messages valide (« {shown(announced)} »)."
        )
    if int(announced) != messages:
        reject(
            f"Le fichier est incomplet : le segment UNZ annonce {int(announced)} message(s) "
            f"mais l'échange en contient {messages}."
        )
    if component(unz, 1) != control_ref:
        reject(
            f"La référence de fin d'échange UNZ (« {component(unz, 1)} ») ne correspond pas "
            f"à celle de l'en-tête UNB (« {control_ref} »)."
        )


def _read_message(no: int, segments: list[Segment]) -> Invoice:
    unh, unt = segments[0], segments[-1]
    ref = component(unh, 0)
    where = f"Message {no} ({message_label(ref, segments)})"
    message_type = component(unh, 1, 0)
    if message_type != "INVOIC":
        reject(f"{where} : message de type « {message_type} » au lieu de INVOIC (facture).")
    if component(unh, 1, 1) != "D":
        version = ":".join(components(unh, 1)[1:3])
        reject(f"{where} : version « {version} » non prise en charge (attendu D:96A).")
    announced = component(unt, 0)
    if not is_count(announced):
        reject(
            f"{where} : le segment UNT ne donne pas un nombre de segments valide "
            f"(« {shown(announced)} »)."
        )
    if int(announced) != len(segments):
        reject(
            f"{where} : le segment UNT annonce {int(announced)} segments mais le message "
            f"en contient {len(segments)} (de UNH à UNT inclus)."
        )
    if component(unt, 1) != ref:
        reject(
            f"{where} : la référence du segment UNT (« {component(unt, 1)} ») ne "
            f"correspond pas à celle de UNH (« {ref} »)."
        )
    return to_invoice(no, ref, collect(segments[1:-1]))
