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

logger = logging.getLogger("gateway.colis")
router = APIRouter(tags=["colis"], responses={**AUTHENTICATED, **THROUGH_BROKER})

ItemId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
FORM_FIELDS = tuple(ColisData.model_fields)
PHOTO_TYPES = {
    "image/jpeg",
    "image/jpg",
    "image/pjpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/tiff",
}
_MAGIC = (
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",
    b"MM\x00*",
)
_CHUNK = 1024 * 1024
_IMAGE_FILE = re.compile(r"^[A-Za-z0-9_-]+(\.thumb)?\.jpg$")
FIELD_LABELS_FR = {
    "missing": "obligatoire",
    "greater_than": "doit être supérieur à {gt}",
    "less_than_equal": "doit être au plus {le}",
    "decimal_parsing": "doit être un nombre",
    "enum": "doit valoir {expected}",
    "string_too_long": "trop long ({max_length} caractères au plus)",
    "string_too_short": "ne doit pas être vide",
    "extra_forbidden": "champ inconnu",
}


class Accepted(BaseModel):
    task_id: str
    status: str = TaskStatus.PENDING.value


def invalid_form(error: ValidationError) -> HTTPException:
    problems = []
    for item in error.errors()[:20]:
        template = FIELD_LABELS_FR.get(item["type"])
        try:
            message = template.format(**item.get("ctx", {})) if template else item["msg"]
        except (KeyError, IndexError):
            message = item["msg"]
        field = ".".join(str(p) for p in item["loc"]) or "body"
        problems.append({"field": field, "message": message})
    return _Invalid(problems)


class _Invalid(HTTPException):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__(422, detail="Données invalides : vérifiez les champs indiqués.")
        self.problems = problems


def _invalid_response(exc: _Invalid) -> JSONResponse:
    return JSONResponse({"detail": exc.detail, "errors": exc.problems}, status_code=422)


UPLOAD_ID_FIELD = re.compile(r"^[0-9a-f]{32}$")


async def read_form(
    request: Request, state: GatewayState
) -> tuple[dict[str, str], UploadFile | str | None]:
    """The form's fields, and its photo: a file part `image`, or the `upload_id` of a
    resumable upload (routers/uploads.py) whose bytes may still be on their way."""
    limit = state.settings.max_photo_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 256 * 1024:
        raise HTTPException(413, detail=f"Photo trop lourde : {limit // 1024 // 1024} Mo au plus.")
    try:
        form = await request.form(max_files=1, max_fields=len(FORM_FIELDS) + 4)
    except Exception as e:
        raise HTTPException(
            400, detail="Formulaire illisible : envoyez un multipart/form-data."
        ) from e
    fields: dict[str, str] = {}
    image: UploadFile | str | None = None
    for key, value in form.multi_items():
        if key == "image":
            if isinstance(value, UploadFile) and value.filename:
                image = value
        elif key == "upload_id" and isinstance(value, str):
            if not UPLOAD_ID_FIELD.fullmatch(value):
                raise _Invalid([{"field": key, "message": "identifiant d'envoi invalide"}])
            image = value
        elif key in FORM_FIELDS and isinstance(value, str):
            if value.strip() != "":
                fields[key] = value
        else:
            raise _Invalid([{"field": key, "message": "champ inconnu"}])
    return fields, image


async def photo_of(
    state: GatewayState, user: User, image: UploadFile | str | None, task_id: str
) -> tuple[str | None, bool]:
    """The task's upload id, and whether its bytes are still coming."""
    if image is None:
        return None, False
    if isinstance(image, str):
        pending = await asyncio.to_thread(bind_upload, state, user, image, task_id)
        return image, pending
    return await store_photo(state, image), False


