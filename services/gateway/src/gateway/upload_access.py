"""The caller's own uploads, as the routes see them: a file's name checked, an upload
found only by its owner, its size limit, and a photo bound to the task that waits for it.

Used by the uploads, imports, parcels and tasks routers (the files themselves are kept
by `upload_store`).
"""

from __future__ import annotations

import unicodedata

from fastapi import HTTPException, status

from gateway.settings import GatewaySettings
from gateway.upload_store import Upload, UploadStore, find_upload
from gateway.users import User

MAX_NAME = 200


def safe_file_name(raw: str | None) -> str:
    """The uploaded name as it will be stored, or a 400: never a path, never hidden.

    A name with a folder in it is refused rather than cut down to its last part, so a
    client that sends `../../etc/passwd` learns at once that it is wrong.
    """
    name = unicodedata.normalize("NFC", (raw or "").strip())
    if not name:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail="Un fichier envoyé n'a pas de nom.")
    if (
        "/" in name
        or "\\" in name
        or name in {".", ".."}
        or name.startswith(".")
        or any(unicodedata.category(c) == "Cc" for c in name)
    ):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"Nom de fichier refusé : « {name[:MAX_NAME]} » (ni dossier, ni fichier caché).",
        )
    if len(name.encode()) > MAX_NAME:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            detail=f"Nom de fichier trop long (au plus {MAX_NAME} octets).",
        )
    return name


def limit_of(settings: GatewaySettings, purpose: str) -> int:
    return settings.max_photo_bytes if purpose == "photo" else settings.max_upload_bytes


def too_large(settings: GatewaySettings, purpose: str = "photo") -> HTTPException:
    megabytes = limit_of(settings, purpose) // 1024 // 1024
    if purpose == "photo":
        return HTTPException(413, detail=f"Photo trop lourde : {megabytes} Mo au plus.")
    return HTTPException(413, detail=f"Fichier trop volumineux : {megabytes} Mo au plus.")


def owned_in(
    settings: GatewaySettings, user: User, upload_id: str, purpose: str | None = None
) -> tuple[UploadStore, Upload]:
    """The user's own upload, or a 404 (another agent's upload is not even said to exist)."""
    found = find_upload(settings.data_dir, upload_id)
    if found is None or found[1].owner != user.username or purpose not in (None, found[1].purpose):
        raise HTTPException(404, detail="Envoi introuvable : renvoyez le fichier.")
    return found


def bind_upload(settings: GatewaySettings, user: User, upload_id: str, task_id: str) -> bool:
    """Ties the user's photo upload to the task that will wait for it; True while bytes
    are missing.

    The task is written first and completeness read after, while the last chunk renames
    first and reads the task after: whichever comes second sees the other, so the task is
    either queued with its photo complete or told when it is."""
    upload = owned_in(settings, user, upload_id, "photo")[1]
    if upload.task_id not in (None, task_id):
        raise HTTPException(409, detail="Cette photo est déjà celle d'une autre tâche.")
    store = UploadStore(settings.data_dir)
    store.bind(upload, task_id)
    again = store.get(upload_id)
    return again is None or not again.complete
