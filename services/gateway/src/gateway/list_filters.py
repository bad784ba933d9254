"""The filters of the jobs list (`GET /api/jobs`, the imports page) and of the task
dashboard (`GET /api/tasks`).

Each list is read as a range of progress-svc's list entries
(jauge_shared.contracts.progress_lists, gateway/list_pages.py): the family or state and
whose, then a range of its dates (a day, the last 24 h) where the list is sorted by
that date; the other filters (status, lot, client, a day of another date) are applied to
the documents the range finds. Days are UTC days, as the dashboard's figures are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, WithJsonSchema

from gateway.users import User
from jauge_shared.contracts import ImportKind, ProgressStatus
from jauge_shared.contracts.colis import ACTIVE_STATUSES, FAILED_STATUSES, TaskStatus
from jauge_shared.contracts.progress_lists import TASK_KINDS as LISTED_TASK_KINDS
from jauge_shared.contracts.progress_lists import family_of, when

TaskState = Literal["active", "failed", "completed"]
TASK_KINDS = list(LISTED_TASK_KINDS)
# a family of kinds, as the imports page asks for all imports at once
KIND_FAMILIES = {
    "import": sorted(f"import.{kind.value}" for kind in ImportKind),
    "colis": TASK_KINDS,
}
ACTIVE = sorted(status.value for status in ACTIVE_STATUSES)
FAILED = sorted(status.value for status in FAILED_STATUSES)
COMPLETED_FOR = timedelta(hours=24)  # how long a completed task stays on the dashboard
# each state's statuses (its list and sort key: jauge_shared.contracts.progress_lists)
STATES: dict[str, list[str]] = {
    "active": ACTIVE,
    "failed": FAILED,
    "completed": [TaskStatus.COMPLETED.value],
}


def iso_date_only(value: Any) -> Any:
    """`2026-12-07` only: pydantic would also take a number (`0`) as a Unix time, which
    the OpenAPI document (`format: date`) does not allow."""
    if not isinstance(value, date) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
        raise ValueError("date AAAA-MM-JJ attendue")
    return value


IsoDate = Annotated[
    date,
    BeforeValidator(iso_date_only),
    WithJsonSchema({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}),
]


def _day_bounds(day: date) -> dict[str, str]:
    """A UTC day as the sorted keys of a list by date (progress_lists.when)."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return {"since": when(start), "until": when(start + timedelta(days=1))}


def aware(value: Any) -> datetime | None:
    """A stored date as an aware UTC one (the store's dates are UTC); None if not a date."""
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _on(day: date, value: Any) -> bool:
    at = aware(value)
    return at is not None and at.astimezone(UTC).date() == day


@dataclass(frozen=True)
class JobFilters:
    kind: str | None = None
    status: ProgressStatus | None = None
    since: datetime | None = None
    day: date | None = None
    owner: str | None = None

    def family(self) -> str:
        """The list to read: a family's, or every job's."""
        if self.kind in KIND_FAMILIES:
            return self.kind
        return (family_of(self.kind) if self.kind else None) or "all"

    def days(self) -> dict[str, str]:
        """The range of the list's dates (started that day), if any."""
        return _day_bounds(self.day) if self.day else {}

    def accepts(self, doc: dict[str, Any], user: User) -> bool:
        """The other filters, applied to a document of the list."""
        if not user.may_see(doc.get("owner")):
            return False
        if self.kind and self.kind not in KIND_FAMILIES and doc.get("kind") != self.kind:
            return False
        if self.status and doc.get("status") != self.status.value:
            return False
        if self.since is None:
            return True
        updated, since = aware(doc.get("updated_at")), aware(self.since)  # no zone: UTC
        return updated is not None and since is not None and updated >= since


@dataclass(frozen=True)
class TaskFilters:
    state: TaskState = "active"
    status: str | None = None
    lot_id: str | None = None
    client_id: str | None = None
    day: date | None = None
    owner: str | None = None

    def bounds(self, now: datetime) -> dict[str, str]:
        """The range of the state's list: active tasks started that day; completed ones
        of the last 24 h."""
        if self.state == "active" and self.day:
            return _day_bounds(self.day)
        if self.state == "completed":
            return {"since": when(now - COMPLETED_FOR)}
        return {}

    def accepts(self, doc: dict[str, Any], user: User, now: datetime) -> bool:
        """The other filters, applied to a document of the state's list."""
        statuses = STATES[self.state]
        if self.status:  # one status of the state's, or none at all
            statuses = [self.status] if self.status in statuses else []
        summary = doc.get("summary") or {}
        return (
            user.may_see(doc.get("owner"))
            and doc.get("step_status") in statuses
            and (not self.lot_id or doc.get("lot_id") == self.lot_id)
            and (not self.client_id or summary.get("client_id") == self.client_id)
            and (not self.day or _on(self.day, doc.get("created_at")))
        )
