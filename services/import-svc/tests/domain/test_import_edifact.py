"""parse_invoic: what a supplier's INVOIC interchange means, and every way it is refused."""

from __future__ import annotations

import datetime as dt
import re
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from import_svc.domain import FileRejectedError, Invoice, InvoiceLine, parse_invoic
from jauge_testkit.import_files import (
    InvoiceSpec,
    LineSpec,
    make_interchange,
    sample_invoice,
)

# Written by hand, not by the fixtures, so the parser is checked against an independent
# reading of the standard: two invoices and a credit note, Latin-1, released characters,
# tax given per rate (MOA+124) in one message and as a total (MOA+176) in the others.
HANDWRITTEN = """UNA:+.? '
UNB+UNOC:3+3012345000004:14+3098765000001:14+240305:0915+INT42'
UNH+M1+INVOIC:D:96A:UN:EAN008'
BGM+380+F-1024+9'
DTM+137:20240304:102'
DTM+35:20240301:102'
NAD+SU+3012345000004::9++Optique Durand SARL'
NAD+BY+3098765000001::9++Opticien Martin Lyon'
CUX+2:EUR:4'
LIN+1++4006381333931:EN'
IMD+F++:::Verre progressif 1.67:photochromique'
QTY+47:2:PCE'
MOA+203:250.00'
PRI+AAA:125.00'
TAX+7+VAT+++:::20+S'
MOA+124:50.00'
LIN+2++:EN'
PIA+5+MT-ECAILLE-52:SA'
IMD+F++:::Monture acétate écaille'
QTY+47:1:PCE'
MOA+203:1000.00'
PRI+AAA:1000.00'
UNS+S'
CNT+2:2'
MOA+79:1250.00'
MOA+77:1500.00'
TAX+7+VAT+++:::20+S'
MOA+124:250.00'
UNT+27+M1'
UNH+M2+INVOIC:D:96A:UN'
BGM+381+A-77+9'
DTM+137:20240305:102'
NAD+SU+3012345000004::9++L?'Atelier du Verre:SARL'
CUX+2:EUR:4'
LIN+1++3760000000017:EN'
IMD+F++:::Retour étui ?+ chiffonnette'
QTY+47:3:PCE'
MOA+203:12.30'
PRI+AAA:4.10'
UNS+S'
MOA+79:12.30'
MOA+176:2.46'
MOA+77:14.76'
UNT+15+M2'
UNH+M3+INVOIC:D:96A:UN'
BGM+380+F-1025+9'
DTM+137:20240305:102'
NAD+SU+3012345000004::9++Optique Durand SARL'
LIN+1++3760000000024:EN'
IMD+F++:::Cordon à lunettes'
QTY+47:10:PCE'
MOA+203:33.33'
PRI+AAA:3.333'
UNS+S'
MOA+79:33.33'
MOA+176:6.67'
MOA+77:40.00'
TAX+7+VAT+++:::20+S'
MOA+124:6.67'
TAX+7+VAT+++:::5.5+S'
UNT+17+M3'
UNZ+3+INT42'
"""


def reason(data: bytes, **kwargs: int) -> str:
    with pytest.raises(FileRejectedError) as caught:
        parse_invoic(data, **kwargs)
    return caught.value.reason


def spec(**changes: Any) -> InvoiceSpec:
    return replace(sample_invoice(7, "F-2024-0042", 3), **changes)