async def store_photo(state: GatewayState, image: UploadFile) -> str:
    """Checks kind and size, then writes the upload under a name of our own."""
    limit = state.settings.max_photo_bytes
    if (image.content_type or "").lower() not in PHOTO_TYPES:
        raise HTTPException(
            415, detail="Photo refusée : JPEG, PNG, WEBP, GIF, BMP ou TIFF attendu."
        )
    head = await image.read(16)
    await image.seek(0)
    webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if not (webp or any(head.startswith(m) for m in _MAGIC)):
        raise HTTPException(415, detail="Photo refusée : le fichier n'est pas une image reconnue.")
    uploads = state.settings.data_dir / "uploads" / "colis"
    uploads.mkdir(parents=True, exist_ok=True)
    upload_id = uuid4().hex
    target = uploads / upload_id
    partial = uploads / f".{upload_id}.part"
    size = 0
    try:
        with partial.open("wb") as out:
            while chunk := await image.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(
                        413, detail=f"Photo trop lourde : {limit // 1024 // 1024} Mo au plus."
                    )
                out.write(chunk)
        if size == 0:
            raise HTTPException(422, detail="Photo vide : renvoyez le fichier.")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return upload_id


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
        summary={
            "client": client_name or data.client_id,
            "client_id": data.client_id,
            "transport": data.type_transport.value,
            "poids": f"{data.poids} kg",
            "dimensions": f"{data.longueur}×{data.largeur}×{data.hauteur} cm",
        },
    )


async def queue_task(
    state: GatewayState,
    command: CreateColis | UpdateColis,
    event: ColisStepChanged,
    upload_id: str | None,
) -> None:
    """`upload_id`: a photo of the multipart form, removed if the task is not queued (a
    resumable upload stays: the browser submits the form again with it)."""
    try:
        # both confirms awaited at once; their order does not matter, since progress-svc
        # drops a step older than the one it has (the pending event is seq 0)
        await asyncio.gather(
            send_command(state, event),  # type: ignore[arg-type]
            send_command(state, command),
        )
    except HTTPException:
        if upload_id:
            (state.settings.data_dir / "uploads" / "colis" / upload_id).unlink(missing_ok=True)
        raise


@router.post(
    "/api/lots/{lot_id}/colis",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        404, 409, 413, 415, e409="The lot is not open, or the upload is another task's"
    ),
)
async def create_colis(lot_id: ItemId, request: Request, user: CurrentUser, state: StateDep) -> Any:
    """Multipart: the parcel form's fields and an optional `image`, or instead the
    `upload_id` of a resumable upload (`/api/uploads`) still on its way: the answer does
    not wait for the photo. Follow the task on `/ws` or `/api/tasks/{task_id}`."""
    try:
        fields, image = await read_form(request, state)
        try:
            data = ColisData.model_validate(fields)
        except ValidationError as e:
            raise invalid_form(e) from e
    except _Invalid as e:
        return _invalid_response(e)
    check = await read_colis(state, "precheck", lot_id=lot_id, client_id=data.client_id)
    task_id = uuid4().hex
    upload_id, pending = await photo_of(state, user, image, task_id)
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
    await queue_task(state, command, event, None if isinstance(image, str) else upload_id)
    return Accepted(task_id=task_id)


@router.patch(
    "/api/colis/{colis_id}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(
        404, 409, 413, 415, e409="The lot is not open, or the upload is another task's"
    ),
)
async def update_colis(
    colis_id: ItemId, request: Request, user: CurrentUser, state: StateDep
) -> Any:
    """Multipart: only the fields to change, and optionally a new `image` (or the
    `upload_id` of a resumable upload, as for the creation)."""
    try:
        fields, image = await read_form(request, state)
    except _Invalid as e:
        return _invalid_response(e)
    check = await call_colis(state, "precheck_update", colis_id=colis_id)
    current = check["colis"]
    merged = {k: current[k] for k in FORM_FIELDS if current.get(k) not in (None, "")}
    try:
        data = ColisData.model_validate({**merged, **fields})
    except ValidationError as e:
        return _invalid_response(invalid_form(e))  # type: ignore[arg-type]
    task_id = uuid4().hex
    upload_id, pending = await photo_of(state, user, image, task_id)
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
    await queue_task(state, command, event, None if isinstance(image, str) else upload_id)
    return Accepted(task_id=task_id)


@router.get("/api/colis/{colis_id}", responses=error_responses(404))
async def get_colis(colis_id: ItemId, user: CurrentUser, state: StateDep) -> Any:
    return await call_colis(state, "get_colis", colis_id=colis_id)


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
