"""The progress lists as entries keyed by `_id`: which lists a progress document is in.

progress-svc writes the progress documents and, beside them in `progress_lists`, one
small entry per list a document belongs to; the gateway reads a page of a list as a
range of those `_id`s (`find({_id: {$gte, $lt}}).sort({_id: ±1}).limit(n)`) and then the
documents by `_id`. On FerretDB those are the only reads its SQLite backend answers from
an index (with the project's build: deploy/local/ferretdb-sqlite-id-range.patch); any
other filter reads every document ever kept. On MongoDB they are index reads too.

An entry's `_id` is `<list>|<scope>|<sort key>|<job id>`, the owner and the job id
quoted: FerretDB compares ranges of `_id` as JSON text, which orders strings as MongoDB
does only when they hold no character JSON escapes (quotes, backslashes, `<`, `>`, `&`,
controls). The lists:

- `jobs|all`, `jobs|import`, `jobs|colis`: every job, every import, every parcel task,
  by `created_at` (never changes);
- `tasks|active` (waiting or running, by `created_at`), `tasks|failed` (by
  `updated_at`), `tasks|completed` (by `finished_at`): the task dashboard's states;
- `tasks|busy`: waiting, running or about to be retried (`failed_retry`), by
  `created_at`: the dashboard's "en cours" figure;

each under two scopes: the owner (quoted) and `*` (everyone's, for an admin).

Entries are hints, the document is the truth: a reader keeps an entry only if the
document it names still has it (`list_keys(doc)`). The writer adds a document's new
entries before the document and removes its old ones after, so a crash in between
leaves an entry too many (dropped by readers), never one too few.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from jauge_shared.contracts.colis import ACTIVE_STATUSES, FAILED_STATUSES, TaskStatus

LISTS_COLLECTION = "progress_lists"
# an entry outside every list (lists start with a letter): the store's documents were
# all listed, by progress-svc's one-time backfill or by whatever wrote them with entries
LISTED_MARKER = "~listed"
EVERYONE = "*"
TASK_KINDS = ("colis.create", "colis.update")
# a task's state on the dashboard: its statuses and the date it is sorted by
TASK_STATES: dict[str, tuple[frozenset[str], str]] = {
    "active": (frozenset(s.value for s in ACTIVE_STATUSES), "created_at"),
    "failed": (frozenset(s.value for s in FAILED_STATUSES), "updated_at"),
    "completed": (frozenset({TaskStatus.COMPLETED.value}), "finished_at"),
}
BUSY_STATUSES = frozenset(s.value for s in ACTIVE_STATUSES) | {TaskStatus.FAILED_RETRY.value}
# after every key of a list (`|` < `}` and `~`): the exclusive end of a range
END = "~"


def when(value: datetime) -> str:
    """A date as a key: fixed width, UTC, so the text sorts as the dates do."""
    if value.tzinfo is None:  # the store's dates are UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scope_of(owner: str | None) -> str:
    """An owner as a key part: no `|`, `*` or character that JSON escapes can remain."""
    return quote(owner or "", safe="")


def family_of(kind: str) -> str | None:
    if kind.startswith("import."):
        return "import"
    if kind in TASK_KINDS:
        return "colis"
    return None


def prefix(list_name: str, scope: str) -> str:
    """`scope`: `scope_of(owner)` or EVERYONE."""
    return f"{list_name}|{scope}|"


def list_keys(doc: dict[str, Any]) -> set[str]:
    """Every list entry of a progress document as stored (`_id`, `owner`, `kind`...)."""
    job_id, kind = str(doc["_id"]), str(doc.get("kind") or "")
    sorted_by: dict[str, Any] = {}
    created = doc.get("created_at")
    if isinstance(created, datetime):
        sorted_by["jobs|all"] = created
        family = family_of(kind)
        if family is not None:
            sorted_by[f"jobs|{family}"] = created
    if kind in TASK_KINDS:
        step_status = doc.get("step_status")
        for state, (statuses, field) in TASK_STATES.items():
            if step_status in statuses and isinstance(doc.get(field), datetime):
                sorted_by[f"tasks|{state}"] = doc[field]
        if step_status in BUSY_STATUSES and isinstance(created, datetime):
            sorted_by["tasks|busy"] = created
    listed_id = quote(job_id, safe="")  # a job id from an event: nothing JSON escapes
    return {
        f"{prefix(list_name, scope)}{when(at)}|{listed_id}"
        for list_name, at in sorted_by.items()
        for scope in (scope_of(doc.get("owner")), EVERYONE)
    }


def job_id_of(key: str) -> str:
    return unquote(key.split("|", 4)[4])
