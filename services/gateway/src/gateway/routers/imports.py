"""Imports: started at once (the work goes to import-svc), and their per-file report."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile, status
from pydantic import BaseModel, Field, StringConstraints

from gateway import import_reports
from gateway.deps import BucketsDep, CurrentUser, PublishersDep, RpcDep, SettingsDep, ViewDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.import_requests import (
    MAX_FILES,
    Accepted,
    kind_label,
    request_import,
    upload_import_files,
)
from gateway.rpc import ask
from gateway.upload_store import ImportUploadStore, find_upload
from jauge_shared.contracts import ImportKind
from jauge_shared.contracts.import_rpc import (
    ImportReport,
    InboxCounts,
    InboxRequest,
)
from jauge_shared.topology import RK

router = APIRouter(prefix="/api/imports", tags=["imports"], responses=AUTHENTICATED)


class ImportRequestBody(BaseModel):
    kind: ImportKind


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(409, 503, 504, e409="Nothing waits in that inbox"),
)
async def start_import(
    body: ImportRequestBody, user: CurrentUser, publishers: PublishersDep, rpc: RpcDep
) -> Accepted:
    """Import the files waiting in the kind's inbox; follow the job on /ws or /api/jobs.
    An empty inbox is refused at once (409), rather than running an empty job."""
    try:
        counts: dict[str, int] | None = (
            await ask(rpc, RK.IMPORT_RPC, InboxRequest(), InboxCounts)
        ).counts
    except HTTPException:
        # import-svc did not answer: the command still goes (or gets its own 503), as
        # before the check; an empty inbox then ends "aucun fichier à importer"
        counts = None
    if counts is not None and not counts.get(body.kind.value):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Aucun fichier à importer : la boîte de réception « {kind_label(body.kind)} » "
            "est vide. Déposez les fichiers ou envoyez-les ci-dessous.",
        )
    return Accepted(job_id=await request_import(publishers, body.kind, user.username))


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

    async def send(upload_ids: list[str]) -> str:
        return await request_import(publishers, kind, user.username, upload_ids)

    return Accepted(job_id=await upload_import_files(files, settings, buckets, send))


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
async def import_report(
    job_id: str, user: CurrentUser, view: ViewDep, rpc: RpcDep, settings: SettingsDep
) -> ImportReport:
    """Every file's result of one import (the progress document keeps only the latest)."""
    await import_reports.import_job(view, user, job_id)
    return await import_reports.import_report(rpc, job_id, settings.report_timeout_s)
