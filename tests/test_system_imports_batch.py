"""A realistic EDI batch on two import-svc replicas, bad files among good ones, then the
report, the invoices, a re-import by upload, and a BBGR import whose gauge counts rows.

Real processes, real RabbitMQ, real FerretDB (or MongoDB).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from decimal import Decimal

import pytest
from system_imports_support import (
    Api,
    bad_edi_files,
    edi_batch,
    expected_documents,
    start_import_stack,
    write_inbox,
)

from jauge_testkit.import_files import make_bbgr_csv, make_interchange

pytestmark = pytest.mark.system

GOOD = 40


def supplier_totals(documents: dict) -> dict[str, dict]:
    totals: dict[str, dict] = defaultdict(
        lambda: {
            "invoices": 0,
            "credit_notes": 0,
            "net": Decimal(0),
            "tax": Decimal(0),
            "gross": Decimal(0),
        }
    )
    for (supplier, _), doc in documents.items():
        entry = totals[supplier]
        credit = doc["type"] == "credit_note"
        entry["credit_notes" if credit else "invoices"] += 1
        for field in ("net", "tax", "gross"):
            entry[field] += (-1 if credit else 1) * Decimal(doc[field])
    return {s: {**t, **{f: str(t[f]) for f in ("net", "tax", "gross")}} for s, t in totals.items()}


async def test_a_batch_on_two_replicas_is_counted_and_stored_exactly(make_stack, test_env) -> None:
    stack = start_import_stack(
        make_stack,
        test_env.env(),
        replicas=2,
        JAUGE_PREFETCH="2",  # small prefetch: the two replicas really share the files
        JAUGE_MAX_UPLOAD_BYTES=str(1024 * 1024),
    )
    gateway = stack.service("gateway").url
    batch = edi_batch(GOOD)
    bad = bad_edi_files()
    write_inbox(test_env.data_dir, "edi", {n: data for n, (data, _) in batch.items()})
    write_inbox(test_env.data_dir, "edi", bad)
    alice, bob, root = [await Api.login(gateway, u) for u in ("alice", "bob", "root")]
    db = test_env.mongo()[f"{test_env.db_prefix}_import"]
    try:
        job_id = await alice.start("edi")
        job = await alice.finished(job_id)
        total = GOOD + len(bad)
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (total, total, len(bad))
        assert job["percent"] == 100.0 and job["duration_s"] is not None
        assert job["message"] == f"Import terminé : {total} fichiers traités, {len(bad)} en erreur"
        assert {e["item"] for e in job["errors"]} == set(bad)
        assert all(e["error"] for e in job["errors"])
        assert job["recent"]

        # exact stored documents and amounts
        expected = expected_documents([s for _, specs in batch.values() for s in specs])
        stored = {(d["supplier_id"], d["number"]): d for d in db["invoices"].find()}
        assert set(stored) == set(expected)
        for key, doc in stored.items():
            assert doc["job_id"] == job_id
            assert {k: v for k, v in doc.items() if k not in ("_id", "job_id", "source_file")} == (
                expected[key]
            )
        totals = {d.pop("_id"): d for d in db["supplier_totals"].find()}
        for supplier, figures in supplier_totals(expected).items():
            assert {k: totals[supplier][k] for k in figures} == figures

        # every file is in exactly one place: archive or errors (with its reason)
        data = test_env.data_dir
        assert not any((data / "inbox" / "edi").iterdir())
        assert len(list((data / "archive" / "edi").rglob("*.edi"))) == GOOD
        for name in bad:
            assert (data / "errors" / "edi" / name).exists()
            assert (data / "errors" / "edi" / f"{name}.error.txt").read_text().strip()
        assert not (data / "work" / job_id).exists()

        # the report: every file, done by both replicas; nobody else's
        response = await alice.client.get(f"/api/imports/{job_id}/report")
        assert response.status_code == 200, response.text
        report = response.json()
        assert len(report["files"]) == total
        failed = {f["item"]: f["error"] for f in report["files"] if not f["ok"]}
        assert set(failed) == set(bad) and all(failed.values())
        assert "segments" in failed["enorme.edi"] or "volumineux" in failed["enorme.edi"]
        assert len({f["worker"] for f in report["files"]}) == 2
        assert (await bob.client.get(f"/api/imports/{job_id}/report")).status_code == 404
        assert (await root.client.get(f"/api/imports/{job_id}/report")).status_code == 200

        # the invoices: filters, and an agent sees only their imports' invoices
        some = next(iter(expected.values()))
        listed = (await alice.client.get("/api/invoices", params={"limit": 1000})).json()
        assert len(listed["items"]) == len(expected) and listed["next_cursor"] is None
        by_supplier = (
            await alice.client.get("/api/invoices", params={"supplier": some["supplier_id"]})
        ).json()
        assert len(by_supplier["items"]) == sum(1 for s, _ in expected if s == some["supplier_id"])
        one = (
            await alice.client.get(
                "/api/invoices", params={"supplier": some["supplier_id"], "number": some["number"]}
            )
        ).json()
        assert len(one["items"]) == 1
        assert one["items"][0]["lines"] == some["lines"]
        assert one["items"][0]["gross"] == some["gross"]
        assert (await bob.client.get("/api/invoices")).json() == {"items": [], "next_cursor": None}
        # page by page, as a client follows `next_cursor`: each invoice once
        keys, cursor = [], None
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            page = (await root.client.get("/api/invoices", params=params)).json()
            assert len(page["items"]) <= 7
            keys += [(i["supplier_id"], i["number"]) for i in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert sorted(keys) == sorted(expected) and len(set(keys)) == len(keys)

        # uploads: a path is refused, a too-large file is refused, nothing is left behind
        refused = await bob.upload("edi", {"../evil.edi": b"x"})
        assert refused.status_code == 400 and "refusé" in refused.json()["detail"]
        refused = await bob.upload("edi", {".cache": b"x"})
        assert refused.status_code == 400
        refused = await bob.upload("edi", {"gros.edi": b"x" * (1024 * 1024 + 1)})
        assert refused.status_code == 413 and "volumineux" in refused.json()["detail"]
        assert not (data.parent / "evil.edi").exists()
        uploads = data / "uploads"  # the gateway's folder: no file left, no blob either
        assert not uploads.exists() or not [p for p in uploads.rglob("*") if p.is_file()]
        assert db["import_uploads.files"].count_documents({}) == 0

        # re-import by upload: a supplier sends file 0002 again with only its first
        # invoice, amended; it is updated, the two it no longer holds are removed
        name = "fournisseur-0002.edi"
        specs = batch[name][1]
        assert len(specs) == 3
        amended = replace(specs[0], lines=specs[0].lines[:1])
        response = await bob.upload("edi", {name: make_interchange([amended], ref="AGAIN")})
        assert response.status_code == 202, response.text
        again = await bob.finished(response.json()["job_id"])
        assert (again["status"], again["processed"], again["failed"]) == ("completed", 1, 0)
        assert db["invoices"].count_documents({}) == len(expected) - 2
        updated = db["invoices"].find_one({"_id": f"{amended.supplier_id}:{amended.number}"})
        assert updated["gross"] == amended.expected().to_document()["gross"]
        assert updated["job_id"] == again["id"]
        for gone in specs[1:]:
            assert db["invoices"].find_one({"number": gone.number}) is None
        now_expected = {k: v for k, v in expected.items() if k[1] not in {s.number for s in specs}}
        now_expected[(amended.supplier_id, amended.number)] = amended.expected().to_document()
        totals = {d.pop("_id"): d for d in db["supplier_totals"].find()}
        figures = supplier_totals(now_expected)[amended.supplier_id]
        assert {k: totals[amended.supplier_id][k] for k in figures} == figures
        # bob now sees the invoice he re-imported, and only it
        assert len((await bob.client.get("/api/invoices")).json()["items"]) == 1

        # BBGR: one file, the gauge counts its rows; bad rows fail with their reason
        csv = make_bbgr_csv("bbgr_monthly", 25, bad_rows=(3, 10))
        response = await root.upload("bbgr_monthly", {"mensuel.csv": csv})
        assert response.status_code == 202, response.text
        bbgr_id = response.json()["job_id"]
        bbgr = await root.finished(bbgr_id)
        assert (bbgr["status"], bbgr["total"], bbgr["processed"], bbgr["failed"]) == (
            "completed",
            25,
            25,
            2,
        )
        assert bbgr["message"] == "Import terminé : 25 lignes traitées, 2 en erreur"
        assert {e["item"] for e in bbgr["errors"]} == {
            "mensuel.csv ligne 4",
            "mensuel.csv ligne 11",
        }
        assert db["bbgr_monthly"].count_documents({}) == 23
        response = await root.upload("bbgr_monthly", {"mensuel.csv": csv})
        await root.finished(response.json()["job_id"])
        assert db["bbgr_monthly"].count_documents({}) == 23  # updated, not duplicated
        report = (await root.client.get(f"/api/imports/{bbgr_id}/report")).json()
        assert report["files"][0]["rows"] == 25 and report["files"][0]["failed_rows"] == 2
    finally:
        for api in (alice, bob, root):
            await api.close()
        db.client.close()
