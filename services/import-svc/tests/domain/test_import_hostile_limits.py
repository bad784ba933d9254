"""Each documented limit of the readers (docs/imports.md, "Limits"), and the guard that
turns any failure of a reader into that one file's French reason (issue 15).

Before these limits, a 5,000-digit UNT count raised ValueError out of the parser (Python
refuses int() past 4,300 digits), and a BBGR file of a few hundred thousand rows made a
result document past the store's 16 MB: either one dead-lettered the file's message and
hung the whole import queue.
"""

from __future__ import annotations

import re
from pathlib import Path

import bson
import pytest

from import_svc import processing
from import_svc.domain import FileRejectedError, bbgr, edifact, parse_invoic, read_bbgr
from import_svc.events import file_result
from import_svc.processing import FileOutcome, RowResult, gauge_units, process_file
from jauge_shared.contracts import ImportKind
from jauge_testkit.import_files import make_bbgr_csv, make_interchange, sample_invoice

GOOD = make_interchange([sample_invoice(1, "F-1", 2)], ref="R1")
RETOURS_HEADER = "Date;Numéro retour;Code article;Désignation;Quantité;Motif\r\n"
MAX_BYTES = 64 * 1024 * 1024


def rejection(data: bytes) -> str:
    with pytest.raises(FileRejectedError) as caught:
        parse_invoic(data)
    return caught.value.reason


def bbgr_rejection(kind: str, data: bytes) -> str:
    with pytest.raises(FileRejectedError) as caught:
        read_bbgr(kind, data)
    return caught.value.reason


def with_segment(segment: bytes) -> bytes:
    """GOOD with one more (ignored) segment before UNS, its UNT count kept right."""
    data = GOOD.replace(b"UNS+S'", segment + b"'\nUNS+S'", 1)
    count = int(re.search(rb"UNT\+(\d+)", data).group(1))  # type: ignore[union-attr]
    return data.replace(b"UNT+%d+" % count, b"UNT+%d+" % (count + 1))


# --- EDIFACT ---------------------------------------------------------------------------


def test_the_good_file_reads() -> None:
    assert len(parse_invoic(GOOD)) == 1
    assert len(parse_invoic(with_segment(b"FTX+AAI+++" + b"x" * 500))) == 1


@pytest.mark.parametrize("digits", [7, 4_301, 5_000, 8_000])
def test_a_unt_count_of_thousands_of_digits_is_a_french_rejection(digits: int) -> None:
    data = re.sub(rb"UNT\+\d+", b"UNT+" + b"9" * digits, GOOD)
    reason = rejection(data)
    assert reason.startswith("Message 1 (facture F-1) : le segment UNT ne donne pas un nombre")
    assert len(reason) < 200


def test_a_unz_count_of_5000_digits_is_a_french_rejection() -> None:
    data = re.sub(rb"UNZ\+\d+", b"UNZ+" + b"1" * 5_000, GOOD)
    assert rejection(data).startswith("Le segment UNZ ne donne pas un nombre de messages valide")


def test_a_lin_number_of_5000_digits_is_a_french_rejection() -> None:
    data = GOOD.replace(b"LIN+1+", b"LIN+" + b"1" * 5_000 + b"+", 1)
    assert "numéro de ligne LIN" in rejection(data)


def test_a_segment_longer_than_the_limit_is_refused_before_tokenising() -> None:
    limit = edifact.MAX_SEGMENT_CHARS
    assert len(parse_invoic(with_segment(b"FTX+AAI+++" + b"x" * (limit - 20)))) == 1
    reason = rejection(with_segment(b"FTX+AAI+++" + b"x" * limit))
    assert "au-delà de la limite de 8 192" in reason, reason


def test_a_long_segment_hidden_behind_released_terminators_is_refused_too() -> None:
    # every "?'" is a released terminator: the byte check sees short pieces only
    reason = rejection(with_segment(b"FTX+AAI+++" + b"abc?'" * 3_000))
    assert "caractères, au-delà de la limite" in reason, reason


def test_more_than_99_data_elements_in_a_segment_are_refused() -> None:
    assert len(parse_invoic(with_segment(b"FTX+AAI" + b"+x" * 98))) == 1
    reason = rejection(with_segment(b"FTX+AAI" + b"+x" * 99))
    assert "compte 100 éléments de données, au-delà de la limite de 99" in reason, reason


def test_300000_data_elements_are_refused() -> None:
    reason = rejection(with_segment(b"FTX+AAI" + b"+" * 300_000))
    assert "au-delà de la limite" in reason, reason


def test_more_than_99_components_in_an_element_are_refused() -> None:
    reason = rejection(with_segment(b"FTX+AAI+++" + b":x" * 100))
    assert "composants, au-delà de la limite de 99" in reason, reason


