"""Reading one import file: bytes in, a result and the invoices found, out.

CPU-bound and synchronous on purpose; the service runs it in a worker thread so the
event loop keeps acknowledging, renewing the lease and answering /readyz meanwhile.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from import_svc.domain import FileRejectedError, parse_invoic, read_bbgr
from jauge_shared.contracts import ImportKind


@dataclass(frozen=True)
class FileOutcome:
    ok: bool
    error: str | None = None
    invoices: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    rows: int = 0
    duration_ms: int = 0


def process_file(kind: ImportKind, path: Path, max_bytes: int) -> FileOutcome:
    started = time.perf_counter()
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileRejectedError(
                f"Fichier trop volumineux : {size // (1024 * 1024)} Mo "
                f"(maximum {max_bytes // (1024 * 1024)} Mo)"
            )
        data = path.read_bytes()
        if kind is ImportKind.EDI:
            invoices = [invoice.to_document() for invoice in parse_invoic(data)]
            outcome = FileOutcome(
                ok=True, invoices=invoices, lines=sum(len(i["lines"]) for i in invoices)
            )
        else:
            table = read_bbgr(kind.value, data)
            bad = [row for row in table.rows if row.error]
            error = None
            if bad:
                error = (
                    f"{len(bad)} ligne(s) en erreur, dont ligne {bad[0].line_no} : {bad[0].error}"
                )
            outcome = FileOutcome(ok=not bad, error=error, rows=len(table.rows))
    except FileRejectedError as e:
        outcome = FileOutcome(ok=False, error=e.reason)
    except OSError as e:
        outcome = FileOutcome(ok=False, error=f"Fichier illisible : {e.strerror or e}")
    elapsed = int((time.perf_counter() - started) * 1000)
    return FileOutcome(
        ok=outcome.ok,
        error=outcome.error,
        invoices=outcome.invoices,
        lines=outcome.lines,
        rows=outcome.rows,
        duration_ms=elapsed,
    )
