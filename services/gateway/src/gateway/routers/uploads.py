"""Resumable uploads: the parcel form answers before its photo has arrived.

Agents are on slow mobile links. The browser shrinks the photo to what the pipeline keeps,
opens an upload (`POST /api/uploads`), submits the form with its `upload_id` (answered at
once), then sends the bytes in the background in chunks at known offsets (`PATCH`, tus-
like): after a dropped connection or a reload it asks where the upload stands (`HEAD`)
and goes on from there. When the last byte is in, the task waiting for it in
`image_uploading` is told (`colis.photo_ready`); colis-svc still checks and re-encodes
the photo as it does for the multipart form.

Files to import go up the same way, one upload each (`purpose: import`), and the import
is asked for those that arrived (`POST /api/imports/uploaded`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from pydantic import BaseModel, Field

from gateway.deps import CurrentUser, HandoversDep, PublishersDep, SettingsDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.photo_handovers import tell_task
from gateway.photo_stream import PHOTO_TYPES, WRONG_TYPE, is_image
from gateway.upload_access import limit_of, owned_in, safe_file_name, too_large
from gateway.upload_store import ImportUploadStore, OffsetMismatch, TooLarge, Upload, UploadStore

logger = logging.getLogger("gateway.uploads")
router = APIRouter(prefix="/api/uploads", tags=["uploads"], responses=AUTHENTICATED)

UploadId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
NO_STORE = {"Cache-Control": "no-store"}


class OpenUpload(BaseModel):
    type: str = Field(max_length=100, examples=["image/jpeg"])
    size: int | None = Field(
        default=None,
        gt=0,
        description="Bytes to come; may be declared later with `Upload-Length` on a PATCH.",
    )
    purpose: Literal["photo", "import"] = Field(
        default="photo",
        description="A parcel photo (name it as the form's `upload_id`), or a file to "
        "import (name it in `POST /api/imports/uploaded`).",
    )
    name: str | None = Field(default=None, description="An import file's name.")


class UploadView(BaseModel):
    id: str
    purpose: str
    name: str | None = None
    type: str
    size: int | None
    offset: int
    complete: bool
    task_id: str | None = None


def view(upload: Upload) -> UploadView:
    return UploadView(
        id=upload.id,
        purpose=upload.purpose,
        name=upload.name,
        type=upload.type,
        size=upload.size,
        offset=upload.offset,
        complete=upload.complete,
        task_id=upload.task_id,
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadView,
    responses=error_responses(400, 413, 415, e400="An import file's name is refused"),
)
async def open_upload(body: OpenUpload, user: CurrentUser, settings: SettingsDep) -> UploadView:
    """Opens a resumable upload; send its bytes with PATCH. A photo's `id` is named as
    `upload_id` in the parcel form (before or after the bytes: the task waits)."""
    if body.purpose == "import":
        name = safe_file_name(body.name)
        if body.size is not None and body.size > settings.max_upload_bytes:
            raise too_large(settings, "import")
        store = ImportUploadStore(settings.data_dir)
        opened = await asyncio.to_thread(
            store.open, user.username, body.type.lower(), body.size, name
        )
        return view(opened)
    if body.type.lower() not in PHOTO_TYPES:
        raise HTTPException(415, detail=WRONG_TYPE)
    if body.size is not None and body.size > settings.max_photo_bytes:
        raise too_large(settings)
    photos = UploadStore(settings.data_dir)
    await asyncio.to_thread(photos.sweep_now_and_then, settings.photo_upload_age_s)
    upload = await asyncio.to_thread(photos.open, user.username, body.type.lower(), body.size)
    return view(upload)


@router.get("/{upload_id}", response_model=UploadView, responses=error_responses(404))
async def get_upload(upload_id: UploadId, user: CurrentUser, settings: SettingsDep) -> Any:
    return view(owned_in(settings, user, upload_id)[1])


@router.head("/{upload_id}", responses=error_responses(404))
async def upload_offset(upload_id: UploadId, user: CurrentUser, settings: SettingsDep) -> Response:
    """Where the upload stands: `Upload-Offset` (bytes received) and `Upload-Length`."""
    upload = owned_in(settings, user, upload_id)[1]
    headers = {"Upload-Offset": str(upload.offset), **NO_STORE}
    if upload.size is not None:
        headers["Upload-Length"] = str(upload.size)
    # no body, but the type a GET of the same upload answers in (its OpenAPI documents it)
    return Response(status_code=200, headers=headers, media_type="application/json")


def tus_header(request: Request, name: str, *, minimum: int) -> int | None:
    """`Upload-Offset` or `Upload-Length`, read here rather than as declared header
    parameters: an HTTP request may carry any other header (proxies add theirs), and
    schemathesis counts an undeclared header beside declared ones as a violation."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 15 or int(raw) < minimum:
        raise HTTPException(400, detail=f"En-tête {name} invalide : un nombre entier attendu.")
    return int(raw)


