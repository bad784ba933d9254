"""Time and peak memory of the readers on the worst files their limits allow (issue 15).

Ceilings are generous (the machine is shared and tracemalloc slows Python down about
twice); the figures measured are in docs/imports.md, "Limits". The two full-size EDI
cases take a minute under tracemalloc and are marked slow; the suite runs a scaled one.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from import_svc.domain import FileRejectedError, bbgr, edifact, parse_invoic, read_bbgr
from jauge_testkit.import_files import make_interchange, sample_invoice

MB = 1024 * 1024
GOOD = make_interchange([sample_invoice(1, "F-1", 2)], ref="R1")
RETOURS_HEADER = "Date;Numéro retour;Code article;Désignation;Quantité;Motif\r\n".encode()


def cost(read: Callable[[], Any]) -> tuple[float, int, str]:
    """Seconds, peak bytes allocated, and 'read' or the rejection's reason."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        read()
        outcome = "read"
    except FileRejectedError as e:
        outcome = e.reason
    finally:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"{elapsed:.2f} s, peak {peak / MB:.1f} MiB: {outcome[:60]}")  # shown with -s
    return elapsed, peak, outcome


def edi_with(segment: bytes, size: int) -> bytes:
    """GOOD with as many copies of `segment` (in its one message) as fit in `size` bytes."""
    copies = (size - len(GOOD)) // len(segment)
    return GOOD.replace(b"UNS+S'", segment * copies + b"UNS+S'", 1)


LONGEST_SEGMENT = b"FTX+AAI" + b"+" + b"+".join([b"x" * 80] * 98) + b"'\n"
SHORT_SEGMENT = b"FTX+A'"


def test_the_longest_segments_the_limits_allow_2_mib() -> None:
    assert len(LONGEST_SEGMENT) <= edifact.MAX_SEGMENT_CHARS
    data = edi_with(LONGEST_SEGMENT, 2 * MB)
    elapsed, peak, outcome = cost(lambda: parse_invoic(data))
    assert "UNT annonce" in outcome  # read to the end, then refused on its count
    assert elapsed < 60, elapsed
    assert peak < 32 * MB, peak


def test_50000_short_segments_in_one_message() -> None:
    data = edi_with(SHORT_SEGMENT, 50_000 * len(SHORT_SEGMENT))
    elapsed, peak, outcome = cost(lambda: parse_invoic(data))
    assert "UNT annonce" in outcome
    assert elapsed < 60, elapsed
    assert peak < 64 * MB, peak


@pytest.mark.slow
def test_the_largest_edi_file_the_limits_allow() -> None:
    data = edi_with(LONGEST_SEGMENT, edifact.MAX_EDI_BYTES)
    assert len(data) <= edifact.MAX_EDI_BYTES
    elapsed, peak, outcome = cost(lambda: parse_invoic(data))
    assert "UNT annonce" in outcome
    assert elapsed < 240, elapsed
    assert peak < 256 * MB, peak


@pytest.mark.slow
def test_the_most_segments_the_limits_allow_in_one_message() -> None:
    data = edi_with(SHORT_SEGMENT, (edifact.MAX_SEGMENTS - 30) * len(SHORT_SEGMENT))
    elapsed, peak, outcome = cost(lambda: parse_invoic(data))
    assert "UNT annonce" in outcome
    assert elapsed < 180, elapsed
    assert peak < 192 * MB, peak


def test_the_most_rows_the_limits_allow_with_long_cells() -> None:
    row = b"05/02/2024;RET-%06d;3760000000017;" + b"D" * 250 + b";2;Casse\r\n"
    data = RETOURS_HEADER + b"".join(row % i for i in range(bbgr.MAX_ROWS))
    assert len(data) <= bbgr.MAX_BBGR_BYTES
    elapsed, peak, outcome = cost(lambda: read_bbgr("bbgr_retours", data))
    assert outcome == "read"
    assert elapsed < 60, elapsed
    assert peak < 256 * MB, peak


def test_16_mib_of_short_rows_stop_at_the_row_limit() -> None:
    rows = (bbgr.MAX_BBGR_BYTES - len(RETOURS_HEADER)) // 25
    data = RETOURS_HEADER + b"".join(b"01/02/2024;%05x;A;D;1;\r\n" % i for i in range(rows))
    assert len(data) <= bbgr.MAX_BBGR_BYTES
    elapsed, peak, outcome = cost(lambda: read_bbgr("bbgr_retours", data))
    assert outcome.startswith("Le fichier compte plus de 50 000 lignes")
    assert elapsed < 30, elapsed
    assert peak < 256 * MB, peak
