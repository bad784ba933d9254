"""routers/colis.py: the parcel form (202 and a command for colis-svc), reads, photos."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from PIL import Image

from gateway.photo_handovers import PhotoHandovers
from gateway.upload_store import UploadStore

if TYPE_CHECKING:
    from conftest import Gateway

FORM = {
    "client_id": "C1",
    "type_transport": "cargo",
    "longueur": "40",
    "largeur": "30",
    "hauteur": "20",
    "poids": "7.5",
}


def precheck_ok(key: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "result": {"client_name": "Optique Dupont"}}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


def commands(gw: Gateway, kind: str) -> list[Any]:
    return [m for m in gw.published if m.type == kind]


async def test_a_valid_form_is_accepted_at_once_and_queued(gw: Gateway) -> None:
    gw.rpc.answer = precheck_ok
    async with gw.client() as c:
        response = await c.post("/api/lots/L1/colis", data=FORM, headers=gw.auth())
    assert response.status_code == 202, response.text
    [command] = commands(gw, "colis.create")
    assert response.json() == {"task_id": command.task_id, "status": "pending"}
    # the command only: colis-svc alone announces the task (its seq 0 included)
    assert [m.type for m in gw.published] == ["colis.create"]
    assert (command.lot_id, command.user_id) == ("L1", "alice")
    assert str(command.colis_data.poids) == "7.5" and command.upload_id is None
    assert gw.rpc.asked_about("precheck", "L1", "C1")


async def test_an_invalid_form_is_a_french_422_before_asking_anyone(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post(
            "/api/lots/L1/colis", data={**FORM, "poids": "-1"}, headers=gw.auth()
        )
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "Données invalides : vérifiez les champs indiqués."
    assert [e["field"] for e in body["errors"]] == ["poids"]
    assert not gw.rpc.asked and not gw.published


async def test_an_unknown_field_is_refused(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post("/api/lots/L1/colis", data={**FORM, "prix": "0"}, headers=gw.auth())
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "prix", "message": "champ inconnu"}]


async def test_a_closed_lot_is_colis_svcs_409_and_nothing_is_queued(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": False, "status": 409, "detail": "Lot fermé."}
    async with gw.client() as c:
        response = await c.post("/api/lots/L1/colis", data=FORM, headers=gw.auth())
    assert response.status_code == 409
    assert response.json() == {"detail": "Lot fermé."}
    assert not gw.published


async def post_with_photo(gw: Gateway) -> Any:
    async with gw.client() as c:
        return await c.post(
            "/api/lots/L1/colis",
            data=FORM,
            files={"image": ("photo.png", png(), "image/png")},
            headers=gw.auth(),
        )


def folder_files(gw: Gateway) -> list[str]:
    """The photos left in the gateway's folder (its hidden notes aside)."""
    folder = gw.settings.data_dir / "uploads" / "colis"
    return [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


async def test_a_photo_is_handed_over_after_the_answer_and_the_task_told(gw: Gateway) -> None:
    gw.rpc.answer = precheck_ok
    response = await post_with_photo(gw)
    assert response.status_code == 202, response.text
    [command] = commands(gw, "colis.create")
    # the answer did not wait for the store: the task knows its photo may still come
    assert command.upload_id and command.image_pending
    await gw.photos_handed_over()
    assert gw.buckets.uploads.blobs[command.upload_id] == png()
    [ready] = commands(gw, "colis.photo_ready")
    assert (ready.task_id, ready.upload_id, ready.user_id) == (
        command.task_id,
        command.upload_id,
        "alice",
    )
    assert folder_files(gw) == []  # nothing left in the gateway's folder


async def test_a_form_with_a_photo_reads_its_user_once(gw: Gateway) -> None:
    # the upload routes' middleware reads the user before the body; the route uses it
    gw.rpc.answer = precheck_ok
    reads = gw.users.reads
    response = await post_with_photo(gw)
    assert response.status_code == 202, response.text
    assert gw.users.reads - reads == 1


async def test_a_photo_the_store_refuses_is_handed_over_when_it_is_back(gw: Gateway) -> None:
    gw.rpc.answer = precheck_ok
    gw.buckets.uploads.failures = 2
    response = await post_with_photo(gw)
    assert response.status_code == 202, response.text  # the form does not wait for it
    [command] = commands(gw, "colis.create")
    assert not commands(gw, "colis.photo_ready")
    await gw.photos_handed_over()  # two tries refused, the third in
    assert gw.buckets.uploads.blobs[command.upload_id] == png()
    assert [r.upload_id for r in commands(gw, "colis.photo_ready")] == [command.upload_id]


async def test_a_photo_left_by_a_gateway_that_stopped_is_handed_over_at_start(
    gw: Gateway,
) -> None:
    gw.rpc.answer = precheck_ok
    gw.buckets.uploads.failures = 1_000  # the store away until the process "dies"
    response = await post_with_photo(gw)
    assert response.status_code == 202, response.text
    [command] = commands(gw, "colis.create")
    await gw.handovers.close(grace_s=0.1)  # gone, its handover with it
    assert folder_files(gw) == [command.upload_id] and not gw.buckets.uploads.blobs

    gw.buckets.uploads.failures = 0
    restarted = PhotoHandovers(
        UploadStore(gw.settings.data_dir), gw.buckets, gw.handovers.publishers
    )
    assert await restarted.resume(older_than_s=0) == 1
    assert await restarted.drain(timeout_s=10)
    assert gw.buckets.uploads.blobs[command.upload_id] == png()
    assert [r.task_id for r in commands(gw, "colis.photo_ready")] == [command.task_id]
    assert folder_files(gw) == []
    assert await restarted.resume(older_than_s=0) == 0  # handed over once


async def test_a_photo_of_a_refused_command_is_not_left_behind(gw: Gateway) -> None:
    gw.rpc.answer = precheck_ok
    gw.refuse[0] = True
    response = await post_with_photo(gw)
    assert response.status_code == 503
    folder = gw.settings.data_dir / "uploads" / "colis"
    assert folder.is_dir() and not any(folder.iterdir())  # written as it came, then removed
    await gw.photos_handed_over()
    assert gw.buckets.uploads.blobs == {}  # never handed over


async def test_an_update_changes_only_the_fields_sent(gw: Gateway) -> None:
    current = {**FORM, "client_name": "Optique Dupont", "poids": "7.5"}
    gw.rpc.answer = lambda key, body: {
        "ok": True,
        "result": {"colis": current, "lot": {"id": "L7"}},
    }
    async with gw.client() as c:
        response = await c.patch("/api/colis/P1", data={"poids": "9"}, headers=gw.auth())
    assert response.status_code == 202, response.text
    [command] = commands(gw, "colis.update")
    assert (command.colis_id, command.lot_id) == ("P1", "L7")
    assert str(command.colis_data.poids) == "9" and str(command.colis_data.longueur) == "40"


async def test_a_parcels_photo_is_served_from_the_blob_colis_svc_names(gw: Gateway) -> None:
    await gw.buckets.photos.put("P1.thumb.jpg", b"\xff\xd8jpeg")
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"file": "P1.thumb.jpg"}}
    async with gw.client() as c:
        found = await c.get("/api/colis/P1/image", params={"thumbnail": True}, headers=gw.auth())
    assert found.status_code == 200
    assert found.content == b"\xff\xd8jpeg" and found.headers["content-type"] == "image/jpeg"
    assert gw.rpc.asked_about("colis_image", "P1")


