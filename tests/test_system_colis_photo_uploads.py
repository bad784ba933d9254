"""Resumable photo uploads on the real broker and store (issue 20): the parcel form names
an upload whose bytes are still coming, the task waits for them in `image_uploading`
without a worker, runs on when the last chunk arrives (`colis.photo_ready`), and fails
past its deadline, to be retried with a new photo."""

from __future__ import annotations

import pytest
from system_colis_support import FORM, Api, photo_bytes, start

pytestmark = pytest.mark.system

CHUNK = 128 * 1024


async def open_upload(api: Api, size: int | None) -> str:
    body = {"type": "image/jpeg"} | ({"size": size} if size else {})
    response = await api.http.post("/api/uploads", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def send(
    api: Api, upload_id: str, data: bytes, start_at: int = 0, until: int | None = None
) -> None:
    for offset in range(start_at, until or len(data), CHUNK):
        response = await api.http.patch(
            f"/api/uploads/{upload_id}",
            content=data[offset : offset + CHUNK],
            headers={
                "Upload-Offset": str(offset),
                "Upload-Length": str(len(data)),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert response.status_code == 204, response.text
        assert response.headers["Upload-Offset"] == str(min(offset + CHUNK, len(data)))


async def test_the_task_waits_for_its_photo_then_completes_and_a_late_one_fails(
    make_stack, test_env
) -> None:
    stack = start(make_stack, test_env.env(), JAUGE_PHOTO_DEADLINE_S="4")
    base = stack.service("gateway").url
    alice, bob = await Api.as_user(base, "alice"), await Api.as_user(base, "bob")
    try:
        lot = await alice.lot()
        photo = photo_bytes()
        upload_id = await open_upload(alice, len(photo))
        # the first chunk before the form, the rest after: the form does not wait
        await send(alice, upload_id, photo, until=CHUNK)
        answer = await alice.http.post(
            f"/api/lots/{lot['id']}/colis", data={**FORM, "upload_id": upload_id}
        )
        assert answer.status_code == 202, answer.text
        task_id = answer.json()["task_id"]
        waiting = await alice.wait(
            task_id, lambda t: t["current_step"] == "En attente de la photo…"
        )
        assert waiting["step_status"] == "image_uploading" and waiting["percent"] == 40

        # only its owner sees or feeds the upload; a chunk off the offset is refused
        assert (await bob.http.head(f"/api/uploads/{upload_id}")).status_code == 404
        assert (
            await bob.http.patch(
                f"/api/uploads/{upload_id}", content=b"x", headers={"Upload-Offset": str(CHUNK)}
            )
        ).status_code == 404
        head = await alice.http.head(f"/api/uploads/{upload_id}")
        assert head.headers["Upload-Offset"] == str(CHUNK)
        wrong = await alice.http.patch(
            f"/api/uploads/{upload_id}", content=b"xyz", headers={"Upload-Offset": str(CHUNK + 5)}
        )
        assert wrong.status_code == 409 and wrong.headers["Upload-Offset"] == str(CHUNK)
        # the first chunk again (its answer lost): harmless
        await send(alice, upload_id, photo, until=CHUNK)
        assert (await alice.http.head(f"/api/uploads/{upload_id}")).headers["Upload-Offset"] == str(
            CHUNK
        )

        await send(alice, upload_id, photo, start_at=CHUNK)
        done = await alice.wait(task_id)
        assert done["step_status"] == "completed", done
        # one photo, one task: naming it again in another form is refused
        reused = await alice.http.post(
            f"/api/lots/{lot['id']}/colis", data={**FORM, "upload_id": upload_id}
        )
        assert reused.status_code == 409, reused.text
        parcel = (await alice.http.get(f"/api/colis/{done['colis_id']}")).json()
        image = await alice.http.get(parcel["image_url"])
        assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"

        # a photo that never comes: the task fails in French at the deadline...
        never = await open_upload(alice, None)
        answer = await alice.http.post(
            f"/api/lots/{lot['id']}/colis", data={**FORM, "upload_id": never}
        )
        late_id = answer.json()["task_id"]
        late = await alice.wait(late_id, timeout_s=60)
        assert late["step_status"] == "failed_final"
        assert late["message"] == (
            "La photo n'est pas arrivée à temps : relancez la tâche avec une nouvelle photo."
        )
        # ...and is retried with a new photo, sent after the retry
        again = await open_upload(alice, len(photo))
        retried = await alice.http.post(f"/api/tasks/{late_id}/retry", json={"upload_id": again})
        assert retried.status_code == 202, retried.text
        await alice.wait(late_id, lambda t: t["current_step"] == "En attente de la photo…")
        await send(alice, again, photo)
        assert (await alice.wait(late_id))["step_status"] == "completed"

        # what is not an image is refused as soon as its first bytes are in
        other = await open_upload(alice, 100)
        refused = await alice.http.patch(
            f"/api/uploads/{other}", content=b"<html>" + b"x" * 94, headers={"Upload-Offset": "0"}
        )
        assert refused.status_code == 415
        assert (await alice.http.head(f"/api/uploads/{other}")).status_code == 404
        # someone else's upload cannot be named by a form
        foreign = await open_upload(bob, 10)
        stolen = await alice.http.post(
            f"/api/lots/{lot['id']}/colis", data={**FORM, "upload_id": foreign}
        )
        assert stolen.status_code == 404
    finally:
        await alice.close()
        await bob.close()
