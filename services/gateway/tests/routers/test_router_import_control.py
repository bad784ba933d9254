"""routers/import_control.py: inbox counts, cancel, retry-failed, the CSV and the
rejected files of an import (import-svc answers over RPC, faked here)."""

from __future__ import annotations

import base64
import csv
import io
from typing import TYPE_CHECKING, Any

from gateway.routers.import_control import report_csv, safe_cell
from jauge_shared.contracts.import_rpc import FileReport, ImportReport

if TYPE_CHECKING:
    from conftest import Gateway


def report(**extra: Any) -> dict[str, Any]:
    files = [
        {"item": "a.edi", "index": 0, "state": "announced", "ok": True, "invoices": 2, "lines": 5},
        {"item": "b.edi", "index": 1, "state": "announced", "ok": False, "error": "Vide."},
    ]
    return {
        "found": True,
        "job_id": "j",
        "kind": "edi",
        "state": "completed",
        "files": files,
        **extra,
    }


async def test_an_empty_inbox_is_refused_at_once_in_french(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: {"counts": {"edi": 3, "bbgr_retours": 0}}
    async with gw.client() as c:
        inbox = await c.get("/api/inbox", headers=gw.auth())
        refused = await c.post("/api/imports", json={"kind": "bbgr_retours"}, headers=gw.auth())
    assert inbox.json()["counts"]["edi"] == 3
    assert inbox.json()["counts"]["bbgr_monthly"] == 0
    assert refused.status_code == 409
    assert "Aucun fichier à importer" in refused.json()["detail"]
    assert "« Retours BBGR »" in refused.json()["detail"]
    assert not gw.published


async def test_a_running_import_is_cancelled_by_a_command_once_and_only_by_its_owner(
    gw: Gateway,
) -> None:
    running = gw.add_job("alice", kind="import.edi", status="running")
    ended = gw.add_job("alice", kind="import.edi", status="completed")
    async with gw.client() as c:
        ok = await c.post(f"/api/imports/{running['_id']}/cancel", headers=gw.auth())
        theirs = await c.post(f"/api/imports/{running['_id']}/cancel", headers=gw.auth("bob"))
        admin = await c.post(f"/api/imports/{running['_id']}/cancel", headers=gw.auth("root"))
        late = await c.post(f"/api/imports/{ended['_id']}/cancel", headers=gw.auth())
    assert (ok.status_code, theirs.status_code, admin.status_code) == (202, 404, 202)
    assert ok.json() == {"job_id": running["_id"], "status": "cancelling"}
    assert late.status_code == 409 and "terminé" in late.json()["detail"]
    assert [(m.type, m.job_id) for m in gw.published] == [("import.cancel", running["_id"])] * 2


async def test_retry_failed_sends_a_request_linked_to_the_earlier_import(gw: Gateway) -> None:
    job = gw.add_job("alice", kind="import.edi", status="completed")
    gw.rpc.answer = lambda key, body: report()
    async with gw.client() as c:
        response = await c.post(f"/api/imports/{job['_id']}/retry-failed", headers=gw.auth())
    assert response.status_code == 202, response.text
    [command] = gw.published
    assert (command.type, command.retry_of, command.upload_ids) == (
        "import.request",
        job["_id"],
        [],
    )


async def test_retry_failed_with_a_corrected_file_hands_it_over(gw: Gateway) -> None:
    job = gw.add_job("alice", kind="import.edi", status="completed")
    gw.rpc.answer = lambda key, body: report()
    async with gw.client() as c:
        wrong = await c.post(
            f"/api/imports/{job['_id']}/retry-failed",
            files=[("files", ("autre.edi", b"x"))],
            headers=gw.auth(),
        )
        ok = await c.post(
            f"/api/imports/{job['_id']}/retry-failed",
            files=[("files", ("b.edi", b"UNB+UNOC'"))],
            headers=gw.auth(),
        )
    assert wrong.status_code == 400 and "autre.edi" in wrong.json()["detail"]
    assert ok.status_code == 202, ok.text
    [command] = gw.published
    [upload_id] = command.upload_ids
    assert gw.buckets.imports.names == {f"{upload_id}.0": "b.edi"}


async def test_nothing_to_retry_is_a_409(gw: Gateway) -> None:
    done = gw.add_job("alice", kind="import.edi", status="completed")
    running = gw.add_job("alice", kind="import.edi", status="running")
    clean = report()
    clean["files"] = clean["files"][:1]
    async with gw.client() as c:
        gw.rpc.answer = lambda key, body: clean
        none_failed = await c.post(f"/api/imports/{done['_id']}/retry-failed", headers=gw.auth())
        gw.rpc.answer = lambda key, body: report(retried_by="k")
        again = await c.post(f"/api/imports/{done['_id']}/retry-failed", headers=gw.auth())
        busy = await c.post(f"/api/imports/{running['_id']}/retry-failed", headers=gw.auth())
    assert [r.status_code for r in (none_failed, again, busy)] == [409, 409, 409]
    assert "import n° k" in again.json()["detail"]
    assert not gw.published


async def test_the_report_as_csv_and_a_rejected_file(gw: Gateway) -> None:
    job = gw.add_job("alice", kind="import.edi", status="completed")
    async with gw.client() as c:
        gw.rpc.answer = lambda key, body: report()
        response = await c.get(f"/api/imports/{job['_id']}/report.csv", headers=gw.auth())
        data = base64.b64encode(b"pas de l'EDI").decode()
        gw.rpc.answer = lambda key, body: {"found": True, "name": "b.edi", "content_b64": data}
        rejected = await c.get(f"/api/imports/{job['_id']}/files/1/rejected", headers=gw.auth())
        theirs = await c.get(f"/api/imports/{job['_id']}/files/1/error.txt", headers=gw.auth("bob"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=";"))
    assert rows == [
        ["Fichier", "État", "Motif", "Factures", "Lignes"],
        ["a.edi", "Importé", "", "2", "5"],
        ["b.edi", "En erreur", "Vide.", "0", "0"],
    ]
    assert rejected.content == b"pas de l'EDI"
    assert "b.edi" in rejected.headers["content-disposition"]
    assert theirs.status_code == 404


def test_a_csv_cell_never_runs_as_a_formula() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+33", "-2", "@SUM(A1)", "\tx", "ok", None, 3)] == [
        "'=1+1",
        "'+33",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        "",
        "3",
    ]
    evil = ImportReport(
        found=True,
        job_id="j",
        files=[
            FileReport(
                item='=HYPERLINK("x";"y").edi',
                index=0,
                state="done",
                ok=False,
                error='motif ; avec "guillemets"\net retour',
            )
        ],
    )
    rows = list(csv.reader(io.StringIO(report_csv(evil).lstrip("\ufeff")), delimiter=";"))
    assert rows[1][0] == '\'=HYPERLINK("x";"y").edi'
    assert rows[1][2] == 'motif ; avec "guillemets"\net retour'


async def test_import_svc_silent_on_the_count_still_lets_the_import_be_asked(gw: Gateway) -> None:
    gw.rpc.answer = lambda key, body: TimeoutError()
    async with gw.client() as c:
        response = await c.post("/api/imports", json={"kind": "edi"}, headers=gw.auth())
    assert response.status_code == 202  # as before the check: import-svc decides
    assert [m.type for m in gw.published] == ["import.request"]
