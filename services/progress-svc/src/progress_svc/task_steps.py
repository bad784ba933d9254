"""How a colis task's `colis.step_changed` changes its progress document: pure, no I/O.

The pipeline's own per-task `seq` (`_task_seq`) decides: a late or reordered step never
moves a task backwards, it only adds to the history (when the task began, its error).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from jauge_shared.contracts import ColisStepChanged, ProgressStatus, TaskStatus
from progress_svc.document import TERMINAL, Batch, Document, new_document, refresh_figures

FINAL_TASK_STATUSES = {TaskStatus.COMPLETED.value, TaskStatus.CANCELLED.value}

_TASK_TO_PROGRESS: dict[TaskStatus, ProgressStatus] = {
    TaskStatus.PENDING: ProgressStatus.QUEUED,
    TaskStatus.COMPLETED: ProgressStatus.COMPLETED,
    TaskStatus.FAILED: ProgressStatus.FAILED,
    TaskStatus.FAILED_FINAL: ProgressStatus.FAILED,
    TaskStatus.CANCELLED: ProgressStatus.CANCELLED,
}


def on_step(doc: Document | None, event: ColisStepChanged, batch: Batch) -> Document | None:
    if doc is None:
        doc = new_document(
            event, f"colis.{event.operation.value}", event.user_id, "", ProgressStatus.QUEUED
        )
        doc.pop("_seen")
        doc["_task_seq"] = -1
    elif event.seq < doc.get("_task_seq", -1):
        return _merge_late_step(doc, event, batch)
    elif event.seq == doc.get("_task_seq", -1) or doc.get("step_status") in FINAL_TASK_STATUSES:
        return None
    status = _TASK_TO_PROGRESS.get(event.status, ProgressStatus.RUNNING)
    doc.update(
        _task_seq=event.seq,
        status=status.value,
        step_status=event.status.value,
        title=doc["title"] or _task_title(event),
        total=100,
        processed=event.percent,
        failed=1 if status is ProgressStatus.FAILED else 0,
        current_step=event.step,
        message=event.error or event.step,
        retry_count=event.retry_count,
        max_retries=event.max_retries,
        next_retry_at=event.next_retry_at,
        colis_id=event.colis_id or doc.get("colis_id"),
        numero_suivi=event.numero_suivi or doc.get("numero_suivi"),
        lot_id=event.lot_id,
        summary=event.summary or doc.get("summary") or {},
    )
    if event.error:
        entry = {"item": event.step, "ok": False, "error": event.error, "at": event.occurred_at}
        doc["errors"] = [*doc["errors"], entry][-batch.limits.errors :]
    if doc.get("started_at") is None and event.status is not TaskStatus.PENDING:
        doc["started_at"] = event.occurred_at
    doc["finished_at"] = event.occurred_at if status.value in TERMINAL else None
    refresh_figures(doc, event.occurred_at)
    doc["percent"] = float(event.percent)
    return doc


def _merge_late_step(doc: Document, event: ColisStepChanged, batch: Batch) -> Document | None:
    """A step older than the one shown: it never moves the task backwards, but what it
    adds to the history is kept (when the task began, its error), so the document ends
    as after the steps in order. None if it adds nothing (a duplicate, say)."""
    before = (doc["created_at"], doc.get("started_at"), doc["errors"])
    doc["created_at"] = min(doc["created_at"], event.occurred_at)
    if event.status is not TaskStatus.PENDING:
        started = doc.get("started_at") or event.occurred_at
        doc["started_at"] = min(started, event.occurred_at)
    if event.error:
        entry = {"item": event.step, "ok": False, "error": event.error, "at": event.occurred_at}
        if _error_key(entry) not in {_error_key(e) for e in doc["errors"]}:
            # in time order, as the steps happened; the list keeps the latest errors
            errors = sorted([*doc["errors"], entry], key=lambda e: e["at"])
            doc["errors"] = errors[-batch.limits.errors :]
    if (doc["created_at"], doc.get("started_at"), doc["errors"]) == before:
        return None
    refresh_figures(doc, doc["updated_at"])
    doc["percent"] = float(doc["processed"])
    return doc


def _error_key(entry: Document) -> tuple[Any, ...]:
    """An error entry as the store keeps it: BSON dates have milliseconds, so an entry
    read back differs from the event it came from in its microseconds."""
    at = entry["at"]
    if isinstance(at, datetime):
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
    return (entry["item"], entry["error"], at)


def _task_title(event: ColisStepChanged) -> str:
    verb = "Création" if event.operation.value == "create" else "Modification"
    client = event.summary.get("client") if event.summary else None
    return f"{verb} de colis" + (f" – {client}" if client else "")
