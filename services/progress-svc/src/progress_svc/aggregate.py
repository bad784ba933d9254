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

`apply_batch` applies a batch of one job's events in order: the new document, or None
when no event changes anything (a duplicate, a stale step that adds nothing, anything
after the terminal status), and each event's outcome. `apply_event` is the same for one
event. Nothing is kept between calls: the cache of `_seen` sets is the service's
(`progress_svc.service.SeenSets`).
"""

from __future__ import annotations

from dataclasses import dataclass
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
)
from jauge_shared.contracts.imports import final_import_message
from jauge_shared.errors import TransientError
from progress_svc.document import TERMINAL, Batch, Document, Limits, new_document, refresh_figures
from progress_svc.task_steps import on_step

# what the service, the repository and the reconciler read from here
__all__ = [
    "TERMINAL",
    "Applied",
    "Document",
    "ItemsStillInFlightError",
    "Limits",
    "Outcome",
    "apply_batch",
    "apply_event",
    "apply_events",
    "public_view",
]


DEFAULT_LIMITS = Limits()


class ItemsStillInFlightError(TransientError):
    """The end of a job arrived before some of its items: apply it later."""


def _on_queued(doc: Document | None, event: ImportQueued, batch: Batch) -> Document | None:
    if doc is None:
        doc = new_document(
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
    refresh_figures(doc, event.occurred_at)
    return doc


def _on_started(doc: Document | None, event: ImportStarted, batch: Batch) -> Document | None:
    if doc is None:
        doc = new_document(
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
    refresh_figures(doc, event.occurred_at)
    return doc


def _on_file(doc: Document | None, event: FileImported, batch: Batch) -> Document | None:
    key = event.event_id.bytes
    if doc is None:
        # an item that overtook import.started: count it, the start fills in the rest
        doc = new_document(event, "import", "", "", ProgressStatus.RUNNING)
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
    refresh_figures(doc, event.occurred_at)
    # last, so an event that failed above leaves no trace: the list is the batch's own
    doc["_seen"] += key  # the batch's own bytearray, extended in place
    batch.seen.add(key)
    return doc


def _on_cleanup(doc: Document | None, event: ImportCleanupStarted, batch: Batch) -> Document | None:
    if doc is None or doc["status"] != ProgressStatus.RUNNING.value:
        return None
    if doc["current_step"] == "Nettoyage":
        return None
    doc["current_step"] = "Nettoyage"
    doc["message"] = "Nettoyage et recalcul des totaux…"
    refresh_figures(doc, event.occurred_at)
    return doc


def _on_finished(doc: Document | None, event: ImportFinished, batch: Batch) -> Document | None:
    if doc is None:
        doc = new_document(event, "import", "", "", ProgressStatus.RUNNING)
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
    refresh_figures(doc, event.occurred_at)
    if status is ProgressStatus.COMPLETED:
        doc["percent"] = 100.0
    doc["eta_s"] = None
    return doc


_HANDLERS: dict[type[Event], Any] = {
    ImportQueued: _on_queued,
    ImportStarted: _on_started,
    FileImported: _on_file,
    ImportCleanupStarted: _on_cleanup,
    ImportFinished: _on_finished,
    ColisStepChanged: on_step,
}

PROGRESS_EVENTS: tuple[type[Event], ...] = tuple(_HANDLERS)


Outcome = bool | Exception


@dataclass
class Applied:
    """A batch's result: the new document (None if no event changed anything), each
    event's outcome, and the set of ids of the document's `_seen` after the batch (the
    caller may keep it for the job's next batch: `apply_batch`'s `known_ids`)."""

    doc: Document | None
    outcomes: list[Outcome]
    seen_ids: set[bytes]


def apply_batch(
    doc: Document | None,
    events: list[Event],
    limits: Limits = DEFAULT_LIMITS,
    known_ids: set[bytes] | None = None,
) -> Applied:
    """The document after `events` in order, and each event's outcome: True if applied,
    False if it changed nothing, or the exception it raised (that event alone is left
    out). `doc` itself is left untouched.

    `known_ids`: the set of ids in `doc["_seen"]` if the caller has it (from the job's
    previous batch); else it is rebuilt from the bytes. It is the batch's to change.
    """
    work = doc
    seen: set[bytes] = set()
    if work is not None and "_seen" in work:
        ids = _seen_bytes(work["_seen"])
        work = {**work, "_seen": ids}
        seen = (
            known_ids
            if known_ids is not None
            else {bytes(ids[i : i + _ID]) for i in range(0, len(ids), _ID)}
        )
    batch = Batch(limits, seen)
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
        return Applied(None, outcomes, seen)
    assert work is not None
    if isinstance(work.get("_seen"), bytearray):
        work["_seen"] = bytes(work["_seen"])  # stored as BSON binary
    return Applied(work, outcomes, seen)


def apply_events(
    doc: Document | None, events: list[Event], limits: Limits = DEFAULT_LIMITS
) -> tuple[Document | None, list[Outcome]]:
    """`apply_batch` without the set of ids: the document and the outcomes."""
    applied = apply_batch(doc, events, limits)
    return applied.doc, applied.outcomes


_ID = 16  # bytes of a UUID


def _seen_bytes(stored: bytes | list[str]) -> bytearray:
    """The batch's own copy of `_seen`, whichever form it was stored in."""
    if isinstance(stored, list):  # written by a version that kept a list of strings
        return bytearray(b"".join(UUID(key).bytes for key in stored))
    return bytearray(stored)


def apply_event(
    doc: Document | None, event: Event, limits: Limits = DEFAULT_LIMITS
) -> Document | None:
    """The document after `event`, or None if the event changes nothing."""
    new, (outcome,) = apply_events(doc, [event], limits)
    if isinstance(outcome, Exception):
        raise outcome
    return new


def public_view(doc: Document) -> Document:
    """The document without its private bookkeeping."""
    return {k: v for k, v in doc.items() if not k.startswith("_") or k == "_id"}