@router.patch(
    "/{upload_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        400, 404, 409, 413, 415, e409="The chunk does not start at the offset"
    ),
)
async def send_chunk(
    upload_id: UploadId,
    request: Request,
    user: CurrentUser,
    settings: SettingsDep,
    publishers: PublishersDep,
    handovers: HandoversDep,
) -> Response:
    """One chunk (the raw body) at the header `Upload-Offset` (required), which must be
    the bytes received so far (else 409 with the right `Upload-Offset`); a chunk sent
    again is harmless. The size may be declared here with the header `Upload-Length` if
    it was not when opening. (The two headers are read by the route, not declared as
    parameters: see `tus_header`.)"""
    upload_offset = tus_header(request, "Upload-Offset", minimum=0)
    upload_length = tus_header(request, "Upload-Length", minimum=1)
    if upload_offset is None:
        raise HTTPException(400, detail="En-tête Upload-Offset manquant.")
    store, upload = owned_in(settings, user, upload_id)
    limit = limit_of(settings, upload.purpose)
    chunk = await request.body()
    if upload_length is not None:
        if upload_length > limit:
            raise too_large(settings, upload.purpose)
        if upload.size is not None and upload.size != upload_length:
            raise HTTPException(409, detail="Taille de l'envoi différente de celle annoncée.")
        store.declare_size(upload, upload_length)
    before = upload.offset
    try:
        finished = store.append(upload, upload_offset, chunk, limit)
    except OffsetMismatch as e:
        return Response(
            status_code=409,
            content='{"detail": "Position d\'envoi incorrecte : reprenez à Upload-Offset."}',
            media_type="application/json",
            headers={"Upload-Offset": str(e.offset), **NO_STORE},
        )
    except TooLarge as e:
        raise too_large(settings, upload.purpose) from e
    first_bytes_in = before < 16 <= upload.offset or (finished and before < 16)
    # the file's kind, as soon as its first bytes are in: the server still checks (and
    # colis-svc decodes and re-encodes whatever arrives)
    photo = upload.purpose == "photo"
    if photo and first_bytes_in and not is_image(store.head(upload)):
        store.discard(upload_id)
        raise HTTPException(415, detail="Photo refusée : le fichier n'est pas une image reconnue.")
    if finished:
        # the photo to colis-svc's bucket, then complete; the task read after that, so a
        # task bound meanwhile is told here or finds the photo there (bind_upload)
        await handovers.hand_over_now(store, upload)
        upload.task_id = (await asyncio.to_thread(store.get, upload_id) or upload).task_id
    if photo and upload.complete and upload.task_id:
        # also when a finished upload is sent its last chunk again: that client may not
        # have seen the answer of a first try whose notice was not delivered
        await tell_task(publishers, upload)
        if finished:
            logger.info("photo arrived", extra={"upload_id": upload.id, "task_id": upload.task_id})
    return Response(status_code=204, headers={"Upload-Offset": str(upload.offset), **NO_STORE})
