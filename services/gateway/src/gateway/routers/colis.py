"""Parcels: the form answers at once (202 + task id), colis-svc does the work.

Only what is cheap is checked here: the form's fields, sizes and types, the photo's size
and kind, and (one RPC) that the lot exists and is open. The photo is stored under
`<JAUGE_DATA_DIR>/uploads/colis/<upload_id>`, a name of our own (never from the user),
and colis-svc turns it into the stored JPEG and thumbnail.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path as FsPath
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from gateway.colis_rpc import call_colis, read_colis
from gateway.commands import send_command
from gateway.deps import CurrentUser, StateDep
from gateway.errors import AUTHENTICATED, THROUGH_BROKER, error_responses
from gateway.photo_stream import ParcelFormParser, PhotoSink
from gateway.quantities import DIMENSION_DIGITS, WEIGHT_DIGITS, quantity_pattern
from gateway.routers.audit import AuditPage, Before, Limit, history
from gateway.routers.uploads import bind_upload
from gateway.state import GatewayState
from gateway.users import User
from jauge_shared.contracts import (
    ColisData,
    ColisOperation,
    ColisStepChanged,
    CreateColis,
    TaskStatus,
    UpdateColis,
)
from jauge_shared.contracts.colis import allowed_actions, summarize
from jauge_shared.french import french_reason

logger = logging.getLogger("gateway.colis")
router = APIRouter(tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER})

ItemId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
FORM_FIELDS = tuple(ColisData.model_fields)
_IMAGE_FILE = re.compile(r"^[A-Za-z0-9_-]+(\.thumb)?\.jpg$")
UPLOAD_ID_FIELD = re.compile(r"^[0-9a-f]{32}$")


def form_schema(required: bool) -> dict[str, Any]:
    """The multipart form of the parcel routes, for the OpenAPI document (the routes read
    it themselves, streaming the photo): every field as text, `image` a file."""
    schema = ColisData.model_json_schema()
    properties: dict[str, Any] = {}
    for name, field in schema["properties"].items():
        if "anyOf" in field:  # a Decimal: a form field is text, with its own pattern
            digits = WEIGHT_DIGITS if name == "poids" else DIMENSION_DIGITS
            field = {"type": "string", "pattern": quantity_pattern(digits)}
        elif "$ref" in field:
            field = schema["$defs"][field["$ref"].rsplit("/", 1)[1]]
        elif field.get("type") == "string" and name in schema.get("required", ()):
            # a field of blanks counts as missing (an optional one then takes its default)
            field = {**field, "pattern": r"\S"}
        properties[name] = {k: v for k, v in field.items() if k not in ("title", "default")}
    properties["image"] = {
        "type": "string",
        "format": "binary",
        "description": "The parcel's photo: JPEG, PNG, WEBP, GIF, BMP or TIFF.",
    }
    properties["upload_id"] = {
        "type": "string",
        "pattern": UPLOAD_ID_FIELD.pattern,
        "description": (
            "Instead of `image`: a resumable upload of the caller's (`/api/uploads`) whose "
            "bytes may still be on their way; the answer does not wait for them."
        ),
    }
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        body["required"] = [n for n in schema.get("required", []) if n in properties]
    return {
        "requestBody": {
            "required": required,
            "content": {"multipart/form-data": {"schema": body}},
        }
    }


class Accepted(BaseModel):
    task_id: str
    status: str = TaskStatus.PENDING.value


def invalid_form(error: ValidationError) -> HTTPException:
    problems = []
    for item in error.errors()[:20]:
        field = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append({"field": field, "message": french_reason(item)})
    return _Invalid(problems)


class _Invalid(HTTPException):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(422, detail="Données invalides : vérifiez les champs indiqués.")
        self.problems = problems


def _invalid_response(exc: _Invalid) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "errors": exc.problems}, status_code=422)


async def read_form(
    request: Request, state: GatewayState
) -> tuple[dict[str, str], PhotoSink | str | None]:
    """The form's fields, and its photo: a file part `image`, already on disk and checked
    (see photo_stream), or the `upload_id` of a resumable upload (routers/uploads.py)
    whose bytes may still be on their way."""
    settings = state.settings
    parser = ParcelFormParser(
        request.headers,
        request.stream(),
        folder=settings.data_dir / "uploads" / "colis",
        max_bytes=settings.max_photo_bytes,
        max_pixels=settings.max_photo_pixels,
        max_files=1,
        max_fields=len(FORM_FIELDS) + 4,
    )
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await parser.parse()
        else:  # a form without a photo may come urlencoded
            form = await request.form(max_files=0, max_fields=len(FORM_FIELDS) + 4)
    except HTTPException:
        raise  # a photo refused as it arrived
    except Exception as e:
        raise HTTPException(
            400, detail="Formulaire illisible : envoyez un multipart/form-data."
        ) from e
    photo: PhotoSink | str | None = parser.sinks[0] if parser.sinks else None
    fields: dict[str, str] = {}
    try:
        for key, value in form.multi_items():
            if key == "image":
                if isinstance(value, UploadFile) and not value.filename:
                    photo = None  # an empty file input: no photo
            elif key == "upload_id" and isinstance(value, str):
                if not UPLOAD_ID_FIELD.fullmatch(value):
                    raise _Invalid([{"field": key, "message": "identifiant d'envoi invalide"}])
                if parser.sinks:
                    raise HTTPException(
                        400, detail="Formulaire illisible : une photo ou un envoi, pas les deux."
                    )
                photo = value
            elif key in FORM_FIELDS and isinstance(value, str):
                if value.strip() != "":
                    fields[key] = value
            else:
                raise _Invalid([{"field": key, "message": "champ inconnu"}])
    except BaseException:
        for sink in parser.sinks:
            sink.discard()
        raise
    if photo is None:
        for sink in parser.sinks:
            sink.discard()
    return fields, photo


def discard(photo: PhotoSink | str | None) -> None:
    """A photo of this request goes; a resumable upload stays (the form may come again)."""
    if isinstance(photo, PhotoSink):
        photo.discard()


async def keep_photo(
    state: GatewayState, user: User, photo: PhotoSink | str | None, task_id: str
) -> tuple[str | None, bool]:
    """The task's upload id, and whether its bytes are still coming: a photo of this
    request renamed to its upload id (its last checks done), or a resumable upload bound
    to the task."""
    if photo is None:
        return None, False
    if isinstance(photo, str):
        pending = await asyncio.to_thread(bind_upload, state, user, photo, task_id)
        return photo, pending
    return await asyncio.to_thread(photo.finish), False


def pending_event(
    task_id: str,
    user_id: str,
    lot_id: str,
    operation: ColisOperation,
    data: ColisData,
    client_name: str | None,
) -> ColisStepChanged:
    """Seq 0 of the task, so the dashboard shows it at once, even while colis-svc is busy
    or away; colis-svc's own steps start at seq 1."""
    return ColisStepChanged(
        producer="gateway",
        job_id=task_id,
        task_id=task_id,
        user_id=user_id,
        lot_id=lot_id,
        operation=operation,
        status=TaskStatus.PENDING,
        step="En attente",
        percent=0,
        seq=0,
        # colis-svc's own summary and rules: this first frame reads as its later ones
        summary=summarize(data, client_name),
        **allowed_actions(TaskStatus.PENDING, 0, 0),
    )