def test_multi_message_file_gives_invoices_and_credit_notes_with_exact_amounts() -> None:
    invoice, credit_note, third = parse_invoic(HANDWRITTEN.encode("latin-1"))

    assert invoice == Invoice(
        supplier_id="3012345000004",
        supplier_name="Optique Durand SARL",
        buyer_id="3098765000001",
        buyer_name="Opticien Martin Lyon",
        number="F-1024",
        type="invoice",
        date=dt.date(2024, 3, 4),  # DTM+137, not the delivery date DTM+35
        currency="EUR",
        lines=(
            InvoiceLine(
                1,
                "4006381333931",
                "Verre progressif 1.67 photochromique",
                Decimal(2),
                Decimal("125.00"),
                Decimal("250.00"),
            ),
            InvoiceLine(
                2,
                "MT-ECAILLE-52",  # from PIA when LIN has no item number
                "Monture acétate écaille",
                Decimal(1),
                Decimal("1000.00"),
                Decimal("1000.00"),
            ),
        ),
        net=Decimal("1250.00"),
        tax=Decimal("250.00"),  # the summary MOA+124, not the line's own
        gross=Decimal("1500.00"),
        tax_rate=Decimal(20),
    )
    assert invoice.key() == ("3012345000004", "F-1024")

    assert credit_note.type == "credit_note"
    assert credit_note.supplier_name == "L'Atelier du Verre SARL"
    assert credit_note.buyer_id is None
    assert credit_note.buyer_name is None
    assert credit_note.lines[0].description == "Retour étui + chiffonnette"
    assert (credit_note.net, credit_note.tax, credit_note.gross) == (
        Decimal("12.30"),
        Decimal("2.46"),
        Decimal("14.76"),
    )
    assert credit_note.tax_rate is None  # no TAX segment at all

    assert third.currency == "EUR"  # no CUX: the default
    assert third.lines[0].unit_price == Decimal("3.333")
    assert third.tax_rate is None  # two different rates: no single one to report


def test_to_document_uses_the_design_field_names_and_exact_strings() -> None:
    invoice = parse_invoic(HANDWRITTEN.encode("latin-1"))[0]
    document = invoice.to_document()

    assert document == {
        "supplier_id": "3012345000004",
        "supplier_name": "Optique Durand SARL",
        "buyer_id": "3098765000001",
        "buyer_name": "Opticien Martin Lyon",
        "number": "F-1024",
        "type": "invoice",
        "date": "2024-03-04",
        "currency": "EUR",
        "lines": [
            {
                "number": 1,
                "product_code": "4006381333931",
                "description": "Verre progressif 1.67 photochromique",
                "quantity": "2",
                "unit_price": "125.00",
                "amount": "250.00",
            },
            {
                "number": 2,
                "product_code": "MT-ECAILLE-52",
                "description": "Monture acétate écaille",
                "quantity": "1",
                "unit_price": "1000.00",
                "amount": "1000.00",
            },
        ],
        "net": "1250.00",
        "tax": "250.00",
        "gross": "1500.00",
        "tax_rate": "20",
    }


def test_one_line_interchange_and_comma_decimals() -> None:
    text = HANDWRITTEN.replace("\n", "").replace("UNA:+.? '", "UNA:+,? '")
    text = text.replace("MOA+203:12.30", "MOA+203:12,30")
    invoices = parse_invoic(text.encode("latin-1"))
    assert invoices[1].lines[0].amount == Decimal("12.30")


def test_without_una_the_default_separators_apply() -> None:
    data = HANDWRITTEN.removeprefix("UNA:+.? '\n").encode("latin-1")
    assert len(parse_invoic(data)) == 3


def test_custom_separators_from_una() -> None:
    specs = [sample_invoice(3, "F-9", 2)]
    text = make_interchange(specs).decode("latin-1")
    mapping = {"'": "~", "+": "*", ":": "^"}

    def swap(match: re.Match[str]) -> str:
        released, separator = match.groups()
        if released is not None:  # no longer special: no release needed
            return released if released in mapping else "?" + released
        return mapping[separator]

    swapped = re.sub(r"\?(.)|(['+:])", swap, text.removeprefix("UNA:+.? '"), flags=re.DOTALL)
    swapped = "UNA^*.? ~" + swapped
    assert "L'Atelier du Verre SARL" in swapped
    assert parse_invoic(swapped.encode("latin-1")) == [specs[0].expected()]


@pytest.mark.parametrize("syntax", ["UNOA", "UNOB", "UNOC", "UNOW", "UNOY"])
def test_character_sets_declared_in_unb(syntax: str) -> None:
    specs = [sample_invoice(5, "F-1", 4), sample_invoice(9, "A-1", 2, credit_note=True)]
    data = make_interchange(specs, syntax=syntax)
    assert parse_invoic(data) == [s.expected(syntax) for s in specs]


def test_utf8_text_under_a_latin1_declaration_is_read_as_utf8() -> None:
    data = make_interchange([sample_invoice(1, "F-1", 1)]).decode("latin-1").encode("utf-8")
    assert parse_invoic(data)[0].supplier_name == "Verres Lefèvre SA"


