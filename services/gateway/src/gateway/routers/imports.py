"""Imports: started at once (the work goes to import-svc), and their per-file report."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from pydantic import BaseModel, Field, StringConstraints

from gateway.commands import Publishers, send_command
from gateway.deps import BucketsDep, CurrentUser, PublishersDep, RpcDep, SettingsDep, ViewDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.handover import hand_over_import, take_back_import
from gateway.rpc import ask
from gateway.upload_access import safe_file_name
from gateway.upload_store import ImportUploadStore, find_upload, import_folder
from jauge_shared.contracts import ImportKind, RequestImport
from jauge_shared.contracts.import_rpc import ImportReport, ImportReportRequest
from jauge_shared.topology import RK

router = APIRouter(prefix="/api/imports", tags=["imports"], responses=AUTHENTICATED)

CHUNK = 1024 * 1024
MAX_FILES = 10_000


class ImportRequestBody(BaseModel):
    kind: ImportKind


class Accepted(BaseModel):
    job_id: str
    status: str = "queued"


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(503),
)
async def start_import(
    body: ImportRequestBody, user: CurrentUser, publishers: PublishersDep
) -> Accepted:
    """Import the files waiting in the kind's inbox; follow the job on /ws or /api/jobs."""
    return Accepted(job_id=await request_import(publishers, body.kind, user.username))


async def request_import(
    publishers: Publishers, kind: ImportKind, user_id: str, upload_ids: list[str] | None = None
) -> str:
    """import.request sent and confirmed (or the 503); the new job's id."""
    job_id = uuid4().hex
    command = RequestImport(
        producer="gateway", job_id=job_id, kind=kind, user_id=user_id, upload_ids=upload_ids or []
    )
    await send_command(publishers, command)
    return job_id


async def _save(upload: UploadFile, folder: Path, name: str, max_bytes: int) -> None:
    """Streamed to a hidden name, renamed when complete: import-svc never sees half a file."""
    partial = folder / f".{name}.part"
    size = 0
    with partial.open("wb") as out:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise HTTPException(
                    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                    detail=f"Fichier trop volumineux : « {name} » dépasse "
                    f"{max_bytes // (1024 * 1024)} Mo.",
                )
            await asyncio.to_thread(out.write, chunk)
    os.replace(partial, folder / name)


@router.post(
    "/upload",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(400, 413, 429, 503),
)
async def upload_import(
    kind: Annotated[ImportKind, Form()],
    files: Annotated[
        list[UploadFile], File(description="The files to import, and only them.", min_length=1)
    ],
    user: CurrentUser,
    settings: SettingsDep,
    publishers: PublishersDep,
    buckets: BucketsDep,
) -> Accepted:
    """Import exactly the uploaded files (not the inbox)."""
    if not files:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Aucun fichier envoyé.")
    if len(files) > MAX_FILES:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=f"Trop de fichiers (au plus {MAX_FILES})."
        )
    names = [safe_file_name(f.filename) for f in files]
    if len(set(names)) != len(names):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="Plusieurs fichiers envoyés portent le même nom."
        )
    upload_id = uuid4().hex
    folder = import_folder(settings.data_dir, upload_id)  # the gateway's own
    handed_over = False
    try:
        folder.mkdir(parents=True)
        for upload, name in zip(files, names, strict=True):
            await _save(upload, folder, name, settings.max_upload_bytes)
        paths = [folder / name for name in names]
        handed_over = True
        await hand_over_import(buckets, upload_id, paths, list(names))
        job_id = await request_import(publishers, kind, user.username, [upload_id])
    except BaseException:
        # nothing was accepted: leave no orphaned upload behind
        if handed_over:
            await take_back_import(buckets, upload_id, len(names))
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)  # import-svc has its blobs
    return Accepted(job_id=job_id)


class UploadedImport(BaseModel):
    kind: ImportKind
    upload_ids: list[Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]] = Field(
        min_length=1, max_length=MAX_FILES
    )


class AcceptedUploads(Accepted):
    files: int
    missing: list[str] = Field(description="Uploads left out: unknown or not complete.")


@router.post(
    "/uploaded",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedUploads,
    responses=error_responses(400, 503),
)
async def import_uploaded(
    body: UploadedImport, user: CurrentUser, settings: SettingsDep, publishers: PublishersDep
) -> AcceptedUploads:
    """Import the files sent with `/api/uploads` (`purpose: import`, one upload each, in
    the background): the import starts with those that have arrived; the others are
    listed in `missing`."""
    arrived, missing = [], []
    for upload_id in dict.fromkeys(body.upload_ids):
        found = await asyncio.to_thread(find_upload, settings.data_dir, upload_id)
        upload = found[1] if found else None
        if (
            upload is not None
            and upload.owner == user.username
            and upload.purpose == "import"
            and upload.complete
        ):
            arrived.append(upload_id)
        else:
            missing.append(upload_id)
    if not arrived:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail="Aucun fichier arrivé : renvoyez les fichiers."
        )
    job_id = await request_import(publishers, body.kind, user.username, arrived)
    # the files are import-svc's (its bucket) since they arrived: the notes, ours, go
    store = ImportUploadStore(settings.data_dir)
    for upload_id in arrived:
        await asyncio.to_thread(store.forget, upload_id)
    return AcceptedUploads(job_id=job_id, files=len(arrived), missing=missing)


@router.get(
    "/{job_id}/report",
    response_model=ImportReport,
    responses=error_responses(404, 503, 504),
)
async def import_report(job_id: str, user: CurrentUser, view: ViewDep, rpc: RpcDep) -> ImportReport:
    """Every file's result of one import (the progress document keeps only the latest)."""
    job = await view.job(user, job_id)
    if not str(job.get("kind", "")).startswith("import"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Import introuvable.")
    report = await ask(rpc, RK.IMPORT_RPC, ImportReportRequest(job_id=job_id), ImportReport)
    if not report.found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="Import introuvable.")
    return report