def test_an_edi_file_past_16_mib_is_refused_without_being_tokenised() -> None:
    segment = b"FTX+AAI+++" + b"x" * 150 + b"'\n"
    body = segment * (edifact.MAX_EDI_BYTES // len(segment) + 1)
    data = GOOD.replace(b"UNS+S'", body + b"UNS+S'", 1)
    assert len(data) > edifact.MAX_EDI_BYTES
    assert rejection(data).startswith("Le fichier EDI fait 16,")


# --- BBGR ------------------------------------------------------------------------------


def test_a_bbgr_file_past_16_mib_is_refused() -> None:
    data = RETOURS_HEADER.encode() + b"1/2/2024;R;A;D;1;\r\n" * (bbgr.MAX_BBGR_BYTES // 19 + 1)
    assert bbgr_rejection("bbgr_retours", data).startswith("Le fichier fait 16,")


def test_more_rows_than_the_limit_reject_the_file() -> None:
    rows = b"".join(b"1/2/2024;R%d;A;D;1;\r\n" % i for i in range(bbgr.MAX_ROWS))
    assert len(read_bbgr("bbgr_retours", RETOURS_HEADER.encode() + rows).rows) == bbgr.MAX_ROWS
    reason = bbgr_rejection("bbgr_retours", RETOURS_HEADER.encode() + rows + rows[:20])
    assert reason == (
        "Le fichier compte plus de 50 000 lignes de données (limite atteinte ligne 50 002) : "
        "il n'est pas importé, découpez-le en plusieurs fichiers."
    )


def test_a_header_of_too_many_columns_is_refused() -> None:
    header = RETOURS_HEADER.strip() + ";x" * bbgr.MAX_COLUMNS
    data = (header + "\r\n05/02/2024;R;A;D;1;\r\n").encode()
    assert "au-delà de la limite de 100" in bbgr_rejection("bbgr_retours", data)


def test_a_row_of_300000_fields_is_that_row_s_error() -> None:
    data = (RETOURS_HEADER + "05/02/2024;R;A;D;1;" + ";x" * 300_000 + "\r\n").encode()
    (row,) = read_bbgr("bbgr_retours", data).rows
    assert row.error == "300 006 champs au lieu de 6"


def test_a_cell_longer_than_the_limit_is_that_row_s_error() -> None:
    long = "x" * (bbgr.MAX_CELL_CHARS + 1)
    data = (RETOURS_HEADER + f"05/02/2024;R;A;{long};1;\r\n05/02/2024;R;A;D;1;\r\n").encode()
    first, second = read_bbgr("bbgr_retours", data).rows
    assert first.error == "un champ de 1 001 caractères (au plus 1 000)"
    assert second.ok


@pytest.mark.parametrize("character", ["x", "é", "€", "😀"])
def test_a_row_reason_is_cut_to_its_limit_in_bytes(character: str) -> None:
    header = "Mois;Code client;Client;CA HT;Remises;CA net\r\n"
    bad = character * 60
    data = (header + f"{bad};C;N;{bad};{bad};{bad}\r\n").encode()
    (row,) = read_bbgr("bbgr_monthly", data).rows
    assert row.error is not None and row.error.endswith("…")
    assert bbgr.MAX_ROW_ERROR_BYTES - 3 <= len(row.error.encode()) <= bbgr.MAX_ROW_ERROR_BYTES


def test_the_worst_result_of_a_file_fits_one_stored_document() -> None:
    """MAX_ROWS rows, each with a reason as long as allowed: under the 16 MB of BSON."""
    reason = "😀" * (bbgr.MAX_ROW_ERROR_BYTES // 4)  # four bytes each in UTF-8
    rows = [RowResult(line_no=n + 2, error=reason) for n in range(bbgr.MAX_ROWS)]
    outcome = FileOutcome(ok=False, error="x" * 20_000, rows=rows)
    document = {"_id": "j" * 64 + "/" + "f" * 255, **file_result(outcome)}
    assert len(bson.encode(document)) < 16 * 1024 * 1024 - 64 * 1024


# --- the guard --------------------------------------------------------------------------


@pytest.mark.parametrize("error", [ValueError("boom"), RecursionError(), MemoryError(), KeyError()])
def test_any_exception_of_a_reader_fails_that_file_with_a_french_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(processing, "parse_invoic", explode)
    monkeypatch.setattr(processing, "read_bbgr", explode)
    path = tmp_path / "f.edi"
    path.write_bytes(GOOD)
    for kind in (ImportKind.EDI, ImportKind.BBGR_RETOURS):
        outcome = process_file(kind, path, MAX_BYTES)
        assert not outcome.ok
        assert outcome.error == (
            "Le fichier n'a pas pu être lu (erreur inattendue du lecteur : "
            f"{type(error).__name__}) : il n'est pas importé. Signalez-le à l'équipe technique."
        )
    assert gauge_units(ImportKind.BBGR_RETOURS, path, MAX_BYTES) == 1


def test_the_5000_digit_unt_file_is_a_failed_file_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "unt.edi"
    path.write_bytes(re.sub(rb"UNT\+\d+", b"UNT+" + b"9" * 5_000, GOOD))
    outcome = process_file(ImportKind.EDI, path, MAX_BYTES)
    assert not outcome.ok and outcome.error is not None
    assert "le segment UNT ne donne pas un nombre de segments valide" in outcome.error


def test_a_good_bbgr_file_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(make_bbgr_csv("bbgr_retours", 20))
    outcome = process_file(ImportKind.BBGR_RETOURS, path, MAX_BYTES)
    assert outcome.ok and len(outcome.rows) == 20
