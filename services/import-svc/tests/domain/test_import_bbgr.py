"""read_bbgr: the four BBGR CSV exports, row by row, with French reasons."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from import_svc.domain import BBGR_COLUMNS, BbgrFile, FileRejectedError, read_bbgr
from jauge_testkit.import_files import make_bbgr_csv

KINDS = sorted(BBGR_COLUMNS)


def reason(kind: str, data: bytes) -> str:
    with pytest.raises(FileRejectedError) as caught:
        read_bbgr(kind, data)
    return caught.value.reason


def csv_file(*lines: str, encoding: str = "utf-8") -> bytes:
    return "\r\n".join(lines).encode(encoding)


def test_statement_rows_are_typed() -> None:
    data = csv_file(
        "Date;Référence;Libellé;Débit;Crédit;Solde",
        "02/01/2024;FAC-2024-0001;Facture F-1024;1 250,00;;-1 250,00",
        "15/01/2024;VIR-0042;Règlement par virement;;1\u00a0250,00;0,00",
    )
    table = read_bbgr("bbgr_statment", data)

    assert table.kind == "bbgr_statment"
    assert table.columns == ("date", "reference", "libelle", "debit", "credit", "solde")
    assert [row.line_no for row in table.rows] == [2, 3]
    assert table.rows[0].values == {
        "date": dt.date(2024, 1, 2),
        "reference": "FAC-2024-0001",
        "libelle": "Facture F-1024",
        "debit": Decimal("1250.00"),
        "credit": None,
        "solde": Decimal("-1250.00"),
    }
    assert table.rows[1].values["credit"] == Decimal("1250.00")
    assert all(row.ok for row in table.rows)
    assert table.bad_rows == []


def test_monthly_rows_are_typed() -> None:
    data = csv_file(
        "mois;code_client;client;ca_ht;remises;ca_net",
        "03/2024;C00042;Optique du Vieux-Port;12 500,00;1 250,00;11 250,00",
        "01/04/2024;C00043;Vision Plus;100,5;0;100,50",  # Excel turned the month into a date
    )
    first, second = read_bbgr("bbgr_monthly", data).rows
    assert first.values == {
        "mois": dt.date(2024, 3, 1),
        "code_client": "C00042",
        "client": "Optique du Vieux-Port",
        "ca_ht": Decimal("12500.00"),
        "remises": Decimal("1250.00"),
        "ca_net": Decimal("11250.00"),
    }
    assert second.values["mois"] == dt.date(2024, 4, 1)


def test_returns_and_receptions_rows_are_typed() -> None:
    returns = read_bbgr(
        "bbgr_retours",
        csv_file(
            "Date;Numéro retour;Code article;Désignation;Quantité;Motif",
            "05/02/2024;RET-000001;3760000000017;Verre unifocal;2;",
        ),
    )
    assert returns.rows[0].values == {
        "date": dt.date(2024, 2, 5),
        "numero_retour": "RET-000001",
        "code_article": "3760000000017",
        "designation": "Verre unifocal",
        "quantite": 2,
        "motif": None,  # optional
    }
    receptions = read_bbgr(
        "bbgr_receptions",
        csv_file(
            "DATE;NUMERO BL;CODE ARTICLE;DESIGNATION;QUANTITE COMMANDEE;QUANTITE RECUE",
            "06/02/2024;BL00240001;3760000000024;Étui rigide;10;8,00",
        ),
    )
    assert receptions.rows[0].values["quantite_commandee"] == 10
    assert receptions.rows[0].values["quantite_recue"] == 8


def test_header_is_matched_without_case_accents_or_order_and_extra_columns_are_ignored() -> None:
    data = csv_file(
        '"Solde";"LIBELLÉ";Agence;Date;"Crédit";Débit;Référence',
        '0,00;"Facture; avec point-virgule";Lyon;02/01/2024;;12,00;F1',
    )
    table = read_bbgr("bbgr_statment", data)
    assert table.columns == ("date", "reference", "libelle", "debit", "credit", "solde")
    assert table.rows[0].values["libelle"] == "Facture; avec point-virgule"
    assert table.rows[0].values["debit"] == Decimal("12.00")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252"])
def test_utf8_with_or_without_bom_and_windows_1252(encoding: str) -> None:
    data = make_bbgr_csv("bbgr_retours", 30, encoding=encoding)
    table = read_bbgr("bbgr_retours", data)
    assert len(table.rows) == 30
    designations = {row.values["designation"] for row in table.rows}
    assert designations & {"Étui rigide noir", "Monture acétate écaille", "Cordon à lunettes"}


def test_bad_rows_are_reported_by_line_and_do_not_reject_the_file() -> None:
    data = csv_file(
        "date;reference;libelle;debit;credit;solde",
        "02/01/2024;F1;Facture;10,00;;-10,00",
        "31/02/2024;F2;Facture;12.5.0;;-22,50",
        "",
        "2024-01-03;F3;Facture;1.234,56;;-1 234,56",
        "04/01/2024;;Facture;;;-1 234,56",
        "05/01/2024;F5;Facture;1,00",
        "06/01/2024;F6;Facture;1,00;;0,00;;",  # trailing empty cells are harmless
        "07/01/2024;F7;Facture;1,00;;0,00;;surplus",
    )
    table = read_bbgr("bbgr_statment", data)
    errors = {row.line_no: row.error for row in table.bad_rows}

    assert [row.line_no for row in table.rows] == [2, 3, 5, 6, 7, 8, 9]
    assert errors == {
        3: "date « 31/02/2024 » invalide (cette date n'existe pas) ; "
        "debit « 12.5.0 » invalide (montant attendu, par exemple 1 234,56)",
        5: "date « 2024-01-03 » invalide (date attendue au format JJ/MM/AAAA) ; "
        "debit « 1.234,56 » invalide (montant attendu, par exemple 1 234,56)",
        6: "colonne « reference » vide",  # row rules wait for readable cells
        7: "4 champs au lieu de 6",
        9: "8 champs au lieu de 6",
    }
    assert table.rows[0].values["debit"] == Decimal("10.00")
    assert table.rows[5].ok
    assert table.rows[1].values == {}


@pytest.mark.parametrize(
    ("kind", "row", "expected"),
    [
        (
            "bbgr_statment",
            "02/01/2024;F1;Facture;;;0,00",
            "ni débit ni crédit renseigné",
        ),
        (
            "bbgr_monthly",
            "03/2024;C1;Client;1 000,00;100,00;910,00",
            "le CA net (910,00) ne correspond pas au CA HT (1 000,00) moins les remises (100,00)",
        ),
        (
            "bbgr_monthly",
            "13/2024;C1;Client;1,00;0,00;1,00",
            "mois « 13/2024 » invalide (mois attendu au format MM/AAAA)",
        ),
        (
            "bbgr_retours",
            "05/02/2024;R1;376;Verre;0;Casse",
            "quantité retournée 0 : elle doit être positive",
        ),
        (
            "bbgr_retours",
            "05/02/2024;R1;376;Verre;1,5;Casse",
            "quantite « 1,5 » invalide (nombre entier attendu)",
        ),
        (
            "bbgr_receptions",
            "06/02/2024;BL1;376;Verre;-1;0",
            "quantite_commandee négative (-1)",
        ),
    ],
)
def test_row_rules_of_each_kind(kind: str, row: str, expected: str) -> None:
    header = ";".join(column.name for column in BBGR_COLUMNS[kind])
    table = read_bbgr(kind, csv_file(header, row))
    assert table.rows[0].error == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "Le fichier est vide."),
        (b"\r\n \r\n", "Le fichier est vide."),
        (
            "date;reference;libelle;debit;credit;solde".encode("utf-16"),
            "Le fichier est encodé en UTF-16",
        ),
        (b"date;ref\x00erence", "octets nuls"),
        (b"date;reference;libelle;debit;credit;solde\r\n", "aucune ligne de données"),
        (b"date;reference;libelle;debit;credit;solde\r\n;;\r\n\r\n", "aucune ligne de données"),
        (
            b"date;reference;libelle;solde\r\n02/01/2024;F1;Facture;0,00",
            "Colonne(s) manquante(s) dans l'en-tête : debit, credit (attendues pour un fichier "
            "relevé BBGR : date;reference;libelle;debit;credit;solde).",
        ),
        (
            b"02/01/2024;F1;Facture;1,00;;-1,00\r\n",
            "En-tête absent ou non reconnu : la première ligne d'un fichier relevé BBGR doit "
            "nommer les colonnes date;reference;libelle;debit;credit;solde.",
        ),
        (
            b"date,reference,libelle,debit,credit,solde\r\n02/01/2024,F1,Facture,1,,-1\r\n",
            "Le fichier est séparé par des virgules : les exports BBGR doivent utiliser le "
            "point-virgule (;) comme séparateur.",
        ),
        (b"date\treference\tlibelle\r\n", "séparé par des tabulations"),
        (
            b"date;reference;Date;libelle;debit;credit;solde\r\n",
            "Colonne « date » en double dans l'en-tête.",
        ),
        (
            b'date;reference;libelle;debit;credit;solde\r\n01/01/2024;"' + b"x" * 200_000,
            "le fichier CSV est mal formé",
        ),
    ],
)
def test_unreadable_files_are_rejected(data: bytes, expected: str) -> None:
    assert expected in reason("bbgr_statment", data)


def test_bytes_that_are_neither_utf8_nor_windows_1252_are_rejected() -> None:
    # 0x81 is one of the five bytes Windows-1252 leaves undefined.
    data = b"date;reference;libelle;debit;credit;solde\r\n02/01/2024;\x81;x;1,00;;1,00"
    assert reason("bbgr_statment", data) == (
        "Le fichier n'est lisible ni en UTF-8 ni en Windows-1252 (octet invalide à la position 55)."
    )


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="edi"):
        read_bbgr("edi", b"date\r\n01/01/2024")


@pytest.mark.parametrize("kind", KINDS)
def test_generated_exports_read_back_with_exactly_the_spoiled_rows_in_error(kind: str) -> None:
    table = read_bbgr(kind, make_bbgr_csv(kind, 200, bad_rows=(1, 57, 200)))
    assert isinstance(table, BbgrFile)
    assert len(table.rows) == 200
    assert [row.line_no for row in table.bad_rows] == [2, 58, 201]
    assert all(isinstance(row.error, str) and row.error for row in table.bad_rows)


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    n_rows=st.integers(min_value=1, max_value=60),
    data=st.data(),
)
def test_spoiled_rows_are_found_wherever_they_are(
    kind: str, n_rows: int, data: st.DataObject
) -> None:
    bad = data.draw(st.sets(st.integers(min_value=1, max_value=n_rows)))
    table = read_bbgr(kind, make_bbgr_csv(kind, n_rows, bad_rows=bad))
    assert {row.line_no - 1 for row in table.bad_rows} == bad


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_a_rejection(kind: str, data: bytes) -> None:
    try:
        table = read_bbgr(kind, data)
    except FileRejectedError as e:
        table_or_reason: object = e.reason
    else:
        table_or_reason = table
    assert table_or_reason


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), tail=st.text(max_size=200))
def test_random_text_under_a_good_header_never_raises_anything_else(kind: str, tail: str) -> None:
    header = ";".join(column.name for column in BBGR_COLUMNS[kind])
    try:
        table = read_bbgr(kind, f"{header}\r\n{tail}".encode())
    except FileRejectedError as e:
        outcome = e.reason
    else:
        outcome = "rows" if all(row.ok or row.error for row in table.rows) else "?"
    assert outcome == "rows" or any(
        words in outcome for words in ("aucune ligne", "mal formé", "octets nuls")
    )
