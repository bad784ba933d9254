"""The shape every progress document shares, and its figures: pure, no I/O.

Used by `aggregate` (imports' events) and `task_steps` (colis tasks' steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jauge_shared.contracts import Event, ProgressDocument, ProgressStatus

Document = dict[str, Any]

TERMINAL = {
    s.value for s in (ProgressStatus.COMPLETED, ProgressStatus.FAILED, ProgressStatus.CANCELLED)
}


@dataclass(frozen=True)
class Limits:
    recent: int = 20
    errors: int = 200


@dataclass
class Batch:
    """What the events of one batch share: the limits, and `_seen` as a set.

    A job of 20,000 files carries 20,000 ids in `_seen`: looking one up in the list, or
    copying the list for each event, made a big job quadratic (profiled), so a batch
    copies the list once, appends to its own copy and looks ids up in this set.
    """

    limits: Limits
    seen: set[bytes]


def new_document(
    event: Event, kind: str, owner: str, title: str, status: ProgressStatus
) -> Document:
    """A new document, from the contract's model: what progress.updated carries is what
    is stored, nothing written twice."""
    doc = ProgressDocument(
        id=event.job_id,
        kind=kind,
        owner=owner,
        title=title,
        status=status,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
    ).stored()
    doc["_seen"] = bytearray()
    return doc


def _seconds(start: datetime | None, end: datetime) -> float | None:
    if start is None:
        return None
    return round(max((end - start).total_seconds(), 0.0), 3)


def refresh_figures(doc: Document, now: datetime) -> None:
    total, processed = doc["total"], doc["processed"]
    doc["percent"] = round(100.0 * processed / total, 2) if total else 0.0
    doc["duration_s"] = _seconds(doc.get("started_at"), doc.get("finished_at") or now)
    eta = None
    if doc["status"] == ProgressStatus.RUNNING.value and total and 0 < processed < total:
        elapsed = doc["duration_s"] or 0.0
        eta = round(elapsed / processed * (total - processed), 1)
    doc["eta_s"] = eta
    doc["updated_at"] = now
