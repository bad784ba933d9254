"""Cancel and retry-failed of an import through the API, on the real stack (issue 16).

A running import is cancelled: it ends `cancelled` with the exact counts of what was
read, its unread files are back in the inbox, the gauge says so and stops; a second
cancel is a 409, another agent's a 404. Its failed files are then retried after one is
corrected by upload, and the two reports point at each other.
"""

from __future__ import annotations

import csv
import io

import pytest
from system_imports_support import Api, edi_batch, start_import_stack, write_inbox

pytestmark = pytest.mark.system


async def test_cancel_then_retry_the_failed_files(make_stack, test_env) -> None:
    files = {name: data for name, (data, _) in edi_batch(10).items()}
    files |= {"vide-1.edi": b"", "vide-2.edi": b"UNA"}
    write_inbox(test_env.data_dir, "edi", files)
    # files go one at a time, 0.5 s each: time to cancel mid-way
    stack = start_import_stack(make_stack, test_env.env(), JAUGE_TEST_FILE_DELAY_S="0.5")
    gateway = stack.service("gateway").url
    alice, bob = await Api.login(gateway, "alice"), await Api.login(gateway, "bob")
    try:
        inbox = (await alice.client.get("/api/inbox")).json()["counts"]
        assert inbox["edi"] == 12 and inbox["bbgr_retours"] == 0
        refused = await alice.client.post("/api/imports", json={"kind": "bbgr_retours"})
        assert refused.status_code == 409 and "Aucun fichier" in refused.json()["detail"]

        job_id = await alice.start("edi")
        await alice.until(job_id, lambda j: j["processed"] >= 2, timeout_s=60)
        assert (await bob.client.post(f"/api/imports/{job_id}/cancel")).status_code == 404
        cancel = await alice.client.post(f"/api/imports/{job_id}/cancel")
        assert cancel.status_code == 202, cancel.text
        job = await alice.finished(job_id, timeout_s=60)

        assert job["status"] == "cancelled"
        left = sorted(p.name for p in (test_env.data_dir / "inbox" / "edi").iterdir())
        report = (await alice.client.get(f"/api/imports/{job_id}/report")).json()
        read = [f["item"] for f in report["files"] if f["state"] == "announced"]
        returned = [f["item"] for f in report["files"] if f["state"] == "returned"]
        assert job["processed"] == len(read) and 2 <= len(read) < 12
        assert sorted(returned) == left and len(read) + len(left) == 12
        assert job["failed"] == sum(1 for f in report["files"] if f["ok"] is False)
        assert job["message"].startswith(f"Import annulé : {len(read)} fichier")
        assert job["eta_s"] is None
        again = await alice.client.post(f"/api/imports/{job_id}/cancel")
        assert again.status_code == 409 and "déjà annulé" in again.json()["detail"]

        # the rest, then a retry of its failed files, one corrected by upload
        rest = await alice.start("edi")
        done = await alice.finished(rest, timeout_s=90)
        assert (done["status"], done["processed"], done["failed"]) == ("completed", len(left), 2)
        csv_text = (await alice.client.get(f"/api/imports/{rest}/report.csv")).text
        rows = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff")), delimiter=";"))
        assert len(rows) == len(left) + 1
        assert sorted(r[0] for r in rows if r[1] == "En erreur") == ["vide-1.edi", "vide-2.edi"]
        corrected = files["fournisseur-0000.edi"]
        retry = await alice.client.post(
            f"/api/imports/{rest}/retry-failed",
            files=[("files", ("vide-1.edi", corrected, "application/edifact"))],
        )
        assert retry.status_code == 202, retry.text
        retry_id = retry.json()["job_id"]
        retried = await alice.finished(retry_id, timeout_s=60)
        assert (retried["processed"], retried["failed"]) == (2, 1)
        first = (await alice.client.get(f"/api/imports/{rest}/report")).json()
        second = (await alice.client.get(f"/api/imports/{retry_id}/report")).json()
        assert (first["retried_by"], second["retry_of"]) == (retry_id, rest)
        twice = await alice.client.post(f"/api/imports/{rest}/retry-failed")
        assert twice.status_code == 409
        # the file that failed again is kept, with its reason, for download
        bad = next(f for f in second["files"] if f["ok"] is False)
        note = await alice.client.get(f"/api/imports/{retry_id}/files/{bad['index']}/error.txt")
        assert note.status_code == 200 and note.text.strip()
        assert (await bob.client.get(f"/api/imports/{retry_id}/report.csv")).status_code == 404
    finally:
        await alice.close()
        await bob.close()