def test_8bit_text_under_unoa_is_read_as_latin1() -> None:
    text = make_interchange([sample_invoice(1, "F-1", 1)], syntax="UNOA").decode("ascii")
    text = text.replace("Verres Lefevre SA", "Verres Lefèvre SA")
    assert parse_invoic(text.encode("latin-1"))[0].supplier_name == "Verres Lefèvre SA"


def test_utf8_bom_and_surrounding_blank_lines_are_tolerated() -> None:
    data = b"\xef\xbb\xbf\r\n" + make_interchange([sample_invoice(1, "F-1", 1)]) + b"\r\n\r\n"
    assert len(parse_invoic(data)) == 1


def test_differences_up_to_one_cent_are_rounding_not_errors() -> None:
    data = make_interchange([spec(net_delta=Decimal("0.01"), gross_delta=Decimal("0.02"))])
    assert len(parse_invoic(data)) == 1


def test_tax_from_moa_124_when_no_total_is_given() -> None:
    invoice = spec(omit=("MOA+176",))
    assert parse_invoic(make_interchange([invoice]))[0].tax == invoice.tax


def test_untaxed_document_may_omit_the_tax() -> None:
    invoice = spec(tax_rate=Decimal(0), omit=("MOA+176", "MOA+124", "TAX"))
    parsed = parse_invoic(make_interchange([invoice]))[0]
    assert (parsed.tax, parsed.gross, parsed.tax_rate) == (Decimal(0), parsed.net, None)


# --- rejections --------------------------------------------------------------------------


def test_sum_of_lines_reason_reads_like_the_accountants_expect() -> None:
    lines = (
        LineSpec("3760000000017", "Verre unifocal", Decimal(4), Decimal("250.00")),
        LineSpec("3760000000024", "Monture titane", Decimal(1), Decimal("250.00")),
    )
    first = sample_invoice(1, "F-1023", 2)
    second = replace(first, number="F-1024", lines=lines, net_delta=Decimal(10))
    assert reason(make_interchange([first, second])) == (
        "Message 2 (facture F-1024) : la somme des lignes (1 250,00) ne correspond pas "
        "au total HT (1 260,00)."
    )


def test_net_plus_tax_must_give_gross() -> None:
    lines = (LineSpec("3760000000017", "Verre", Decimal(1), Decimal("1000.00")),)
    credit = replace(spec(lines=lines, credit_note=True), gross_delta=Decimal(10))
    assert reason(make_interchange([credit])) == (
        "Message 1 (avoir F-2024-0042) : le total HT (1 000,00) plus la TVA (200,00) donne "
        "1 200,00 et non le total TTC annoncé (1 210,00)."
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"unt_count_delta": 1},
            "Message 1 (facture F-2024-0042) : le segment UNT annonce 31 segments mais le "
            "message en contient 30 (de UNH à UNT inclus).",
        ),
        (
            {"unt_count_delta": -3},
            "le segment UNT annonce 27 segments mais le message en contient 30",
        ),
        (
            {"unt_ref": "0009"},
            "Message 1 (facture F-2024-0042) : la référence du segment UNT (« 0009 ») ne "
            "correspond pas à celle de UNH (« 0001 »).",
        ),
        (
            {"message_type": "ORDERS"},
            "Message 1 (facture F-2024-0042) : message de type « ORDERS » au lieu de INVOIC",
        ),
        (
            {"document_code": "325"},
            "Message 1 (réf. 0001) : document de type « 325 » non pris en charge "
            "(BGM 380 = facture ou 381 = avoir attendu).",
        ),
        ({"number": ""}, "Message 1 (réf. 0001) : numéro du document absent (BGM)."),
        ({"omit": ("BGM",)}, "Message 1 (réf. 0001) : segment BGM (type et numéro"),
        (
            {"omit": ("DTM",)},
            "Message 1 (facture F-2024-0042) : date du document (DTM+137) absente.",
        ),
        (
            {"omit": ("NAD+SU",)},
            "Message 1 (facture F-2024-0042) : fournisseur (NAD+SU) absent.",
        ),
        (
            {"supplier_id": ""},
            "Message 1 (facture F-2024-0042) : identifiant du fournisseur absent dans NAD+SU.",
        ),
        ({"omit": ("LIN", "IMD", "QTY", "PRI", "MOA+203")}, "aucune ligne de facture (LIN)"),
        (
            {"omit": ("QTY",)},
            "Message 1 (facture F-2024-0042), ligne 1 : quantité facturée (QTY+47) absente.",
        ),
        ({"omit": ("PRI",)}, "ligne 1 : prix unitaire net (PRI+AAA) absent."),
        ({"omit": ("MOA+203",)}, "ligne 1 : montant de la ligne (MOA+203) absent."),
        ({"omit": ("MOA+77",)}, "Message 1 (facture F-2024-0042) : total TTC (MOA+77) absent."),
        ({"omit": ("MOA+79",)}, "total HT des lignes (MOA+79) absent."),
        ({"omit": ("MOA+176", "MOA+124")}, "montant de la TVA (MOA+124 ou MOA+176) absent."),
        ({"currency": "euro"}, "code devise « euro » invalide (CUX)."),
    ],
)
def test_a_bad_message_rejects_the_file_with_a_precise_reason(
    changes: dict[str, object], expected: str
) -> None:
    assert expected in reason(make_interchange([spec(**changes)]))


