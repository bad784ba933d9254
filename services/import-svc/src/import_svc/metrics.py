"""import-svc's own series, counted from the events it announces (after the broker
confirmed them), so that they say what progress-svc and the users were told.

Every series exists from start-up, at zero, for every import kind: a dashboard reads 0
before the first file rather than "no data" (issue 14, item 6). A state announced
again with the same event id (a replay after a redelivery or a reconciler request) is
counted once by the replica that announced it before (`_seen`); a replay by another
replica counts again, which `jauge_state_reannounced_total` makes visible.
"""

from __future__ import annotations

from collections import OrderedDict
from contextvars import ContextVar

from prometheus_client import Counter, Histogram

from jauge_shared.contracts import FileImported, ImportFinished, ImportStarted, Message
from jauge_shared.contracts.imports import ImportKind, ImportStatus
from jauge_shared.metrics import expose_reannounce_metrics

UNKNOWN = "unknown"
KINDS = [kind.value for kind in ImportKind]

FILES = Counter(
    "jauge_import_files_total",
    "Files (rows for a single-file BBGR import) whose result was announced, by import "
    "kind and outcome (imported, failed).",
    ["kind", "outcome"],
)
FILE_SECONDS = Histogram(
    "jauge_import_file_seconds",
    "Time to read, check and store one file (or row), by import kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IMPORTS_FINISHED = Counter(
    "jauge_imports_finished_total",
    "Imports announced finished, by kind and status (completed, failed, cancelled).",
    ["kind", "status"],
)

# the kind of the command being handled: FileImported does not carry it
current_kind: ContextVar[str | None] = ContextVar("import_kind", default=None)
_REMEMBERED = 50_000


class _Recent(OrderedDict[str, str]):
    """The latest `_REMEMBERED` keys and their values."""

    def remember(self, key: str, value: str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _REMEMBERED:
            self.popitem(last=False)


_kind_of_job = _Recent()
_seen = _Recent()


def expose(service: str) -> None:
    for kind in (*KINDS, UNKNOWN):
        for outcome in ("imported", "failed"):
            FILES.labels(kind, outcome)
        FILE_SECONDS.labels(kind)
        for status in ImportStatus:
            IMPORTS_FINISHED.labels(kind, status.value)
    expose_reannounce_metrics(service)


def announced(message: Message) -> None:
    """Count `message`, an event import-svc has just published."""
    if isinstance(message, ImportStarted):
        _kind_of_job.remember(message.job_id, message.kind.value)
        return
    if not isinstance(message, FileImported | ImportFinished) or message.reannounced:
        return  # announced again: counted the first time, by whichever replica
    event_id = str(message.event_id)
    if event_id in _seen:
        return
    _seen.remember(event_id, "")
    kind = current_kind.get() or _kind_of_job.get(message.job_id) or UNKNOWN
    if isinstance(message, FileImported):
        FILES.labels(kind, "imported" if message.ok else "failed").inc()
        FILE_SECONDS.labels(kind).observe(message.duration_ms / 1000)
    else:
        IMPORTS_FINISHED.labels(kind, message.status.value).inc()