async def queue_task(
    state: GatewayState,
    command: CreateColis | UpdateColis,
    event: ColisStepChanged,
    photo: PhotoSink | str | None,
) -> None:
    """The command first, then the task's first gauge: a gauge announced for a command
    the broker then refused would show a task that does not exist, waiting for good. The
    gauge itself may be lost (the broker gone in between): colis-svc's own steps open it.
    A photo of this request goes if the command is refused; a resumable upload stays
    (the browser submits the form again with it)."""
    try:
        await send_command(state, command)
    except HTTPException:
        if isinstance(photo, PhotoSink) and command.upload_id:
            (state.settings.data_dir / "uploads" / "colis" / command.upload_id).unlink(
                missing_ok=True
            )
        raise
    try:
        await send_command(state, event)  # type: ignore[arg-type]
    except HTTPException:
        logger.warning("first gauge of a task not announced", extra={"task_id": command.task_id})


@router.post(
    "/api/lots/{lot_id}/colis",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        400, 404, 409, 413, 415, 429, e409="The lot is not open, or the upload is another task's"
    ),
    openapi_extra=form_schema(required=True),
)
async def create_colis(lot_id: ItemId, request: Request, user: CurrentUser, state: StateDep) -> Any:
    """Multipart: the parcel form's fields and an optional `image`, or instead the
    `upload_id` of a resumable upload (`/api/uploads`) still on its way: the answer does
    not wait for the photo. Follow the task on `/ws` or `/api/tasks/{task_id}`."""
    try:
        fields, photo = await read_form(request, state)
    except _Invalid as e:
        return _invalid_response(e)
    try:
        try:
            data = ColisData.model_validate(fields)
        except ValidationError as e:
            discard(photo)
            return _invalid_response(invalid_form(e))  # type: ignore[arg-type]
        check = await read_colis(state, "precheck", lot_id=lot_id, client_id=data.client_id)
        task_id = uuid4().hex
        upload_id, pending = await keep_photo(state, user, photo, task_id)
    except BaseException:
        discard(photo)
        raise
    command = CreateColis(
        producer="gateway",
        job_id=task_id,
        task_id=task_id,
        user_id=user.username,
        lot_id=lot_id,
        colis_data=data,
        upload_id=upload_id,
        image_pending=pending,
    )
    event = pending_event(
        task_id, user.username, lot_id, ColisOperation.CREATE, data, check.get("client_name")
    )
    await queue_task(state, command, event, photo)
    return Accepted(task_id=task_id)


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
    colis_id: ItemId, request: Request, user: CurrentUser, state: StateDep
) -> Any:
    """Multipart: only the fields to change, and optionally a new `image` (or the
    `upload_id` of a resumable upload, as for the creation)."""
    try:
        fields, photo = await read_form(request, state)
    except _Invalid as e:
        return _invalid_response(e)
    try:
        check = await call_colis(state, "precheck_update", colis_id=colis_id)
        current = check["colis"]
        merged = {k: current[k] for k in FORM_FIELDS if current.get(k) not in (None, "")}
        try:
            data = ColisData.model_validate({**merged, **fields})
        except ValidationError as e:
            discard(photo)
            return _invalid_response(invalid_form(e))  # type: ignore[arg-type]
        task_id = uuid4().hex
        upload_id, pending = await keep_photo(state, user, photo, task_id)
    except BaseException:
        discard(photo)
        raise
    lot_id = check["lot"]["id"]
    command = UpdateColis(
        producer="gateway",
        job_id=task_id,
        task_id=task_id,
        user_id=user.username,
        lot_id=lot_id,
        colis_id=colis_id,
        colis_data=data,
        upload_id=upload_id,
        image_pending=pending,
    )
    event = pending_event(
        task_id, user.username, lot_id, ColisOperation.UPDATE, data, current.get("client_name")
    )
    await queue_task(state, command, event, photo)
    return Accepted(task_id=task_id)


