"""The parcel task dashboard, from the progress read model; retry and cancel go to
colis-svc (request/reply on its control queue, so the answer says what happened).

Agents see and act on their own tasks only (another agent's task id is a 404); an admin
sees everyone's, may filter by `owner`, and may force the retry of a task whose
automatic retries are spent.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from gateway.colis_rpc import ask_control
from gateway.deps import CurrentUser, DurationsDep, ProgressDep, StateDep
from gateway.durations import Sample
from gateway.errors import AUTHENTICATED, error_responses
from gateway.quantities import DIMENSION_DIGITS, WEIGHT_DIGITS, quantity_pattern
from gateway.routers.jobs import to_public, visible_by_id, visible_to
from gateway.routers.uploads import bind_upload
from gateway.users import User
from jauge_shared.contracts import (
    CancelColisTask,
    Centimetres,
    ColisOperation,
    Kilograms,
    RetryColisTask,
    TaskStatus,
)
from jauge_shared.contracts.colis import ACTIVE_STATUSES, FAILED_STATUSES
from jauge_shared.contracts.colis import ColisEdits as SharedColisEdits
from jauge_shared.contracts.colis import can_cancel as shared_can_cancel
from jauge_shared.contracts.colis import can_retry as shared_can_retry

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=AUTHENTICATED)

TaskId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
KINDS = ["colis.create", "colis.update"]
# colis-svc's status sets (jauge_shared.contracts.colis), as stored in `step_status`
ACTIVE = sorted(status.value for status in ACTIVE_STATUSES)
FAILED = sorted(status.value for status in FAILED_STATUSES)
ETA_SAMPLE = 20
NOT_FOUND = HTTPException(status.HTTP_404_NOT_FOUND, detail="Tâche introuvable.")


def text_matching(pattern: str) -> Any:
    """A quantity given as text must match `pattern`, the very one the OpenAPI document
    shows: pydantic's own schema for a Decimal allows any string, "" included, which it
    then refuses."""
    compiled = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise ValueError("doit être un nombre positif")
        return value

    return BeforeValidator(check)


def quantity_schema(le: int, pattern: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                # 6 places at most: a multiple of 10⁻⁶ (5e-324 is not one)
                {"type": "number", "exclusiveMinimum": 0, "maximum": le, "multipleOf": 1e-6},
                {"type": "string", "pattern": pattern},
                {"type": "null"},
            ]
        }
    )


_DIMENSION = quantity_pattern(DIMENSION_DIGITS)
_WEIGHT = quantity_pattern(WEIGHT_DIGITS)
Dimension = Annotated[
    Annotated[Centimetres, text_matching(_DIMENSION)] | None,
    quantity_schema(10_000, _DIMENSION),
]
Weight = Annotated[
    Annotated[Kilograms, text_matching(_WEIGHT)] | None,
    quantity_schema(100_000, _WEIGHT),
]


class ColisEdits(SharedColisEdits):
    """colis-svc's `ColisEdits`, with the quantities' text patterns for the OpenAPI
    document (the bounds, digits and places are the contract's own)."""

    longueur: Dimension = None
    largeur: Dimension = None
    hauteur: Dimension = None
    poids: Weight = None


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    colis_data: ColisEdits | None = Field(
        default=None, description="Corrected fields of the form (only those that change)."
    )
    force: bool = Field(default=False, description="Admin only: retries spent or not.")
    upload_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="A new photo, sent with `/api/uploads` (its bytes may still be coming).",
    )


class Accepted(BaseModel):
    task_id: str
    status: str
    retry_count: int | None = None


def can_retry(doc: dict[str, Any], user: User) -> bool:
    """What colis-svc said with the task's last step (`colis.step_changed`); colis-svc's
    rule (jauge_shared.contracts.colis) for a document stored before it said so."""
    said = doc.get("can_force_retry" if user.is_admin else "can_retry")
    if said is not None:
        return bool(said)
    retries = (doc.get("retry_count") or 0, doc.get("max_retries") or 0)
    return shared_can_retry(str(doc.get("step_status")), *retries, force=user.is_admin)


def can_cancel(doc: dict[str, Any]) -> bool:
    said = doc.get("can_cancel")
    return bool(said) if said is not None else shared_can_cancel(str(doc.get("step_status")))


async def stored_durations(progress: Any, kind: str, n: int) -> list[Sample]:
    """The `n` latest completions of `kind` in the store (read once, by RecentDurations)."""
    cursor = (
        progress.find(
            {"kind": kind, "step_status": "completed", "duration_s": {"$ne": None}},
            {"duration_s": 1, "finished_at": 1},
        )
        .sort("finished_at", -1)
        .limit(n)
    )
    return [
        (str(d["_id"]), d["finished_at"], float(d["duration_s"]))
        async for d in cursor
        if d.get("duration_s") and d.get("finished_at")
    ]


def present(
    doc: dict[str, Any], user: User, averages: dict[str, float], now: datetime
) -> dict[str, Any]:
    view = to_public(doc)
    view["can_retry"] = can_retry(doc, user)
    view["can_cancel"] = can_cancel(doc)
    eta = None
    if doc.get("step_status") in ACTIVE and doc.get("kind") in averages:
        started = doc.get("started_at") or doc.get("created_at") or now
        elapsed = (now - started).total_seconds()
        eta = round(max(averages[doc["kind"]] - elapsed, 0.0), 1)
    view["eta_s"] = eta
    view["estimated_completion_at"] = (
        (now + timedelta(seconds=eta)).isoformat() if eta is not None else None
    )
    return view


