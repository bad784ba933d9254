"""The file generators other tests and benchmarks build their batches with."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal

import pytest

from import_svc.domain import BBGR_COLUMNS, FileRejectedError, parse_invoic, read_bbgr
from import_svc.domain.bbgr import normalize_header
from jauge_testkit.import_files import (
    BBGR_HEADERS,
    ean13,
    make_bbgr_csv,
    make_interchange,
    sample_invoice,
    supplier_id,
)


def test_same_arguments_give_the_same_bytes() -> None:
    def build(seed: int) -> bytes:
        specs = [sample_invoice(n, f"F-{n}", 4, credit_note=n == 2, seed=seed) for n in range(3)]
        return make_interchange(specs, ref="77")

    assert build(0) == build(0)
    assert build(0) != build(1)
    assert make_bbgr_csv("bbgr_monthly", 20) == make_bbgr_csv("bbgr_monthly", 20)
    assert make_bbgr_csv("bbgr_monthly", 20) != make_bbgr_csv("bbgr_monthly", 20, seed=1)


def test_sample_invoices_have_consistent_totals() -> None:
    for n in range(50):
        spec = sample_invoice(n, f"F-{n:05d}", 1 + n % 9, credit_note=n % 4 == 0)
        assert len(spec.lines) == 1 + n % 9
        assert spec.net == sum(line.amount for line in spec.lines)
        assert spec.tax == (spec.net * Decimal("0.2")).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert spec.gross == spec.net + spec.tax
        assert all(line.quantity > 0 and line.unit_price > 0 for line in spec.lines)
        assert all(len(line.description) <= 35 for line in spec.lines)


def test_codes_carry_valid_check_digits() -> None:
    assert ean13("400638133393") == "4006381333931"
    assert supplier_id(0) == ean13("301000000000")
    spec = sample_invoice(4, "F-1", 5)
    for code in [spec.supplier_id, spec.buyer_id, *(line.product_code for line in spec.lines)]:
        assert len(code) == 13
        assert ean13(code[:12]) == code


def test_suppliers_are_french_looking_and_stable_per_number() -> None:
    assert sample_invoice(0, "F-1", 1).supplier_name == "Optique Durand SARL"
    assert sample_invoice(10, "F-2", 1).supplier_name == "Optique Durand SARL"
    assert sample_invoice(0, "F-1", 1).supplier_id == sample_invoice(0, "F-9", 3).supplier_id


def test_interchange_envelope_and_segment_counts() -> None:
    specs = [sample_invoice(n, f"F-{n}", 2 + n) for n in range(4)]
    text = make_interchange(specs, sender="SENDER", receiver="RECEIVER", ref="REF9").decode(
        "latin-1"
    )
    segments = text.splitlines()
    assert segments[0] == "UNA:+.? '"
    assert segments[1] == "UNB+UNOC:3+SENDER:14+RECEIVER:14+240301:0830+REF9'"
    assert segments[-1] == "UNZ+4+REF9'"
    starts = [i for i, s in enumerate(segments) if s.startswith("UNH+")]
    ends = [i for i, s in enumerate(segments) if s.startswith("UNT+")]
    for number, (start, end) in enumerate(zip(starts, ends, strict=True), 1):
        assert segments[end] == f"UNT+{end - start + 1}+{number:04d}'"
    assert "NAD+SU+3010000000037::9++L?'Atelier du Verre SARL'" in segments


def test_one_line_files_and_comma_decimals() -> None:
    data = make_interchange([sample_invoice(1, "F-1", 2)], newlines=False, decimal_mark=",")
    assert b"\n" not in data
    assert data.startswith(b"UNA:+,? 'UNB")
    assert re.search(rb"MOA\+203:\d+,\d\d'", data)


def test_unoa_text_is_folded_to_ascii() -> None:
    data = make_interchange([sample_invoice(1, "F-1", 3)], syntax="UNOA")
    assert data.isascii()
    assert b"Verres Lefevre SA" in data


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        ({"unt_count_delta": 2}, "le segment UNT annonce"),
        ({"unt_ref": "X"}, "la référence du segment UNT"),
        ({"net_delta": Decimal("5.00")}, "la somme des lignes"),
        ({"gross_delta": Decimal("-0.50")}, "total TTC annoncé"),
        ({"omit": ("NAD+SU",)}, "fournisseur (NAD+SU) absent"),
        ({"document_code": "383"}, "« 383 » non pris en charge"),
    ],
)
def test_each_defect_option_gives_exactly_its_defect(
    defect: dict[str, object], expected: str
) -> None:
    good = sample_invoice(2, "F-7", 3)
    bad = replace(good, **defect)  # type: ignore[arg-type]
    with pytest.raises(FileRejectedError, match=re.escape(expected)):
        parse_invoic(make_interchange([good, bad]))
    assert parse_invoic(make_interchange([good, good])) == [good.expected()] * 2


def test_envelope_defects() -> None:
    specs = [sample_invoice(n, f"F-{n}", 3) for n in range(4)]
    with pytest.raises(FileRejectedError, match="tronqué"):
        parse_invoic(make_interchange(specs, truncated=True))
    with pytest.raises(FileRejectedError, match="UNZ annonce 5 message"):
        parse_invoic(make_interchange(specs, unz_count_delta=1))


def test_building_a_batch_is_fast() -> None:
    started = time.perf_counter()
    batch = [
        make_interchange([sample_invoice(n, f"F-{n}-{m}", 10) for m in range(5)], ref=str(n))
        for n in range(200)
    ]
    elapsed = time.perf_counter() - started
    assert len(set(batch)) == 200
    assert elapsed < 3  # well under a second here: room for slow CI machines


@pytest.mark.parametrize("kind", sorted(BBGR_COLUMNS))
def test_bbgr_exports_look_like_excel_ones(kind: str) -> None:
    data = make_bbgr_csv(kind, 12)
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[-1] == ""
    assert len(lines) == 14
    assert [normalize_header(h) for h in lines[0].split(";")] == [
        column.name for column in BBGR_COLUMNS[kind]
    ]
    assert lines[0] == ";".join(BBGR_HEADERS[kind])
    assert all(row.ok for row in read_bbgr(kind, data).rows)


def test_bbgr_statement_balance_runs_through_the_rows() -> None:
    rows = read_bbgr("bbgr_statment", make_bbgr_csv("bbgr_statment", 40)).rows
    balance = Decimal(0)
    for row in rows:
        debit, credit, solde = (row.values[k] for k in ("debit", "credit", "solde"))
        balance += (credit or Decimal(0)) - (debit or Decimal(0))  # type: ignore[operator]
        assert solde == balance


def test_bbgr_other_encodings_and_unknown_kinds() -> None:
    assert "Numéro".encode("cp1252") in make_bbgr_csv("bbgr_retours", 1, encoding="cp1252")
    with pytest.raises(ValueError, match="bbgr_inconnu"):
        make_bbgr_csv("bbgr_inconnu", 1)
