"""The parcel task dashboard, from the progress read model; retry and cancel go to
colis-svc (request/reply on its control queue, so the answer says what happened).

Agents see and act on their own tasks only (another agent's task id is a 404); an admin
sees everyone's, may filter by `owner`, and may force the retry of a task whose
automatic retries are spent.
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path, Query, status
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from gateway import keyset
from gateway.colis_rpc import ask_control
from gateway.deps import CurrentUser, RpcDep, SettingsDep, ViewDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.list_filters import FAILED, IsoDate, TaskFilters, TaskState
from gateway.quantities import DIMENSION_DIGITS, WEIGHT_DIGITS, quantity_pattern
from gateway.upload_access import bind_upload
from jauge_shared.contracts import (
    CancelColisTask,
    Centimetres,
    ColisOperation,
    Kilograms,
    RetryColisTask,
    TaskStatus,
)
from jauge_shared.contracts.colis import ColisEdits as SharedColisEdits

router = APIRouter(prefix="/api/tasks", tags=["tasks"], responses=AUTHENTICATED)

TaskId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


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


def ref(description: str) -> Any:
    return Query(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", description=description)


@router.get("", responses=keyset.BAD_CURSOR_RESPONSE)
async def list_tasks(
    user: CurrentUser,
    view: ViewDep,
    state: Annotated[TaskState, Query()] = "active",
    status_: Annotated[
        TaskStatus | None, Query(alias="status", description="One status of the state's")
    ] = None,
    lot: Annotated[str | None, ref("Lot id")] = None,
    client: Annotated[str | None, ref("Client id")] = None,
    day: Annotated[IsoDate | None, Query(description="Created on this day (UTC)")] = None,
    owner: Annotated[str | None, Query(max_length=64, description="Admin only")] = None,
    cursor: keyset.Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """`active`: waiting or running, oldest first; `failed`: newest first, retryable
    first within a page; `completed`: last 24 h. `{items, next_cursor}`."""
    filters = TaskFilters(
        state=state,
        status=status_.value if status_ else None,
        lot_id=lot,
        client_id=client,
        day=day,
        owner=owner,
    )
    items, next_cursor = await view.tasks(user, filters, cursor, limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/stats")
async def task_stats(
    user: CurrentUser,
    view: ViewDep,
    owner: Annotated[str | None, Query(max_length=64, description="Admin only")] = None,
) -> dict[str, Any]:
    """Today's figures (UTC day) for the caller's tasks, or everyone's for an admin."""
    return await view.task_stats(user, owner)


@router.get("/{task_id}", responses=error_responses(404))
async def get_task(task_id: TaskId, user: CurrentUser, view: ViewDep) -> dict[str, Any]:
    return await view.task(user, task_id)


@router.post(
    "/{task_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(403, 404, 409, 503, e409="Only a failed task can be retried"),
)
async def retry_task(
    task_id: TaskId,
    user: CurrentUser,
    view: ViewDep,
    rpc: RpcDep,
    settings: SettingsDep,
    body: Annotated[RetryBody | None, Body()] = None,
) -> Accepted:
    """Another run of a failed task, with the agent's corrections if any."""
    body = body or RetryBody()
    doc = await view.task_doc(user, task_id)
    if body.force and not user.is_admin:
        raise HTTPException(403, detail="Seul un administrateur peut forcer une relance.")
    if doc.get("step_status") not in FAILED:
        raise HTTPException(409, detail="Seule une tâche en échec peut être relancée.")
    edits = body.colis_data.changes() if body.colis_data else {}
    pending = False
    if body.upload_id:
        pending = await asyncio.to_thread(bind_upload, settings, user, body.upload_id, task_id)
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
    result = await ask_control(rpc, command)
    return Accepted(task_id=task_id, **result)


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(404, 409, 503, e409="The task has already ended"),
)
async def cancel_task(task_id: TaskId, user: CurrentUser, view: ViewDep, rpc: RpcDep) -> Accepted:
    """A waiting task is cancelled at once; a running one stops at its next step
    (`status: cancel_requested`); a completed one cannot be (409)."""
    doc = await view.task_doc(user, task_id)
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
    result = await ask_control(rpc, command)
    return Accepted(task_id=task_id, **result)