def scope(user: User, owner: str | None) -> dict[str, Any]:
    query: dict[str, Any] = {"kind": {"$in": KINDS}, **visible_to(user)}
    if owner and user.is_admin:
        query["owner"] = owner
    return query


@router.get("")
async def list_tasks(
    user: CurrentUser,
    progress: ProgressDep,
    durations: DurationsDep,
    state: Annotated[Literal["active", "failed", "completed"], Query()] = "active",
    owner: Annotated[str | None, Query(max_length=64, description="Admin only")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """`active`: waiting or running; `failed`: retryable first; `completed`: last 24 h."""
    now = datetime.now(UTC)
    query = scope(user, owner)
    sort: list[tuple[str, int]] = [("updated_at", -1)]
    if state == "active":
        query["step_status"] = {"$in": ACTIVE}
        sort = [("created_at", 1)]
    elif state == "failed":
        query["step_status"] = {"$in": FAILED}
    else:
        query["step_status"] = TaskStatus.COMPLETED.value
        query["finished_at"] = {"$gte": now - timedelta(hours=24)}
        sort = [("finished_at", -1)]
    averages = await durations.averages()
    cursor = progress.find(query).sort(sort).limit(limit)
    tasks = [present(doc, user, averages, now) async for doc in cursor]
    if state == "failed":  # retryable first, each group newest first (sort is stable)
        tasks.sort(key=lambda t: not t["can_retry"])
    return tasks


@router.get("/stats")
async def task_stats(
    user: CurrentUser,
    progress: ProgressDep,
    owner: Annotated[str | None, Query(max_length=64, description="Admin only")] = None,
) -> dict[str, Any]:
    """Today's figures (UTC day) for the caller's tasks, or everyone's for an admin."""
    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    query = {**scope(user, owner), "created_at": {"$gte": midnight}}
    counts: dict[str, int] = {}
    async for doc in progress.find(query, {"step_status": 1}):
        key = str(doc.get("step_status"))
        counts[key] = counts.get(key, 0) + 1
    total = sum(counts.values())
    completed = counts.get(TaskStatus.COMPLETED.value, 0)
    failed = counts.get(TaskStatus.FAILED.value, 0) + counts.get(TaskStatus.FAILED_FINAL.value, 0)
    waiting = [*ACTIVE, TaskStatus.FAILED_RETRY.value]
    active_query = {**scope(user, owner), "step_status": {"$in": waiting}}
    active = await progress.count_documents(active_query)
    return {
        "total_today": total,
        "completed_today": completed,
        "failed_today": failed,
        "active_now": active,
        "success_rate": round(completed / total * 100, 1) if total else 0.0,
        "scope": "all" if user.is_admin and not owner else (owner or user.username),
    }


async def find_task(progress: ProgressDep, user: User, task_id: str) -> dict[str, Any]:
    doc = await visible_by_id(progress, user, task_id)
    if doc is None or doc.get("kind") not in KINDS:
        raise NOT_FOUND
    return doc


@router.get("/{task_id}", responses=error_responses(404))
async def get_task(
    task_id: TaskId, user: CurrentUser, progress: ProgressDep, durations: DurationsDep
) -> dict[str, Any]:
    doc = await find_task(progress, user, task_id)
    return present(doc, user, await durations.averages(), datetime.now(UTC))


@router.post(
    "/{task_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(403, 404, 409, 503, e409="Only a failed task can be retried"),
)
async def retry_task(
    task_id: TaskId,
    user: CurrentUser,
    progress: ProgressDep,
    state: StateDep,
    body: Annotated[RetryBody | None, Body()] = None,
) -> Accepted:
    """Another run of a failed task, with the agent's corrections if any."""
    body = body or RetryBody()
    doc = await find_task(progress, user, task_id)
    if body.force and not user.is_admin:
        raise HTTPException(403, detail="Seul un administrateur peut forcer une relance.")
    if doc.get("step_status") not in FAILED:
        raise HTTPException(409, detail="Seule une tâche en échec peut être relancée.")
    edits = body.colis_data.changes() if body.colis_data else {}
    pending = False
    if body.upload_id:
        pending = await asyncio.to_thread(bind_upload, state, user, body.upload_id, task_id)
    command = RetryColisTask(
        producer="gateway",
        job_id=task_id,
        task_id=task_id,
        user_id=user.username,
        edits=edits,
        force=body.force,
        upload_id=body.upload_id,
        image_pending=pending,
    )
    result = await ask_control(state, command)
    return Accepted(task_id=task_id, **result)


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(404, 409, 503, e409="The task has already ended"),
)
async def cancel_task(
    task_id: TaskId, user: CurrentUser, progress: ProgressDep, state: StateDep
) -> Accepted:
    """A waiting task is cancelled at once; a running one stops at its next step
    (`status: cancel_requested`); a completed one cannot be (409)."""
    doc = await find_task(progress, user, task_id)
    if doc.get("step_status") == TaskStatus.COMPLETED.value:
        raise HTTPException(409, detail="Impossible d'annuler une tâche terminée.")
    if doc.get("step_status") == TaskStatus.CANCELLED.value:
        raise HTTPException(409, detail="La tâche est déjà annulée.")
    operation = ColisOperation(doc["kind"].split(".", 1)[1])
    command = CancelColisTask(
        producer="gateway",
        job_id=task_id,
        task_id=task_id,
        user_id=user.username,
        lot_id=doc.get("lot_id"),
        operation=operation,
    )
    result = await ask_control(state, command)
    return Accepted(task_id=task_id, **result)
