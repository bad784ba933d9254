"""routers/uploads.py: resumable uploads, found by their owner only; a photo bound to a
task is announced (`colis.photo_ready`) when its last byte is in."""

from __future__ import annotations

import asyncio
import io
import os
import time
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


async def test_a_last_chunk_handed_over_slowly_has_one_writer_which_no_replica_resumes(
    gw: Gateway,
) -> None:
    """The last chunk's handover runs in its request but is tracked like the handovers
    after an answer: touched while it runs, so a replica sharing the folder (here, this
    gateway's own resumer, as if the file were left behind) never starts a second
    writer of the same photo."""
    photo = png()
    gw.buckets.uploads.gate = asyncio.Event()
    async with gw.client() as c:
        opened = await c.post("/api/uploads", json={"type": "image/png"}, headers=gw.auth())
        upload_id = opened.json()["id"]
        last = {**gw.auth(), "Upload-Offset": "0", "Upload-Length": str(len(photo))}
        sent = asyncio.create_task(
            c.patch(f"/api/uploads/{upload_id}", content=photo, headers=last)
        )
        for _ in range(200):
            if upload_id in gw.handovers._running:
                break
            await asyncio.sleep(0.01)
        file = gw.handovers.store.folder / upload_id
        long_ago = time.time() - 3600
        os.utime(file, (long_ago, long_ago))
        resumed = await gw.handovers.resume(older_than_s=30)
        await asyncio.to_thread(gw.handovers._touch_running)
        touched = file.stat().st_mtime
        gw.buckets.uploads.gate.set()
        done = await sent
    assert resumed == 0
    assert touched > long_ago + 3000
    assert done.status_code == 204, done.text
    assert gw.buckets.uploads.blobs[upload_id] == photo
    assert not file.exists()  # handed over: the gateway's copy is gone


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
