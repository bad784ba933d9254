"""Asking import-svc for an import: the command, and the files of the page handed over.

Shared by the routes that start one (routers/imports.py) and those that start a retry
(routers/import_control.py); routers never import each other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from uuid import uuid4

from fastapi import HTTPException, UploadFile, status
from pydantic import BaseModel

from gateway.commands import Publishers, send_command
from gateway.handover import Buckets, hand_over_import, take_back_import
from gateway.settings import GatewaySettings
from gateway.upload_access import safe_file_name
from gateway.upload_store import import_folder
from jauge_shared.contracts import ImportKind, RequestImport

CHUNK = 1024 * 1024
MAX_FILES = 10_000

IMPORT_KINDS: tuple[tuple[str, str], ...] = (
    ("edi", "Factures fournisseurs EDI"),
    ("bbgr_statment", "Relevés BBGR"),
    ("bbgr_monthly", "Mensuel BBGR"),
    ("bbgr_retours", "Retours BBGR"),
    ("bbgr_receptions", "Réceptions BBGR"),
)


def kind_label(kind: ImportKind) -> str:
    return dict(IMPORT_KINDS).get(kind.value, kind.value)


class Accepted(BaseModel):
    job_id: str
    status: str = "queued"


async def request_import(
    publishers: Publishers,
    kind: ImportKind,
    user_id: str,
    upload_ids: list[str] | None = None,
    *,
    retry_of: str | None = None,
) -> str:
    """import.request sent and confirmed (or the 503); the new job's id."""
    job_id = uuid4().hex
    command = RequestImport(
        producer="gateway",
        job_id=job_id,
        kind=kind,
        user_id=user_id,
        upload_ids=upload_ids or [],
        retry_of=retry_of,
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


async def upload_import_files(
    files: list[UploadFile],
    settings: GatewaySettings,
    buckets: Buckets,
    send: Callable[[list[str]], Awaitable[str]],
) -> str:
    """The files handed over to import-svc as one upload, then `send` asks for the import
    (a new one, or a retry); the new job's id. Nothing is left behind on a refusal."""
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
        job_id = await send([upload_id])
    except BaseException:
        # nothing was accepted: leave no orphaned upload behind
        if handed_over:
            await take_back_import(buckets, upload_id, len(names))
        raise
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)  # import-svc has its blobs
    return job_id
