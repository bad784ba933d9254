"""Properties of both parsers on hostile input (reliability issue, point 6).

test_import_edifact.py and test_import_bbgr.py already feed random bytes and single
damaged bytes; these go further with what a broken transfer or a careless export does
to a valid file: whole segments or rows lost, repeated, swapped or replaced, text in
the wrong encoding. Whatever comes in, a parser returns a result or rejects the file
with a French reason (FileRejectedError), never anything else, so one bad file never
stops an import.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from import_svc.domain import (
    BBGR_COLUMNS,
    FileRejectedError,
    Invoice,
    parse_invoic,
    read_bbgr,
)
from jauge_testkit.import_files import make_bbgr_csv, make_interchange, sample_invoice

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = sorted(BBGR_COLUMNS)
# every syntax the parser knows whose codec the fixtures can write French names in
SYNTAXES = ["UNOA", "UNOB", "UNOC", "UNOW", "UNOY"]
CODECS = ["utf-8", "utf-8-sig", "latin-1", "cp1252", "utf-16", "ascii"]


def invoices_or_rejection(data: bytes) -> None:
    try:
        invoices = parse_invoic(data)
    except FileRejectedError as e:
        reason = e.reason
    else:
        reason = "read"
        assert all(isinstance(invoice, Invoice) for invoice in invoices)
    assert reason.strip(), "a rejection always says why"


def rows_or_rejection(kind: str, data: bytes) -> None:
    try:
        table = read_bbgr(kind, data)
    except FileRejectedError as e:
        reason = e.reason
    else:
        reason = "read"
        assert table.rows, "a table that was read has rows"
        for row in table.rows:
            assert row.ok or (row.error and not row.values)
    assert reason.strip(), "a rejection always says why"


# --- EDIFACT --------------------------------------------------------------------------

VALID = make_interchange([sample_invoice(n, f"F-{n}", 3, credit_note=n == 2) for n in range(3)])
SEGMENTS = VALID.decode("latin-1").split("\n")


def mutated(segments: list[str], edits: list[tuple[str, int, int, str]]) -> bytes:
    """`segments` after each edit: drop, repeat, swap with another, or replace by text."""
    out = list(segments)
    for what, i, j, text in edits:
        if not out:
            break
        i, j = i % len(out), j % len(out)
        if what == "drop":
            del out[i]
        elif what == "repeat":
            out.insert(j, out[i])
        elif what == "swap":
            out[i], out[j] = out[j], out[i]
        else:
            out[i] = text
    return "\n".join(out).encode("latin-1", errors="replace")


edits = st.lists(
    st.tuples(
        st.sampled_from(["drop", "repeat", "swap", "replace"]),
        st.integers(0, 200),
        st.integers(0, 200),
        st.text(max_size=40),
    ),
    min_size=1,
    max_size=4,
)


@FAST
@given(edits)
def test_segments_lost_repeated_swapped_or_replaced_only_ever_get_a_rejection(
    changes: list[tuple[str, int, int, str]],
) -> None:
    invoices_or_rejection(mutated(SEGMENTS, changes))


@FAST
@given(cut=st.integers(0, len(VALID)), tail=st.binary(max_size=60))
def test_a_transfer_cut_anywhere_and_followed_by_garbage_only_gets_a_rejection(
    cut: int, tail: bytes
) -> None:
    invoices_or_rejection(VALID[:cut] + tail)


@FAST
@given(
    syntax=st.sampled_from(SYNTAXES),
    codec=st.sampled_from(CODECS),
    text=st.text(max_size=200),
)
def test_any_text_in_any_encoding_behind_a_valid_header_only_gets_a_rejection(
    syntax: str, codec: str, text: str
) -> None:
    header = f"UNA:+.? 'UNB+{syntax}:3+3012345000004:14+3098765000001:14+240301:0830+1'"
    invoices_or_rejection((header + text).encode(codec, errors="replace"))


@settings(max_examples=60, deadline=None)
@given(
    numbers=st.lists(st.integers(0, 10**6), min_size=1, max_size=4, unique=True),
    lines=st.integers(1, 8),
    syntax=st.sampled_from(SYNTAXES),
    decimal_mark=st.sampled_from([".", ","]),
    date=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31)),
    tax_rate=st.sampled_from([Decimal(0), Decimal("5.5"), Decimal("20.00")]),
)
def test_a_valid_interchange_in_any_syntax_and_decimal_mark_reads_back_its_totals(
    numbers: list[int],
    lines: int,
    syntax: str,
    decimal_mark: str,
    date: dt.date,
    tax_rate: Decimal,
) -> None:
    specs = [
        sample_invoice(n, f"F{n}", lines, credit_note=n % 2 == 1, date=date, tax_rate=tax_rate)
        for n in numbers
    ]
    data = make_interchange(specs, syntax=syntax, decimal_mark=decimal_mark)
    invoices = parse_invoic(data)
    assert invoices == [spec.expected(syntax) for spec in specs]
    for invoice, spec in zip(invoices, specs, strict=True):
        assert (invoice.net, invoice.tax, invoice.gross) == (spec.net, spec.tax, spec.gross)
        assert sum(line.amount for line in invoice.lines) == invoice.net


# --- BBGR -----------------------------------------------------------------------------


def cells(kind: str) -> list[list[str]]:
    text = make_bbgr_csv(kind, 6, bad_rows=[4], seed=1).decode("utf-8-sig")
    return [line.split(";") for line in text.split("\r\n")]


@FAST
@given(
    kind=st.sampled_from(KINDS),
    changes=st.lists(
        st.tuples(st.integers(0, 50), st.integers(0, 50), st.text(max_size=30)),
        min_size=1,
        max_size=5,
    ),
    codec=st.sampled_from(CODECS),
)
def test_an_export_with_any_cells_replaced_in_any_encoding_only_gets_row_errors_or_a_rejection(
    kind: str, changes: list[tuple[int, int, str]], codec: str
) -> None:
    table = cells(kind)
    for row, column, text in changes:
        line = table[row % len(table)]
        if line:
            line[column % len(line)] = text
    data = "\r\n".join(";".join(line) for line in table).encode(codec, errors="replace")
    rows_or_rejection(kind, data)


@FAST
@given(
    kind=st.sampled_from(KINDS),
    lines=st.lists(st.integers(0, 50), max_size=10),
    cut=st.integers(0, 2000),
)
def test_an_export_with_rows_shuffled_repeated_or_cut_only_gets_row_errors_or_a_rejection(
    kind: str, lines: list[int], cut: int
) -> None:
    table = cells(kind)
    chosen = [table[i % len(table)] for i in lines] or table
    data = "\r\n".join(";".join(line) for line in chosen).encode()
    rows_or_rejection(kind, data[:cut])


# --- hostile sizes (issue 15) -----------------------------------------------------------------

HOSTILE = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# every kind of character a hostile file may hold, the service characters included
CHARACTERS = st.sampled_from(["9", "x", "+", ":", "?", "'", "é", "\u2028", "\x00", "\n", ";"])


def sized(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, CHARACTERS, lengths)


@HOSTILE
@given(
    where=st.sampled_from(["UNT+", "UNZ+", "LIN+", "QTY+47:", "MOA+79:", "BGM+380+", "UNH+"]),
    text=sized(st.integers(0, 20_000)),
)
def test_a_value_of_any_size_and_character_only_gets_a_result_or_a_rejection(
    where: str, text: str
) -> None:
    data = VALID.replace(where.encode(), where.encode() + text.encode(), 1)
    started = time.perf_counter()
    invoices_or_rejection(data)
    assert time.perf_counter() - started < 30


@HOSTILE
@given(
    elements=st.integers(0, 400_000),
    components=st.integers(0, 2_000),
    text=sized(st.integers(0, 2_000)),
)
def test_a_segment_of_any_number_of_elements_and_components_only_gets_a_rejection_or_a_result(
    elements: int, components: int, text: str
) -> None:
    segment = "FTX+AAI" + "+" * elements + ":" * components + text + "'"
    data = VALID.replace(b"UNS+S'", segment.encode() + b"UNS+S'", 1)
    started = time.perf_counter()
    invoices_or_rejection(data)
    assert time.perf_counter() - started < 30


@HOSTILE
@given(
    kind=st.sampled_from(KINDS),
    fields=st.integers(0, 5_000),
    cell=sized(st.integers(0, 200_000)),
    rows=st.integers(1, 60_000),
)
def test_an_export_of_any_width_cell_size_or_length_only_gets_row_errors_or_a_rejection(
    kind: str, fields: int, cell: str, rows: int
) -> None:
    table = cells(kind)
    header = ";".join(table[0])
    hostile = ";".join([cell] * max(fields, 1))
    body = "\r\n".join([header, hostile] + [";".join(table[1])] * (rows - 1))
    started = time.perf_counter()
    rows_or_rejection(kind, body.encode())
    assert time.perf_counter() - started < 30
