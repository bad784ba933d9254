"""The events of an import, built from what is stored: a job document, its files' results.

Every builder is a pure function of stored state with an id derived from the work, so
announcing again (a lost publish, a redelivery) sends the same event a consumer already
has, and changes nothing.
"""

from __future__ import annotations

from typing import Any

from import_svc.processing import FileOutcome
from import_svc.repository import FileState
from jauge_shared.contracts import (
    FileImported,
    ImportCleanupStarted,
    ImportFile,
    ImportFinished,
    ImportKind,
    ImportQueued,
    ImportStarted,
    ImportStatus,
    stable_event_id,
)
from jauge_shared.contracts.imports import cancelled_import_message, final_import_message

PRODUCER = "import-svc"


def queued_event(job: dict[str, Any], position: int) -> ImportQueued:
    return ImportQueued(
        event_id=stable_event_id(job["_id"], "queued", str(position)),
        producer=PRODUCER,
        job_id=job["_id"],
        kind=ImportKind(job["kind"]),
        user_id=job["user_id"],
        title=job["title"],
        position=position,
    )


def started_event(job: dict[str, Any]) -> ImportStarted:
    return ImportStarted(
        event_id=stable_event_id(job["_id"], "started"),
        producer=PRODUCER,
        job_id=job["_id"],
        kind=ImportKind(job["kind"]),
        user_id=job["user_id"],
        title=job["title"],
        total=job["total"],
    )


def file_command(job: dict[str, Any], file: dict[str, Any]) -> ImportFile:
    """The command that has one replica read one file of the job."""
    return ImportFile(
        event_id=stable_event_id(job["_id"], "file", file["name"]),
        producer=PRODUCER,
        job_id=job["_id"],
        kind=ImportKind(job["kind"]),
        item=file["name"],
        index=file["index"],
    )


def cleanup_event(job_id: str) -> ImportCleanupStarted:
    return ImportCleanupStarted(
        event_id=stable_event_id(job_id, "cleanup"), producer=PRODUCER, job_id=job_id
    )


def finished_event(
    job: dict[str, Any], status: ImportStatus, error: str | None, files: list[dict[str, Any]]
) -> ImportFinished:
    """The job's end, counted from what was announced (file.imported confirmed), so
    progress-svc, which refuses a finish ahead of what it applied, always agrees."""
    announced = [d for d in files if d["state"] == FileState.ANNOUNCED.value]
    processed = sum(len(d.get("items") or [d]) for d in announced)
    if job.get("total") is not None:
        processed = min(processed, job["total"])  # progress-svc never counts past total
    failed = min(sum(failed_units(d) for d in announced), processed)
    invoices = sum(d.get("invoices", 0) for d in announced)
    rows = job["kind"] != ImportKind.EDI.value
    message = final_import_message(processed, failed, rows=rows) if error is None else error
    if status is ImportStatus.CANCELLED:
        returned = sum(1 for d in files if d["state"] == FileState.RETURNED.value)
        message = (
            cancelled_import_message(
                processed, failed, returned, uploads=bool(job.get("upload_ids"))
            )
            if job.get("total") is not None
            else "Import annulé avant son démarrage : aucun fichier n'a été touché"
        )
    return ImportFinished(
        event_id=stable_event_id(job["_id"], "finished"),
        producer=PRODUCER,
        job_id=job["_id"],
        status=status,
        error=error,
        processed=processed,
        failed=failed,
        invoices=invoices,
        message=message,
    )


def file_result(outcome: FileOutcome) -> dict[str, Any]:
    """What is stored of a file's reading: enough to announce it again, the same."""
    result: dict[str, Any] = {
        "ok": outcome.ok,
        "error": outcome.error,
        "invoices": len(outcome.invoices),
        "lines": outcome.lines,
        "rows": len(outcome.rows),
        "failed_rows": outcome.failed_rows,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.rows:
        # kept so that a redelivery re-announces the same row events after a crash
        result["items"] = [{"line": row.line_no, "error": row.error} for row in outcome.rows]
    return result


def failed_units(file: dict[str, Any]) -> int:
    if file.get("items"):
        return int(file.get("failed_rows", 0))
    return 0 if file.get("ok") else 1


def item_events(job_id: str, file: dict[str, Any]) -> list[FileImported]:
    """The gauge items of a finished file: the file itself, or each of its BBGR rows."""
    name = file["name"]
    if not file.get("items"):
        return [
            FileImported(
                event_id=stable_event_id(job_id, "file", name),
                producer=PRODUCER,
                job_id=job_id,
                item=name,
                ok=file["ok"],
                error=file.get("error"),
                invoices=file.get("invoices", 0),
                lines=file.get("lines", 0),
                duration_ms=file.get("duration_ms", 0),
            )
        ]
    return [
        FileImported(
            event_id=stable_event_id(job_id, "row", name, str(item["line"])),
            producer=PRODUCER,
            job_id=job_id,
            item=f"{name} ligne {item['line']}",
            ok=item["error"] is None,
            error=item["error"],
            lines=1,
        )
        for item in file["items"]
    ]