@pytest.mark.parametrize(
    ("dtm", "expected"),
    [
        (
            "DTM+137:20240230:102",
            "date du document « 20240230 » invalide (jour ou mois impossible)",
        ),
        ("DTM+137:240115:102", "date du document « 240115 » invalide (format 102)"),
        ("DTM+137:15/01/2024:999", "format de date « 999 » non pris en charge dans DTM+137"),
    ],
)
def test_impossible_dates_are_refused(dtm: str, expected: str) -> None:
    data = make_interchange([spec(date=dt.date(2024, 1, 15))])
    assert f"Message 1 (facture F-2024-0042) : {expected}" in reason(
        data.replace(b"DTM+137:20240115:102", dtm.encode())
    )


def test_dates_with_a_time_are_accepted() -> None:
    data = make_interchange([spec(date=dt.date(2024, 1, 15))])
    data = data.replace(b"DTM+137:20240115:102", b"DTM+137:202401151730:203")
    assert parse_invoic(data)[0].date == dt.date(2024, 1, 15)


def test_the_first_bad_message_is_named_by_position_and_number() -> None:
    good = [sample_invoice(n, f"F-{n}", 2) for n in range(4)]
    bad = replace(good[2], unt_count_delta=1)
    assert reason(make_interchange([good[0], good[1], bad, good[3]])).startswith(
        "Message 3 (facture F-2) : le segment UNT annonce"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "Le fichier est vide."),
        (b" \r\n\r\n ", "Le fichier est vide."),
        (
            "UNA:+.? 'UNB+UNOC:3".encode("utf-16"),
            "Le fichier contient des octets nuls : c'est un fichier binaire (ou UTF-16)",
        ),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", "ne commence pas par l'en-tête d'échange UNB"),
        (b"Date;Reference;Libelle\r\n", "ce n'est pas un fichier EDIFACT"),
        (b"UNA:+", "le segment UNA est incomplet"),
        (b"UNA:::::::UNB+UNOC:3'", "Le segment UNA définit des séparateurs invalides"),
        (b"UNB+UNOX:3+S+R+240101:1200+1'", "Jeu de caractères « UNOX » inconnu"),
        (
            b"UNB+UNOW:4+S+R+20240101:1200+1'UNH+1+INVOIC:D:96A:UN'FTX+AAI+++caf\xe9'",
            "Le fichier n'est pas lisible dans le jeu de caractères annoncé par UNB "
            "(UNOW, UTF-8) : octet invalide (octet n° 67).",
        ),
        (
            b"UNB+UNOC:3+S+R+240101:1200+1'UNH+1+INVOIC:D:96A:UN'FTX+AAI+++a\x07b'",
            "caractère de contrôle interdit (code 0x07, octet n° 63)",
        ),
        (
            b"UNB+UNOC:3+S+R+240101:1200+1'UNH+1+INVOIC:D:96A:UN'BGM+380+F?'",
            "Le fichier est tronqué : il ne se termine pas par un segment complet "
            "(terminateur « ' » final absent).",
        ),
        (b"UNB+UNOC:3+S+R+240101:1200+1'UNZ+0+1'", "L'échange ne contient aucun message"),
        (
            b"UNB+UNOC:3+S+R+240101:1200+1'UNH+1+INVOIC:D:96A:UN'12x+4'UNT+3+1'UNZ+1+1'",
            "Syntaxe EDIFACT invalide après le segment n° 2 (UNH) : le fichier est mal formé.",
        ),
        (b"UNB+UNOC:3+S+R+240101:1200+1'+A'", "Syntaxe EDIFACT invalide après le segment n° 1"),
        (b"UNB+UNOC:3+S+R+240101:1200+1'BGM+380+X'", "Segment BGM (n° 2) hors d'un message"),
        (b"UNB+UNOC:3+S+R+240101:1200+1'UNG+INVOIC'", "groupes fonctionnels (UNG/UNE)"),
    ],
)
def test_unreadable_files_are_rejected_with_a_precise_reason(data: bytes, expected: str) -> None:
    assert expected in reason(data)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda text: text.replace("UNZ+3+1'\n", ""),
            "Le fichier est tronqué : le segment de fin d'échange UNZ est absent.",
        ),
        (
            lambda text: text[: text.rindex("UNT+")],
            "Le fichier est tronqué : le message 3 (facture F-2) n'est pas terminé (segment UNT "
            "absent).",
        ),
        (
            lambda text: text.replace("UNZ+3+1'", "UNZ+4+1'"),
            "Le fichier est incomplet : le segment UNZ annonce 4 message(s) mais l'échange "
            "en contient 3.",
        ),
        (lambda text: text.replace("UNZ+3+1'", "UNZ+3+2'"), "La référence de fin d'échange UNZ"),
        (lambda text: text.replace("UNZ+3+1'", "UNZ+trois+1'"), "nombre de messages valide"),
        (
            lambda text: text + "UNB+UNOC:3+S+R+240101:1200+2'",
            "Des données suivent la fin d'échange UNZ",
        ),
        (
            lambda text: text.replace("UNZ+3+1'", "UNB+UNOC:3+S+R+240101:1200+2'UNZ+3+1'"),
            "plusieurs échanges",
        ),
        (
            lambda text: text.replace("UNT+30+0002'\n", ""),
            "Message 2 (facture F-1) : segment de fin de message UNT absent avant le message "
            "suivant.",
        ),
    ],
)
def test_broken_envelopes_are_rejected(edit: Callable[[str], str], expected: str) -> None:
    specs = [sample_invoice(n, f"F-{n}", 3) for n in range(3)]
    text = make_interchange(specs).decode("latin-1")
    assert expected in reason(edit(text).encode("latin-1"))


