"""How one event changes one progress document: pure functions, no I/O.

A document is a plain dict shaped like `ProgressDocument`, plus private fields
(leading underscore) that are never shown to users:

- `_seen`: ids of the item events already counted, so a redelivered event is not
  counted twice (the id is stable for one piece of work, see `stable_event_id`). Kept
  as one binary string of 16-byte UUIDs, not a list of strings: with 10,000 ids,
  FerretDB took 33 ms to replace the document with the list and 5 ms with the bytes
  (docs/performance.md); a list written by an earlier version is read as well;
- `_task_seq`: the colis pipeline's own per-task `seq` of the last applied step, so a
  late or reordered step never moves a task backwards (it only adds to the history:
  when the task began, its error).

`apply_events` applies a batch of one job's events in order: the new document, or None
when no event changes anything (a duplicate, a stale step that adds nothing, anything
after the terminal status), and each event's outcome. `apply_event` is the same for one event.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from jauge_shared.contracts import (
    ColisStepChanged,
    Event,
    FileImported,
    ImportCleanupStarted,
    ImportFinished,
    ImportQueued,
    ImportStarted,
    ImportStatus,
    ProgressStatus,
    TaskStatus,
)
from jauge_shared.contracts.colis import CLOSED_STATUSES
from jauge_shared.errors import TransientError

Document = dict[str, Any]

TERMINAL = {
    s.value for s in (ProgressStatus.COMPLETED, ProgressStatus.FAILED, ProgressStatus.CANCELLED)
}
FINAL_TASK_STATUSES = {status.value for status in CLOSED_STATUSES}

_TASK_TO_PROGRESS: dict[TaskStatus, ProgressStatus] = {
    TaskStatus.PENDING: ProgressStatus.QUEUED,
    TaskStatus.COMPLETED: ProgressStatus.COMPLETED,
    TaskStatus.FAILED: ProgressStatus.FAILED,
    TaskStatus.FAILED_FINAL: ProgressStatus.FAILED,
    TaskStatus.CANCELLED: ProgressStatus.CANCELLED,
}


class ItemsStillInFlightError(TransientError):
    """The end of a job arrived before some of its items: apply it later."""


@dataclass(frozen=True)
class Limits:
    recent: int = 20
    errors: int = 200


@dataclass
class _Batch:
    """What the events of one batch share: the limits, and `_seen` as a set.

    A job of 20,000 files carries 20,000 ids in `_seen`: looking one up in the list, or
    copying the list for each event, made a big job quadratic (profiled), so a batch
    copies the list once, appends to its own copy and looks ids up in this set.
    """

    limits: Limits
    seen: set[bytes]


def import_title(kind: str) -> str:
    return (
        "Import des factures EDI" if kind == "edi" else f"Import BBGR {kind.removeprefix('bbgr_')}"
    )


def final_import_message(processed: int, failed: int) -> str:
    files = "fichier traité" if processed <= 1 else "fichiers traités"
    text = f"Import terminé : {processed} {files}"
    if failed:
        text += f", {failed} en erreur"
    return text


def _new_document(
    event: Event, kind: str, owner: str, title: str, status: ProgressStatus
) -> Document:
    return {
        "_id": event.job_id,
        "kind": kind,
        "owner": owner,
        "title": title,
        "status": status.value,
        "step_status": None,
        "total": 0,
        "processed": 0,
        "failed": 0,
        "percent": 0.0,
        "current_step": "",
        "message": "",
        "errors": [],
        "recent": [],
        "queue_position": None,
        "created_at": event.occurred_at,
        "started_at": None,
        "finished_at": None,
        "updated_at": event.occurred_at,
        "duration_s": None,
        "eta_s": None,
        "seq": 0,
        "_seen": bytearray(),
    }


def _seconds(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def _refresh_figures(doc: Document, now: datetime) -> None:
    total, processed = doc["total"], doc["processed"]
    doc["percent"] = round(100.0 * processed / total, 2) if total else 0.0
    doc["duration_s"] = _seconds(doc.get("started_at"), doc.get("finished_at") or now)
    eta = None
    if doc["status"] == ProgressStatus.RUNNING.value and total and 0 < processed < total:
        elapsed = doc["duration_s"] or 0.0
        eta = round(elapsed / processed * (total - processed), 1)
    doc["eta_s"] = eta
    doc["updated_at"] = now


def _on_queued(doc: Document | None, event: ImportQueued, batch: _Batch) -> Document | None:
    if doc is None:
        doc = _new_document(
            event, f"import.{event.kind.value}", event.user_id, event.title, ProgressStatus.QUEUED
        )
    elif (
        doc["status"] != ProgressStatus.QUEUED.value or doc.get("queue_position") == event.position
    ):
        return None
    doc["queue_position"] = event.position
    doc["current_step"] = "En attente"
    doc["message"] = (
        "En attente : démarrera à la fin de l'import en cours"
        if event.position <= 1
        else f"En attente : position {event.position} dans la file"
    )
    _refresh_figures(doc, event.occurred_at)
    return doc


def _on_started(doc: Document | None, event: ImportStarted, batch: _Batch) -> Document | None:
    if doc is None:
        doc = _new_document(
            event, f"import.{event.kind.value}", event.user_id, event.title, ProgressStatus.RUNNING
        )
    elif doc["status"] in TERMINAL or doc.get("started_at") is not None:
        return None
    doc.update(
        status=ProgressStatus.RUNNING.value,
        owner=event.user_id,
        title=event.title,
        total=max(event.total, doc["processed"]),
        started_at=event.occurred_at,
        queue_position=None,
        current_step="Traitement des fichiers",
        message=f"{event.total} à traiter",
    )
    _refresh_figures(doc, event.occurred_at)
    return doc


def _on_file(doc: Document | None, event: FileImported, batch: _Batch) -> Document | None:
    key = event.event_id.bytes
    if doc is None:
        # an item that overtook import.started: count it, the start fills in the rest
        doc = _new_document(event, "import", "", "", ProgressStatus.RUNNING)
    elif doc["status"] in TERMINAL or key in batch.seen:
        return None
    if doc["total"] and doc["processed"] >= doc["total"]:
        return None
    doc["processed"] += 1
    result = {"item": event.item, "ok": event.ok, "error": event.error, "at": event.occurred_at}
    if not event.ok:
        doc["failed"] += 1
        doc["errors"] = [*doc["errors"], result][-batch.limits.errors :]
    doc["recent"] = [result, *doc["recent"]][: batch.limits.recent]
    doc["message"] = (
        f"{event.item} importé" if event.ok else f"Erreur sur {event.item} : {event.error}"
    )
    _refresh_figures(doc, event.occurred_at)
    # last, so an event that failed above leaves no trace: the list is the batch's own
    doc["_seen"] += key  # the batch's own bytearray, extended in place
    batch.seen.add(key)
    return doc


def _on_cleanup(
    doc: Document | None, event: ImportCleanupStarted, batch: _Batch
) -> Document | None:
    if doc is None or doc["status"] != ProgressStatus.RUNNING.value:
        return None
    if doc["current_step"] == "Nettoyage":
        return None
    doc["current_step"] = "Nettoyage"
    doc["message"] = "Nettoyage et recalcul des totaux…"
    _refresh_figures(doc, event.occurred_at)
    return doc


def _on_finished(doc: Document | None, event: ImportFinished, batch: _Batch) -> Document | None:
    if doc is None:
        doc = _new_document(event, "import", "", "", ProgressStatus.RUNNING)
    elif doc["status"] in TERMINAL:
        return None
    if event.processed > doc["processed"]:
        # another replica still holds some of this job's file.imported: counts must be
        # exact when the job ends, so wait for them (the message is retried shortly)
        raise ItemsStillInFlightError(
            f"job {event.job_id}: finished after {event.processed} items, "
            f"{doc['processed']} applied so far"
        )
    status = ProgressStatus(event.status.value)
    message = event.message
    if not message:
        message = (
            final_import_message(doc["processed"], doc["failed"])
            if event.status is ImportStatus.COMPLETED
            else (event.error or "Import interrompu")
        )
    doc.update(
        status=status.value,
        finished_at=event.occurred_at,
        current_step="Terminé" if status is ProgressStatus.COMPLETED else "Interrompu",
        message=message,
        queue_position=None,
    )
    if event.error:
        doc["error"] = event.error
    _refresh_figures(doc, event.occurred_at)
    if status is ProgressStatus.COMPLETED:
        doc["percent"] = 100.0
    doc["eta_s"] = None
    return doc


def _on_step(doc: Document | None, event: ColisStepChanged, batch: _Batch) -> Document | None:
    if doc is None:
        doc = _new_document(
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
        # what colis-svc says may be done now: the gateway shows it, never recomputes it
        can_retry=event.can_retry,
        can_force_retry=event.can_force_retry,
        can_cancel=event.can_cancel,
    )
    if event.error:
        entry = {"item": event.step, "ok": False, "error": event.error, "at": event.occurred_at}
        doc["errors"] = [*doc["errors"], entry][-batch.limits.errors :]
    if doc.get("started_at") is None and event.status is not TaskStatus.PENDING:
        doc["started_at"] = event.occurred_at
    doc["finished_at"] = event.occurred_at if status.value in TERMINAL else None
    _refresh_figures(doc, event.occurred_at)
    doc["percent"] = float(event.percent)
    return doc


def _merge_late_step(doc: Document, event: ColisStepChanged, batch: _Batch) -> Document | None:
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
    _refresh_figures(doc, doc["updated_at"])
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


_HANDLERS: dict[type[Event], Any] = {
    ImportQueued: _on_queued,
    ImportStarted: _on_started,
    FileImported: _on_file,
    ImportCleanupStarted: _on_cleanup,
    ImportFinished: _on_finished,
    ColisStepChanged: _on_step,
}

PROGRESS_EVENTS: tuple[type[Event], ...] = tuple(_HANDLERS)


Outcome = bool | Exception


def apply_events(
    doc: Document | None, events: list[Event], limits: Limits = Limits()
) -> tuple[Document | None, list[Outcome]]:
    """The document after `events` in order (None if none changes it), and each event's
    outcome: True if applied, False if it changed nothing, or the exception it raised
    (that event alone is left out). `doc` itself is left untouched."""
    work = doc
    seen: set[bytes] = set()
    stored = None
    if work is not None and "_seen" in work:
        stored = work["_seen"]
        ids = _seen_bytes(stored)
        work = {**work, "_seen": ids}
        known = _SEEN_SETS.take(stored)
        seen = (
            known
            if known is not None
            else {bytes(ids[i : i + _ID]) for i in range(0, len(ids), _ID)}
        )
    batch = _Batch(limits, seen)
    outcomes: list[Outcome] = []
    for event in events:
        try:
            # handlers replace nested values rather than mutate them (but for the
            # batch's own `_seen`), so a shallow copy keeps `work` as it was on failure
            new = _HANDLERS[type(event)](dict(work) if work is not None else None, event, batch)
        except Exception as e:
            outcomes.append(e)
            continue
        if new is None:
            outcomes.append(False)
            continue
        new["seq"] = (work["seq"] if work is not None else 0) + 1
        work = new
        outcomes.append(True)
    if not any(o is True for o in outcomes):
        if isinstance(stored, bytes):
            _SEEN_SETS.keep(stored, seen)  # unchanged: no id was added
        return None, outcomes
    assert work is not None
    if isinstance(work.get("_seen"), bytearray):
        work["_seen"] = bytes(work["_seen"])  # stored as BSON binary
        _SEEN_SETS.keep(work["_seen"], seen)
    return work, outcomes


_ID = 16  # bytes of a UUID


class _SeenSets:
    """The set of ids of recent `_seen` values, so a job's next batch need not rebuild it
    from the bytes (20,000 slices: 9% of progress-svc's time on one big job, profiled).

    Keyed by the bytes object itself: the next batch of a job gets the very object the
    previous one produced (progress-svc keeps the documents it wrote), and bytes never
    change. A set is taken, not shared: the batch adds to it, and a batch whose write
    then fails leaves it under a document that was never stored, so nothing reuses it.
    """

    def __init__(self, size: int = 64) -> None:
        self._sets: OrderedDict[int, tuple[bytes, set[bytes]]] = OrderedDict()
        self._size = size

    def take(self, stored: object) -> set[bytes] | None:
        entry = self._sets.pop(id(stored), None)
        return entry[1] if entry is not None and entry[0] is stored else None

    def keep(self, stored: bytes, ids: set[bytes]) -> None:
        self._sets[id(stored)] = (stored, ids)
        while len(self._sets) > self._size:
            self._sets.popitem(last=False)


_SEEN_SETS = _SeenSets()


def _seen_bytes(stored: bytes | list[str]) -> bytearray:
    """The batch's own copy of `_seen`, whichever form it was stored in."""
    if isinstance(stored, list):  # written by a version that kept a list of strings
        return bytearray(b"".join(UUID(key).bytes for key in stored))
    return bytearray(stored)


def apply_event(doc: Document | None, event: Event, limits: Limits = Limits()) -> Document | None:
    """The document after `event`, or None if the event changes nothing."""
    new, (outcome,) = apply_events(doc, [event], limits)
    if isinstance(outcome, Exception):
        raise outcome
    return new


def public_view(doc: Document) -> Document:
    """The document without its private bookkeeping."""
    return {k: v for k, v in doc.items() if not k.startswith("_") or k == "_id"}
