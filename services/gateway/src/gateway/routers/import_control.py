"""An agent's hand on imports: what waits in the inboxes, cancel, retry the failed files,
and the report as CSV with each rejected file and its reason.

The files and the rules are import-svc's: the gateway asks it (`rpc.import`) or sends it
a command (`import.cancel`, `import.request` with `retry_of`), after checking in the
progress read model that the caller may see the import (an agent only their own).
"""

from __future__ import annotations

import base64
import csv
import io
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Path, Response, UploadFile, status
from pydantic import BaseModel

from gateway.commands import send_command
from gateway.deps import BucketsDep, CurrentUser, PublishersDep, RpcDep, SettingsDep, ViewDep
from gateway.errors import AUTHENTICATED, error_responses
from gateway.import_reports import import_job, import_report
from gateway.import_requests import Accepted, request_import, upload_import_files
from gateway.rpc import ask
from jauge_shared.contracts import CancelImport, ImportKind
from jauge_shared.contracts.import_rpc import (
    ImportReport,
    InboxCounts,
    InboxRequest,
    RejectedFile,
    RejectedFileRequest,
)
from jauge_shared.topology import RK

router = APIRouter(tags=["imports"], responses=AUTHENTICATED)

JobIdPath = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
FileIndex = Annotated[int, Path(ge=0, le=1_000_000)]
ENDED = {"completed", "failed", "cancelled"}


class Inbox(BaseModel):
    counts: dict[str, int]


@router.get("/api/inbox", response_model=Inbox, responses=error_responses(503, 504))
async def inbox(user: CurrentUser, rpc: RpcDep) -> Inbox:
    """How many files wait in each kind's inbox: what `POST /api/imports` would take."""
    reply = await ask(rpc, RK.IMPORT_RPC, InboxRequest(), InboxCounts)
    return Inbox(counts={kind.value: reply.counts.get(kind.value, 0) for kind in ImportKind})


@router.post(
    "/api/imports/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(404, 409, 503, e409="The import has already ended"),
)
async def cancel_import(
    job_id: JobIdPath, user: CurrentUser, view: ViewDep, publishers: PublishersDep
) -> Accepted:
    """Stop a queued or running import: its files not yet read go back where they came
    from, and it ends `cancelled` with the counts of what was done (follow it on /ws)."""
    job = await import_job(view, user, job_id)
    if job["status"] == "cancelled":
        raise HTTPException(status.HTTP_409_CONFLICT, detail="Cet import est déjà annulé.")
    if job["status"] in ENDED:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="Cet import est terminé : il ne peut plus être annulé."
        )
    command = CancelImport(producer="gateway", job_id=job_id, user_id=user.username)
    await send_command(publishers, command)
    return Accepted(job_id=job_id, status="cancelling")


@router.post(
    "/api/imports/{job_id}/retry-failed",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(400, 404, 409, 413, 503, 504, e409="Nothing to retry"),
)
async def retry_failed(
    job_id: JobIdPath,
    user: CurrentUser,
    view: ViewDep,
    rpc: RpcDep,
    settings: SettingsDep,
    publishers: PublishersDep,
    buckets: BucketsDep,
    # a list that may be empty rather than None: the schema then offers no `null`, which
    # a multipart form cannot carry (it would come as the text "null")
    files: Annotated[
        list[UploadFile],
        File(description="Corrected files: each replaces the rejected file of its name."),
    ] = [],  # noqa: B006 (FastAPI copies a default, it is never shared)
) -> Accepted:
    """A new import of only the files that failed in this one (as kept by import-svc, or
    replaced by a file sent here under the same name), linked to it both ways."""
    job = await import_job(view, user, job_id)
    if job["status"] not in ENDED:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail="Cet import n'est pas terminé : attendez sa fin pour relancer ses erreurs.",
        )
    report = await import_report(rpc, job_id, settings.report_timeout_s)
    if report.retried_by:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"Les fichiers en erreur de cet import ont déjà été relancés "
            f"(import n° {report.retried_by}).",
        )
    failed = {f.item for f in report.files if f.ok is False}
    if not failed:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail="Aucun fichier en erreur à relancer dans cet import."
        )
    kind = ImportKind(str(report.kind))
    if files:
        unknown = [f.filename for f in files if f.filename not in failed]
        if unknown:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                detail=f"« {unknown[0]} » n'est pas un fichier en erreur de cet import : "
                "donnez au fichier corrigé le nom du fichier qu'il remplace.",
            )

        async def send(ids: list[str]) -> str:
            return await request_import(publishers, kind, user.username, ids, retry_of=job_id)

        new_id = await upload_import_files(files, settings, buckets, send)
        return Accepted(job_id=new_id)
    new_id = await request_import(publishers, kind, user.username, retry_of=job_id)
    return Accepted(job_id=new_id)


