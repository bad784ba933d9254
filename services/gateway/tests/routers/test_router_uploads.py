"""routers/uploads.py: resumable uploads, found by their owner only; a photo bound to a
task is announced (`colis.photo_ready`) when its last byte is in."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from PIL import Image

from jauge_shared.blobs import BlobBeingWritten

if TYPE_CHECKING:
    from conftest import Gateway


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "blue").save(out, "PNG")
    return out.getvalue()


async def test_an_upload_resumes_at_its_offset_and_is_the_owners_only(gw: Gateway) -> None:
    photo = png()
    async with gw.client() as c:
        opened = await c.post(
            "/api/uploads", json={"type": "image/png", "size": len(photo)}, headers=gw.auth()
        )
        upload_id = opened.json()["id"]
        first = await c.patch(
            f"/api/uploads/{upload_id}",
            content=photo[:20],
            headers={**gw.auth(), "Upload-Offset": "0"},
        )
        wrong = await c.patch(
            f"/api/uploads/{upload_id}",
            content=photo[30:],
            headers={**gw.auth(), "Upload-Offset": "30"},
        )
        where = await c.head(f"/api/uploads/{upload_id}", headers=gw.auth())
        theirs = await c.get(f"/api/uploads/{upload_id}", headers=gw.auth("bob"))
    assert opened.status_code == 201
    assert first.status_code == 204 and first.headers["upload-offset"] == "20"
    assert wrong.status_code == 409 and wrong.headers["upload-offset"] == "20"
    assert where.headers["upload-offset"] == "20"
    assert where.headers["upload-length"] == str(len(photo))
    assert theirs.status_code == 404


async def test_a_photo_bound_to_a_task_is_announced_when_complete(gw: Gateway) -> None:
    photo = png()
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"client_name": "Dupont"}}
    form = {
        "client_id": "C1",
        "type_transport": "cargo",
        "longueur": "1",
        "largeur": "1",
        "hauteur": "1",
        "poids": "1",
    }
    async with gw.client() as c:
        opened = await c.post("/api/uploads", json={"type": "image/png"}, headers=gw.auth())
        upload_id = opened.json()["id"]
        queued = await c.post(
            "/api/lots/L1/colis", data={**form, "upload_id": upload_id}, headers=gw.auth()
        )
        done = await c.patch(
            f"/api/uploads/{upload_id}",
            content=photo,
            headers={**gw.auth(), "Upload-Offset": "0", "Upload-Length": str(len(photo))},
        )
    assert queued.status_code == 202 and done.status_code == 204
    [create] = [m for m in gw.published if m.type == "colis.create"]
    assert create.upload_id == upload_id and create.image_pending is True
    [ready] = [m for m in gw.published if m.type == "colis.photo_ready"]
    assert (ready.task_id, ready.upload_id) == (create.task_id, upload_id)


async def test_a_last_chunk_while_a_cut_off_try_is_fresh_is_a_french_503_to_retry(
    gw: Gateway,
) -> None:
    photo = png()
    gw.buckets.uploads.failures = 1
    gw.buckets.uploads.failure = BlobBeingWritten("a" * 32)
    async with gw.client() as c:
        opened = await c.post("/api/uploads", json={"type": "image/png"}, headers=gw.auth())
        upload_id = opened.json()["id"]
        last = {**gw.auth(), "Upload-Offset": "0", "Upload-Length": str(len(photo))}
        busy = await c.patch(f"/api/uploads/{upload_id}", content=photo, headers=last)
        again = await c.patch(f"/api/uploads/{upload_id}", content=photo, headers=last)
    assert busy.status_code == 503, busy.text
    assert busy.json()["detail"].startswith("Fichier en cours d'enregistrement")
    assert busy.headers["Retry-After"]
    assert again.status_code == 204, again.text  # sent again: handed over this time
    assert gw.buckets.uploads.blobs[upload_id] == photo


async def test_a_photo_that_is_no_image_is_refused_from_its_first_bytes(gw: Gateway) -> None:
    async with gw.client() as c:
        opened = await c.post("/api/uploads", json={"type": "image/jpeg"}, headers=gw.auth())
        upload_id = opened.json()["id"]
        response = await c.patch(
            f"/api/uploads/{upload_id}",
            content=b"#!/bin/sh\nrm -rf /\n" * 4,
            headers={**gw.auth(), "Upload-Offset": "0"},
        )
        gone = await c.get(f"/api/uploads/{upload_id}", headers=gw.auth())
    assert response.status_code == 415
    assert gone.status_code == 404