def test_truncated_transfer_is_rejected() -> None:
    specs = [sample_invoice(n, f"F-{n}", 5) for n in range(3)]
    assert reason(make_interchange(specs, truncated=True)).startswith("Le fichier est tronqué")


def test_bad_numbers_are_named_with_their_segment() -> None:
    data = make_interchange([spec()]).replace(b"MOA+79:", b"MOA+79:1x")
    assert reason(data) == (
        "Message 1 (facture F-2024-0042) : valeur numérique « 1x"
        + str(spec().net)
        + " » invalide dans MOA+79."
    )


def test_segment_limit_is_checked_while_streaming_too() -> None:
    # "a??'" ends with a released release character: a cheap terminator count reads it as
    # released, so only the streaming count can tell there are 100 segments here.
    body = "FTX+AAI+++a??'" * 100
    text = f"UNB+UNOC:3+S+R+240101:1200+1'UNH+1+INVOIC:D:96A:UN'{body}UNT+102+1'UNZ+1+1'"
    assert reason(text.encode(), max_segments=50) == (
        "Le fichier compte au moins 51 segments, au-delà de la limite de 50 : il n'est pas "
        "importé (découpez-le en plusieurs fichiers)."
    )


@pytest.mark.timeout(10)
def test_a_million_segments_are_refused_quickly_and_without_reading_them() -> None:
    data = (
        b"UNA:+.? 'UNB+UNOC:3+S+R+240101:1200+1'UNH+1+INVOIC:D:96A:UN'"
        + b"FTX+AAI+++Ligne de commentaire'" * 1_000_000
        + b"UNT+1000002+1'UNZ+1+1'"
    )
    tracemalloc.start()
    started = time.perf_counter()
    try:
        text = reason(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert text.startswith("Le fichier compte au moins 1 000 004 segments, au-delà de la limite")
    assert elapsed < 2
    assert peak < len(data) // 10  # never decoded, never tokenised


# --- properties --------------------------------------------------------------------------

FRENCH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -&/().,'+:?*àâçéèêëîïôùûü"
names = st.text(alphabet=FRENCH, min_size=1, max_size=35).map(str.strip).filter(bool)
codes = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/.", min_size=1, max_size=17)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(99999), places=2)
quantities = st.one_of(
    st.integers(min_value=1, max_value=500).map(Decimal),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal(100), places=3),
)
line_specs = st.builds(LineSpec, codes, names, quantities, prices)
invoice_specs = st.builds(
    InvoiceSpec,
    supplier_id=codes,
    supplier_name=names,
    buyer_id=codes,
    buyer_name=names,
    number=codes,
    date=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2099, 12, 31)),
    lines=st.lists(line_specs, min_size=1, max_size=6).map(tuple),
    credit_note=st.booleans(),
    currency=st.sampled_from(["EUR", "CHF", "USD"]),
    tax_rate=st.sampled_from([Decimal(0), Decimal("2.1"), Decimal("5.5"), Decimal("20.00")]),
)