@router.get("/api/colis/{colis_id}", responses=error_responses(404))
async def get_colis(colis_id: ItemId, user: CurrentUser, state: StateDep) -> Any:
    return await call_colis(state, "get_colis", colis_id=colis_id)


@router.get(
    "/api/colis/{colis_id}/history", response_model=AuditPage, responses=error_responses(404)
)
async def get_colis_history(
    colis_id: ItemId, user: CurrentUser, state: StateDep, limit: Limit = 100, before: Before = None
) -> Any:
    """Who created the parcel, changed it, cancelled or retried its tasks, and when, newest
    first: open to every signed-in user (lots and parcels are the agency's shared data).
    A parcel whose creation was cancelled is gone, its history stays."""
    return await history(state, "colis_history", limit, before, colis_id=colis_id)


@router.get("/api/lots/{lot_id}/colis", responses=error_responses(404))
async def list_lot_colis(
    lot_id: ItemId,
    user: CurrentUser,
    state: StateDep,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Any:
    return await call_colis(state, "list_lot_colis", lot_id=lot_id, limit=limit)


@router.get(
    "/api/colis/{colis_id}/image",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}, **error_responses(404)},
)
async def get_colis_image(
    colis_id: ItemId, user: CurrentUser, state: StateDep, thumbnail: bool = False
) -> Any:
    found = await call_colis(state, "colis_image", colis_id=colis_id, thumbnail=thumbnail)
    name = str(found.get("file", ""))
    path: FsPath = state.settings.data_dir / "images" / "colis" / name
    if not _IMAGE_FILE.fullmatch(name) or not await asyncio.to_thread(path.is_file):
        raise HTTPException(404, detail="Photo introuvable.")
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private"})
