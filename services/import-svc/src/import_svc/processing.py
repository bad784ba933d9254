"""Reading one import file: bytes in, a result and what it holds, out.

CPU-bound and synchronous on purpose; the service runs it in a worker thread so the
event loop keeps acknowledging, renewing the lease and answering /readyz meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from import_svc.domain import BbgrRow, FileRejectedError, parse_invoic, read_bbgr
from jauge_shared.contracts import ImportKind

# the natural key of each BBGR kind's rows: re-importing a row updates it
BBGR_KEYS: dict[ImportKind, tuple[str, ...]] = {
    ImportKind.BBGR_STATMENT: ("reference", "date"),
    ImportKind.BBGR_MONTHLY: ("mois", "code_client"),
    ImportKind.BBGR_RETOURS: ("numero_retour", "code_article"),
    ImportKind.BBGR_RECEPTIONS: ("numero_bl", "code_article"),
}
MAX_ERROR_ROWS_IN_NOTE = 50

logger = logging.getLogger("import_svc")


def unexpected_failure(path: Path, error: BaseException) -> str:
    """The French reason of a file whose reader failed in a way nobody planned for.

    Logged with its traceback for the developers; the accountant is told the file was
    not imported, and the import goes on with the other files (a message that escaped
    here used to be dead-lettered, leaving the import running and the queue stuck).
    """
    logger.exception(
        "unexpected error reading an import file",
        exc_info=error,
        extra={"file": path.name, "error_type": type(error).__name__},
    )
    return (
        "Le fichier n'a pas pu être lu (erreur inattendue du lecteur : "
        f"{type(error).__name__}) : il n'est pas importé. Signalez-le à l'équipe technique."
    )


@dataclass(frozen=True)
class RowResult:
    """One BBGR data row: its gauge item, and its typed values or why it failed."""

    line_no: int
    error: str | None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileOutcome:
    ok: bool
    error: str | None = None
    invoices: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    rows: list[RowResult] = field(default_factory=list)
    duration_ms: int = 0

    @property
    def failed_rows(self) -> int:
        return sum(1 for row in self.rows if row.error)


def _check_size(path: Path, max_bytes: int) -> None:
    size = path.stat().st_size
    if size > max_bytes:
        raise FileRejectedError(
            f"Fichier trop volumineux : {size // (1024 * 1024)} Mo "
            f"(maximum {max_bytes // (1024 * 1024)} Mo)"
        )


def gauge_units(kind: ImportKind, path: Path, max_bytes: int) -> int:
    """How many gauge items a file counts for: 1, or its data rows for a BBGR file.

    A BBGR file that cannot be read as a table still counts for one item, its failure.
    """
    if kind is ImportKind.EDI:
        return 1
    try:
        _check_size(path, max_bytes)
        return max(len(read_bbgr(kind.value, path.read_bytes()).rows), 1)
    except Exception:  # the file will fail when it is processed, with its reason
        return 1


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _row_result(row: BbgrRow) -> RowResult:
    return RowResult(
        line_no=row.line_no,
        error=row.error,
        values={k: _json_value(v) for k, v in row.values.items()},
    )


def row_key(kind: ImportKind, values: dict[str, Any]) -> str:
    return "|".join(str(values.get(name, "")) for name in BBGR_KEYS[kind])


def process_file(kind: ImportKind, path: Path, max_bytes: int) -> FileOutcome:
    started = time.perf_counter()
    try:
        _check_size(path, max_bytes)
        data = path.read_bytes()
        if kind is ImportKind.EDI:
            invoices = [invoice.to_document() for invoice in parse_invoic(data)]
            outcome = FileOutcome(
                ok=True, invoices=invoices, lines=sum(len(i["lines"]) for i in invoices)
            )
        else:
            table = read_bbgr(kind.value, data)
            rows = [_row_result(row) for row in table.rows]
            bad = [row for row in rows if row.error]
            error = None
            if bad:
                # the whole list goes to the .error.txt beside the file, bounded
                listed = "\n".join(
                    f"ligne {row.line_no} : {row.error}" for row in bad[:MAX_ERROR_ROWS_IN_NOTE]
                )
                more = len(bad) - MAX_ERROR_ROWS_IN_NOTE
                error = f"{len(bad)} ligne(s) en erreur sur {len(rows)} :\n{listed}" + (
                    f"\n… et {more} autre(s)" if more > 0 else ""
                )
            outcome = FileOutcome(ok=not bad, error=error, rows=rows)
    except FileRejectedError as e:
        outcome = FileOutcome(ok=False, error=e.reason)
    except OSError as e:
        outcome = FileOutcome(ok=False, error=f"Fichier illisible : {e.strerror or e}")
    except Exception as e:  # any other failure of a reader fails this file, never the job
        outcome = FileOutcome(ok=False, error=unexpected_failure(path, e))
    elapsed = int((time.perf_counter() - started) * 1000)
    return FileOutcome(
        ok=outcome.ok,
        error=outcome.error,
        invoices=outcome.invoices,
        lines=outcome.lines,
        rows=outcome.rows,
        duration_ms=elapsed,
    )
