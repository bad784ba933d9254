"""The filters of the jobs list (`GET /api/jobs`, the imports page) and of the task
dashboard (`GET /api/tasks`), as queries on the progress read model.

Each list reads a range of one of progress-svc's `PROGRESS_LIST_INDEXES` (its equality
fields, then the sort key), `limit + 1` documents after the cursor (`keyset.py`); the
other filters (status, lot, client) only narrow that range. Days are UTC days, as the
dashboard's figures are.
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

TaskState = Literal["active", "failed", "completed"]
TASK_KINDS = ["colis.create", "colis.update"]
# a family of kinds, as the imports page asks for all imports at once
KIND_FAMILIES = {
    "import": sorted(f"import.{kind.value}" for kind in ImportKind),
    "colis": TASK_KINDS,
}
ACTIVE = sorted(status.value for status in ACTIVE_STATUSES)
FAILED = sorted(status.value for status in FAILED_STATUSES)
COMPLETED_FOR = timedelta(hours=24)  # how long a completed task stays on the dashboard
# each state's statuses, sort key and order (oldest waiting first, else newest first)
STATES: dict[str, tuple[list[str], str, int]] = {
    "active": (ACTIVE, "created_at", 1),
    "failed": (FAILED, "updated_at", -1),
    "completed": ([TaskStatus.COMPLETED.value], "finished_at", -1),
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


def visible_to(user: User) -> dict[str, Any]:
    """The filter of what the caller may see, for the queries of many documents."""
    return {} if user.is_admin else {"owner": user.username}


def whose(user: User, owner: str | None) -> dict[str, Any]:
    """The caller's documents; an admin's are everyone's, or one `owner`'s."""
    if owner and user.is_admin:
        return {"owner": owner}
    return visible_to(user)


def on_day(day: date) -> dict[str, datetime]:
    start = datetime.combine(day, time(), tzinfo=UTC)
    return {"$gte": start, "$lt": start + timedelta(days=1)}


@dataclass(frozen=True)
class JobFilters:
    kind: str | None = None
    status: ProgressStatus | None = None
    since: datetime | None = None
    day: date | None = None
    owner: str | None = None

    def query(self, user: User) -> dict[str, Any]:
        query: dict[str, Any] = whose(user, self.owner)
        if self.kind:
            family = KIND_FAMILIES.get(self.kind)
            query["kind"] = {"$in": family} if family else self.kind
        if self.status:
            query["status"] = self.status.value
        if self.since:
            query["updated_at"] = {"$gte": self.since}
        if self.day:
            query["created_at"] = on_day(self.day)
        return query


@dataclass(frozen=True)
class TaskFilters:
    state: TaskState = "active"
    status: str | None = None
    lot_id: str | None = None
    client_id: str | None = None
    day: date | None = None
    owner: str | None = None

    def sort_key(self) -> tuple[str, int]:
        _, key, direction = STATES[self.state]
        return key, direction

    def query(self, user: User, now: datetime) -> dict[str, Any]:
        statuses, _, _ = STATES[self.state]
        if self.status:  # one status of the state's, or none at all
            statuses = [self.status] if self.status in statuses else []
        query: dict[str, Any] = {
            "step_status": {"$in": statuses},
            "kind": {"$in": TASK_KINDS},
            **whose(user, self.owner),
        }
        if self.state == "completed":
            query["finished_at"] = {"$gte": now - COMPLETED_FOR}
        if self.lot_id:
            query["lot_id"] = self.lot_id
        if self.client_id:
            query["summary.client_id"] = self.client_id
        if self.day:
            query["created_at"] = on_day(self.day)
        return query
