"""routers/imports.py: imports started (a command to import-svc) and their report (RPC)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Gateway


async def test_an_import_of_the_inbox_is_a_command_for_import_svc(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"counts": {"edi": 2}}
    async with gw.client() as c:
        response = await c.post("/api/imports", json={"kind": "edi"}, headers=gw.auth())
    assert response.status_code == 202
    [command] = gw.published
    assert command.type == "import.request"
    assert (command.kind.value, command.user_id) == ("edi", "alice")
    assert response.json() == {"job_id": command.job_id, "status": "queued"}


async def test_a_broker_that_refuses_the_command_is_a_french_503(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"counts": {"edi": 2}}
    gw.refuse[0] = True
    async with gw.client() as c:
        response = await c.post("/api/imports", json={"kind": "edi"}, headers=gw.auth())
    assert response.status_code == 503
    assert response.json()["detail"].startswith("Service momentanément indisponible")


async def test_uploaded_files_are_handed_to_import_svc_under_their_names(gw: Gateway) -> None:
    files = [("files", ("a.edi", b"UNA:+.? '")), ("files", ("b.edi", b"UNB+UNOC'"))]
    async with gw.client() as c:
        response = await c.post(
            "/api/imports/upload", data={"kind": "edi"}, files=files, headers=gw.auth()
        )
    assert response.status_code == 202, response.text
    [command] = gw.published
    [upload_id] = command.upload_ids
    # one blob each in import-svc's bucket, named for import-svc; none left in our folder
    imports = gw.buckets.imports
    assert imports.names == {f"{upload_id}.0": "a.edi", f"{upload_id}.1": "b.edi"}
    assert imports.blobs[f"{upload_id}.1"] == b"UNB+UNOC'"
    assert not [p for p in (gw.settings.data_dir / "uploads").rglob("*") if p.is_file()]


async def test_files_of_a_refused_import_are_taken_back(gw: Gateway) -> None:
    gw.refuse[0] = True
    files = [("files", ("a.edi", b"UNA:+.? '"))]
    async with gw.client() as c:
        response = await c.post(
            "/api/imports/upload", data={"kind": "edi"}, files=files, headers=gw.auth()
        )
    assert response.status_code == 503
    assert gw.buckets.imports.blobs == {}
    assert not [p for p in (gw.settings.data_dir / "uploads").rglob("*") if p.is_file()]


async def test_a_file_named_as_a_path_is_refused_and_nothing_is_kept(gw: Gateway) -> None:
    files = [("files", ("../../etc/passwd", b"x"))]
    async with gw.client() as c:
        response = await c.post(
            "/api/imports/upload", data={"kind": "edi"}, files=files, headers=gw.auth()
        )
    assert response.status_code == 400
    assert "Nom de fichier refusé" in response.json()["detail"]
    assert not gw.published
    assert not (gw.settings.data_dir / "uploads").exists()


async def test_uploads_that_never_arrived_are_a_400(gw: Gateway) -> None:
    async with gw.client() as c:
        response = await c.post(
            "/api/imports/uploaded",
            json={"kind": "edi", "upload_ids": ["0" * 32]},
            headers=gw.auth(),
        )
    assert response.status_code == 400
    assert not gw.published


async def test_the_report_of_ones_own_import_comes_from_import_svc(gw: Gateway) -> None:
    job = gw.add_job("alice", kind="import.edi")
    gw.rpc.answer = lambda key, body: {
        "found": True,
        "job_id": body["job_id"],
        "files": [],
    }
    async with gw.client() as c:
        response = await c.get(f"/api/imports/{job['_id']}/report", headers=gw.auth())
    assert response.status_code == 200, response.text
    assert response.json()["job_id"] == job["_id"]
    [(_, request)] = gw.rpc.asked
    assert request["job_id"] == job["_id"]
    # a big import's report takes import-svc longer than the usual reply's deadline
    assert gw.rpc.deadlines == [gw.settings.report_timeout_s]
    assert gw.settings.report_timeout_s > gw.rpc.deadline_s


async def test_no_report_for_another_agents_import_nor_for_a_task(gw: Gateway) -> None:
    theirs = gw.add_job("bob", kind="import.edi")
    task = gw.add_task("alice")
    async with gw.client() as c:
        for job_id in (theirs["_id"], task["_id"]):
            response = await c.get(f"/api/imports/{job_id}/report", headers=gw.auth("alice"))
            assert response.status_code == 404
    assert not gw.rpc.asked  # refused from the read model, import-svc never asked


async def test_import_svc_not_answering_in_time_is_a_504(gw: Gateway) -> None:
    job = gw.add_job("alice", kind="import.edi")
    gw.rpc.answer = lambda key, body: TimeoutError()
    async with gw.client() as c:
        response = await c.get(f"/api/imports/{job['_id']}/report", headers=gw.auth())
    assert response.status_code == 504
    assert "des imports" in response.json()["detail"]