@settings(max_examples=60, deadline=None)
@given(
    specs=st.lists(invoice_specs, min_size=1, max_size=4),
    syntax=st.sampled_from(["UNOC", "UNOW"]),
    una=st.booleans(),
    newlines=st.booleans(),
)
def test_generated_interchanges_round_trip(
    specs: list[InvoiceSpec], syntax: str, una: bool, newlines: bool
) -> None:
    data = make_interchange(specs, syntax=syntax, una=una, newlines=newlines)
    invoices = parse_invoic(data)
    assert invoices == [s.expected(syntax) for s in specs]
    for invoice, s in zip(invoices, specs, strict=True):
        assert (invoice.net, invoice.tax, invoice.gross) == (s.net, s.tax, s.gross)
        assert sum(line.amount for line in invoice.lines) == invoice.net


@settings(max_examples=40, deadline=None)
@given(spec=invoice_specs, delta=st.decimals(min_value=Decimal("0.02"), max_value=10**6, places=2))
def test_any_drift_above_one_cent_is_refused(spec: InvoiceSpec, delta: Decimal) -> None:
    assert "la somme des lignes" in reason(make_interchange([replace(spec, net_delta=delta)]))
    assert "total TTC annoncé" in reason(make_interchange([replace(spec, gross_delta=-delta)]))


def only_rejections(data: bytes) -> None:
    outcome: str | None
    try:
        invoices = parse_invoic(data)
    except FileRejectedError as e:
        outcome = e.reason  # and a rejection always says why
    else:
        outcome = "read" if all(isinstance(invoice, Invoice) for invoice in invoices) else None
    assert outcome


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_never_raise_anything_but_a_rejection(data: bytes) -> None:
    only_rejections(data)


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"UNA:+.? '", b"UNB+UNOC:3+", b"UNA:+.? 'UNB+UNOW:3+S+R+1'"]),
    data=st.binary(max_size=300),
)
def test_random_bytes_after_a_plausible_header_never_raise_anything_else(
    prefix: bytes, data: bytes
) -> None:
    only_rejections(prefix + data)


VALID = make_interchange([sample_invoice(n, f"F-{n}", 3) for n in range(2)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    position=st.integers(min_value=0, max_value=len(VALID) - 1),
    byte=st.sampled_from(b"'+:?.,-0123456789AUNZ \n\x00\x1a\xe9\xff"),
    delete=st.booleans(),
)
def test_damaged_files_never_raise_anything_but_a_rejection(
    position: int, byte: int, delete: bool
) -> None:
    damaged = bytearray(VALID)
    if delete:
        del damaged[position]
    else:
        damaged[position] = byte
    only_rejections(bytes(damaged))
