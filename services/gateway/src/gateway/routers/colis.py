"""Parcels: the form answers at once (202 + task id), colis-svc does the work.

Only what is cheap is checked here: the form's fields, sizes and types, the photo's size
and kind, and (one RPC) that the lot exists and is open. The photo streams to the
gateway's own folder under a name of our own (never from the user); once the command is
confirmed, and after the answer, it is handed over to colis-svc as a blob of its
`photo_uploads` bucket (photo_handovers.py); colis-svc turns it into the stored JPEG and
thumbnail, which are served from its `photos` bucket.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, BackgroundTasks, HTTPException, Path, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from gateway.audit_pages import AuditPage, Before, Limit, history
from gateway.colis_form import (
    FORM_FIELDS,
    InvalidForm,
    discard,
    form_schema,
    invalid_form,
    invalid_response,
    keep_photo,
    read_form,
)
from gateway.colis_rpc import call_colis, check_lot_open
from gateway.commands import Publishers, send_command
from gateway.deps import (
    BucketsDep,
    CurrentUser,
    HandoversDep,
    LotChecksDep,
    PublishersDep,
    RpcDep,
    SettingsDep,
)
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses
from gateway.photo_handovers import PhotoHandovers
from gateway.photo_stream import PhotoSink
from gateway.settings import GatewaySettings
from gateway.users import User
from jauge_shared.contracts import (
    ColisData,
    CreateColis,
    TaskStatus,
    UpdateColis,
)

logger = logging.getLogger("gateway.colis")
router = APIRouter(tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER})

ItemId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
_IMAGE_FILE = re.compile(r"^[A-Za-z0-9_-]+(\.thumb)?\.jpg$")


class Accepted(BaseModel):
    task_id: str
    status: str = TaskStatus.PENDING.value


async def queue_task(
    publishers: Publishers,
    handovers: PhotoHandovers,
    command: CreateColis | UpdateColis,
    photo: PhotoSink | str | None,
    after_answer: BackgroundTasks,
) -> None:
    """The command, confirmed by the broker (or a 503). colis-svc alone announces the task:
    its `colis-svc.accepted` queue stores it and publishes its first `colis.step_changed`
    (seq 0, pending) at once, so the dashboard shows it without waiting for a worker. A
    photo of this request is handed over once the command is confirmed, after the answer,
    and goes if the command is refused; a resumable upload stays (the browser submits the
    form again with it)."""
    kept = command.upload_id if isinstance(photo, PhotoSink) else None
    try:
        await send_command(publishers, command)
    except HTTPException:
        if kept:
            await asyncio.to_thread(handovers.drop, kept)  # no task will ever wait for it
        raise
    if kept:
        after_answer.add_task(handovers.after_answer, kept)


@dataclass(frozen=True)
class TakenForm:
    """A parcel form read and validated, its photo kept for the task."""

    data: ColisData
    task_id: str
    upload_id: str | None
    pending: bool
    photo: PhotoSink | str | None

    def command_fields(self, user_id: str, lot_id: str) -> dict[str, Any]:
        return {
            "producer": "gateway",
            "job_id": self.task_id,
            "task_id": self.task_id,
            "user_id": user_id,
            "lot_id": lot_id,
            "colis_data": self.data,
            "upload_id": self.upload_id,
            "image_pending": self.pending,
        }


async def take_form(
    request: Request,
    settings: GatewaySettings,
    handovers: PhotoHandovers,
    user: User,
    validate: Callable[[dict[str, Any]], Awaitable[ColisData]],
) -> TakenForm | Response:
    """The form read, `validate`d (its own checks with colis-svc may raise their HTTP
    error) and its photo kept under a new task id; a 400 answer for an invalid form. The
    photo is discarded on any failure before the task exists."""
    try:
        fields, photo = await read_form(request, settings)
    except InvalidForm as e:
        return invalid_response(e)
    try:
        try:
            data = await validate(fields)
        except ValidationError as e:
            discard(photo)
            return invalid_response(invalid_form(e))
        task_id = uuid4().hex
        upload_id, pending = await keep_photo(settings, handovers, user, photo, task_id)
    except BaseException:
        discard(photo)
        raise
    return TakenForm(data, task_id, upload_id, pending, photo)


@router.post(
    "/api/lots/{lot_id}/colis",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        400, 404, 409, 413, 415, 429, e409="The lot is not open, or the upload is another task's"
    ),
    openapi_extra=form_schema(required=True),
)
async def create_colis(
    lot_id: ItemId,
    request: Request,
    user: CurrentUser,
    rpc: RpcDep,
    settings: SettingsDep,
    publishers: PublishersDep,
    handovers: HandoversDep,
    lot_checks: LotChecksDep,
    after_answer: BackgroundTasks,
) -> Any:
    """Multipart: the parcel form's fields and an optional `image`, or instead the
    `upload_id` of a resumable upload (`/api/uploads`) still on its way: the answer does
    not wait for the photo. Follow the task on `/ws` or `/api/tasks/{task_id}`."""

    async def validated(fields: dict[str, Any]) -> ColisData:
        data = ColisData.model_validate(fields)
        # the lot exists and is open (a 404 or 409 now, rather than a failed task)
        await check_lot_open(rpc, lot_checks, lot_id, data.client_id)
        return data

    taken = await take_form(request, settings, handovers, user, validated)
    if isinstance(taken, Response):
        return taken
    command = CreateColis(**taken.command_fields(user.username, lot_id))
    await queue_task(publishers, handovers, command, taken.photo, after_answer)
    return Accepted(task_id=taken.task_id)


@router.patch(
    "/api/colis/{colis_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        400, 404, 409, 413, 415, 429, e409="The lot is not open, or the upload is another task's"
    ),
    openapi_extra=form_schema(required=False),
)
async def update_colis(
    colis_id: ItemId,
    request: Request,
    user: CurrentUser,
    rpc: RpcDep,
    settings: SettingsDep,
    publishers: PublishersDep,
    handovers: HandoversDep,
    after_answer: BackgroundTasks,
) -> Any:
    """Multipart: only the fields to change, and optionally a new `image` (or the
    `upload_id` of a resumable upload, as for the creation)."""
    lots: list[str] = []

    async def merged(fields: dict[str, Any]) -> ColisData:
        check = await call_colis(rpc, "precheck_update", colis_id=colis_id)
        lots.append(check["lot"]["id"])
        current = check["colis"]
        stored = {k: current[k] for k in FORM_FIELDS if current.get(k) not in (None, "")}
        return ColisData.model_validate({**stored, **fields})

    taken = await take_form(request, settings, handovers, user, merged)
    if isinstance(taken, Response):
        return taken
    command = UpdateColis(**taken.command_fields(user.username, lots[0]), colis_id=colis_id)
    await queue_task(publishers, handovers, command, taken.photo, after_answer)
    return Accepted(task_id=taken.task_id)


@router.get("/api/colis/{colis_id}", responses=error_responses(404))
async def get_colis(colis_id: ItemId, user: CurrentUser, rpc: RpcDep) -> Any:
    return await call_colis(rpc, "get_colis", colis_id=colis_id)


@router.get(
    "/api/colis/{colis_id}/history", response_model=AuditPage, responses=error_responses(404)
)
async def get_colis_history(
    colis_id: ItemId, user: CurrentUser, rpc: RpcDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Who created the parcel, changed it, cancelled or retried its tasks, and when, newest
    first: open to every signed-in user (lots and parcels are the agency's shared data).
    A parcel whose creation was cancelled is gone, its history stays."""
    return await history(rpc, "colis_history", limit, before, colis_id=colis_id)


@router.get("/api/lots/{lot_id}/colis", responses=error_responses(404))
async def list_lot_colis(
    lot_id: ItemId,
    user: CurrentUser,
    rpc: RpcDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    return await call_colis(rpc, "list_lot_colis", lot_id=lot_id, limit=limit)


@router.get(
    "/api/colis/{colis_id}/image",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404)},
)
async def get_colis_image(
    colis_id: ItemId,
    user: CurrentUser,
    rpc: RpcDep,
    buckets: BucketsDep,
    thumbnail: bool = False,
) -> Any:
    """The parcel's photo, read from colis-svc's `photos` bucket by the name colis-svc
    answers (a stored photo is at most `image_max_side` pixels: a few hundred KB)."""
    found = await call_colis(rpc, "colis_image", colis_id=colis_id, thumbnail=thumbnail)
    name = str(found.get("file", ""))
    data = await buckets.photos.read(name) if _IMAGE_FILE.fullmatch(name) else None
    if data is None:
        raise HTTPException(404, detail="Photo introuvable.")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private"})