STATE = {True: "Importé", False: "En erreur"}
HEADERS = ("Fichier", "État", "Motif", "Factures", "Lignes")


def safe_cell(value: object) -> str:
    """A cell a spreadsheet shows as text: one starting with = + - @ (or a tab or a
    carriage return) would be run as a formula, so it gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def report_csv(report: ImportReport) -> str:
    """One line per file; `;`-separated with a BOM, as French Excel opens it."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(HEADERS)
    for f in report.files:
        state = STATE.get(f.ok, "Non traité") if f.ok is not None else "Non traité"
        lines = f.lines or f.rows
        row = (f.item, state, f.error or "", f.invoices, lines)
        writer.writerow([safe_cell(cell) for cell in row])
    return "\ufeff" + out.getvalue()


def attachment(name: str) -> str:
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


@router.get(
    "/api/imports/{job_id}/report.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "One line per file."},
        **error_responses(404, 503, 504),
    },
)
async def report_as_csv(
    job_id: JobIdPath, user: CurrentUser, view: ViewDep, rpc: RpcDep, settings: SettingsDep
) -> Response:
    """The per-file report as CSV: file, state, reason, invoices, lines."""
    await import_job(view, user, job_id)
    report = await import_report(rpc, job_id, settings.report_timeout_s)
    return Response(
        report_csv(report).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(f"rapport-import-{job_id}.csv")},
    )


async def _rejected(view: Any, user: Any, rpc: Any, job_id: str, index: int, what: str) -> Response:
    await import_job(view, user, job_id)
    request = RejectedFileRequest(job_id=job_id, index=index, what=what)
    reply = await ask(rpc, RK.IMPORT_RPC, request, RejectedFile)
    if not reply.found or reply.name is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="Fichier rejeté introuvable : il a peut-être déjà été relancé.",
        )
    if reply.too_big or reply.content_b64 is None:
        raise HTTPException(
            status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail="Fichier trop volumineux pour être téléchargé ici : demandez-le à l'équipe "
            "technique.",
        )
    media = "text/plain; charset=utf-8" if what == "note" else "application/octet-stream"
    return Response(
        base64.b64decode(reply.content_b64),
        media_type=media,
        headers={
            "Content-Disposition": attachment(reply.name),
            "X-Content-Type-Options": "nosniff",
        },
    )


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file."},
    **error_responses(404, 413, 503, 504),
}


@router.get(
    "/api/imports/{job_id}/files/{index}/rejected",
    response_class=Response,
    responses=FILE_RESPONSES,
)
async def rejected_file(
    job_id: JobIdPath, index: FileIndex, user: CurrentUser, view: ViewDep, rpc: RpcDep
) -> Response:
    """A rejected file of the import (its `index` in the report), as import-svc keeps it."""
    return await _rejected(view, user, rpc, job_id, index, "file")


@router.get(
    "/api/imports/{job_id}/files/{index}/error.txt",
    response_class=Response,
    responses=FILE_RESPONSES,
)
async def rejected_note(
    job_id: JobIdPath, index: FileIndex, user: CurrentUser, view: ViewDep, rpc: RpcDep
) -> Response:
    """Why that file was rejected: its `.error.txt`."""
    return await _rejected(view, user, rpc, job_id, index, "note")