async def test_a_photo_name_that_is_a_path_is_never_served(gw: Gateway) -> None:
    await gw.buckets.photos.put("secret.jpg", b"secret")
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"file": "../../secret.jpg"}}
    async with gw.client() as c:
        response = await c.get("/api/colis/P1/image", headers=gw.auth())
    assert response.status_code == 404
    assert response.json() == {"detail": "Photo introuvable."}


async def test_a_parcel_and_its_history_are_read_from_colis_svc(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"ok": True, "result": {"id": "P1", "poids": "7.5"}}
    async with gw.client() as c:
        parcel = await c.get("/api/colis/P1", headers=gw.auth())
        gw.rpc.answer = lambda key, body: {"ok": True, "result": {"entries": [], "next": None}}
        history = await c.get("/api/colis/P1/history", headers=gw.auth())
    assert parcel.json() == {"id": "P1", "poids": "7.5"}
    assert history.json() == {"entries": [], "next": None}
    assert gw.rpc.asked_about("colis_history", "P1")


async def test_an_open_lot_is_asked_about_once_for_a_burst_of_parcels(gw: Gateway) -> None:
    gw.rpc.answer = precheck_ok
    async with gw.client() as c:
        for _ in range(3):
            response = await c.post("/api/lots/L1/colis", data=FORM, headers=gw.auth())
            assert response.status_code == 202, response.text
        assert len(commands(gw, "colis.create")) == 3
        assert sum(request.get("method") == "precheck" for _, request in gw.rpc.asked) == 1
        # closing the lot through this gateway forgets it: the next parcel asks again
        gw.rpc.answer = lambda key, body: {"ok": True, "result": lot_doc("ferme")}
        assert (await c.post("/api/lots/L1/close", headers=gw.auth())).status_code == 200
        gw.rpc.answer = lambda key, body: {"ok": False, "status": 409, "detail": "Lot fermé."}
        response = await c.post("/api/lots/L1/colis", data=FORM, headers=gw.auth())
    assert response.status_code == 409
    assert len(commands(gw, "colis.create")) == 3


def lot_doc(statut: str) -> dict[str, Any]:
    return {
        "id": "L1",
        "numero_lot": "CARGO-20261207001",
        "type_lot": "cargo",
        "statut": statut,
        "created_at": "2026-12-07T00:00:00Z",
    }
