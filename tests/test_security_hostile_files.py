"""Hostile files on the real system (issue 15): one bad file fails alone, never the queue.

Before: a 5 KB EDIFACT file whose UNT count has 5,000 digits made Python's int() raise
ValueError past its 4,300-digit limit; the error escaped `process_file`, the file's
message was dead-lettered, the import stayed "running 3 / 4" and every other import
waited behind it until the one-hour deadline. A BBGR file of a few hundred thousand
short rows did the same: its per-row results went into one document past the store's
16 MB limit.

Real processes, real RabbitMQ, real FerretDB (or MongoDB).
"""

from __future__ import annotations

import re
import time

import pytest
from faults_support import dead_letter_counts
from system_imports_support import Api, edi_batch, start_import_stack

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

# more rows than the old code could store in one result document (about 560,000 rows of
# 30 bytes each make 16 MB), and still under the 16 MiB a BBGR file may weigh
HUGE_BBGR_ROWS = 650_000


def unt_with_digits(n_digits: int) -> bytes:
    good = make_interchange([sample_invoice(2, "F-UNT-1", 2)], ref="UNT5K")
    return re.sub(rb"UNT\+\d+", b"UNT+" + b"9" * n_digits, good)


def segment_with_elements(n_elements: int) -> bytes:
    good = make_interchange([sample_invoice(3, "F-ELEM-1", 2)], ref="EL300K")
    return good.replace(b"UNS+S'", b"FTX+AAI" + b"+x" * n_elements + b"'\nUNS+S'", 1)


def huge_bbgr(rows: int) -> bytes:
    header = "Date;Numéro retour;Code article;Désignation;Quantité;Motif\r\n".encode()
    return header + b"".join(b"1/2/2024;%x;A;D;1;\r\n" % i for i in range(rows))


async def file_results(api: Api, job_id: str) -> dict[str, dict]:
    response = await api.client.get(f"/api/imports/{job_id}/report")
    assert response.status_code == 200, response.text
    return {f["item"]: f for f in response.json()["files"]}


async def test_a_5000_digit_unt_count_fails_alone_and_blocks_nobody(make_stack, test_env) -> None:
    stack = start_import_stack(make_stack, test_env.env())
    alice, bob = [await Api.login(stack.service("gateway").url, u) for u in ("alice", "bob")]
    data = test_env.data_dir
    try:
        good = {name: d for name, (d, _) in edi_batch(3, seed=15).items()}
        hostile = unt_with_digits(5_000)
        assert len(hostile) < 6 * 1024
        response = await alice.upload("edi", {**good, "unt-5000-chiffres.edi": hostile})
        assert response.status_code == 202, response.text
        first = response.json()["job_id"]

        job = await alice.finished(first, timeout_s=90)
        assert (job["status"], job["total"], job["processed"], job["failed"]) == (
            "completed",
            4,
            4,
            1,
        ), job
        assert job["message"] == "Import terminé : 4 fichiers traités, 1 en erreur"
        report = await file_results(alice, first)
        assert [name for name, f in report.items() if f["ok"]] == sorted(good)
        reason = report["unt-5000-chiffres.edi"]["error"]
        assert "le segment UNT ne donne pas un nombre de segments valide" in reason, reason
        assert "5 000 caractères" in reason and len(reason) < 300
        note = (data / "errors" / "edi" / "unt-5000-chiffres.edi.error.txt").read_text()
        assert note.strip() == reason
        assert len(list((data / "archive" / "edi").rglob("*.edi"))) == 3

        # the next import (someone else's) starts at once and is not blocked; a segment of
        # 300,000 elements fails alone in it too
        started = time.monotonic()
        more = edi_batch(1, seed=16)
        response = await bob.upload(
            "edi",
            {
                "fournisseur-suivant.edi": next(iter(more.values()))[0],
                "segment-300000-elements.edi": segment_with_elements(300_000),
            },
        )
        assert response.status_code == 202, response.text
        second = response.json()["job_id"]
        done = await bob.finished(second, timeout_s=60)
        assert (done["status"], done["processed"], done["failed"]) == ("completed", 2, 1), done
        assert time.monotonic() - started < 45
        report = await file_results(bob, second)
        assert report["fournisseur-suivant.edi"]["ok"]
        reason = report["segment-300000-elements.edi"]["error"]
        assert "au-delà de la limite" in reason, reason

        # nothing was dead-lettered, the import files' queue above all
        counts = await dead_letter_counts(test_env)
        assert counts.get("import-svc.files.dlq") == 0, counts
        assert not any(counts.values()), counts
    finally:
        await alice.close()
        await bob.close()


async def test_a_bbgr_file_of_650000_rows_ends_cleanly_without_a_dead_letter(
    make_stack, test_env
) -> None:
    stack = start_import_stack(make_stack, test_env.env())
    alice = await Api.login(stack.service("gateway").url, "alice")
    try:
        data = huge_bbgr(HUGE_BBGR_ROWS)
        assert 12 * 1024 * 1024 < len(data) < 16 * 1024 * 1024
        started = time.monotonic()
        response = await alice.upload("bbgr_retours", {"retours-geants.csv": data})
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        job = await alice.finished(job_id, timeout_s=120)
        elapsed = time.monotonic() - started
        # refused whole on the row limit: one item, its failure, with a French reason
        assert (job["status"], job["total"], job["processed"], job["failed"]) == (
            "completed",
            1,
            1,
            1,
        ), job
        assert elapsed < 90, elapsed
        reason = (await file_results(alice, job_id))["retours-geants.csv"]["error"]
        assert reason.startswith("Le fichier compte plus de 50 000 lignes de données"), reason
        counts = await dead_letter_counts(test_env)
        assert not any(counts.values()), counts

        # and the queue moves on
        response = await alice.upload("edi", {n: d for n, (d, _) in edi_batch(1).items()})
        assert response.status_code == 202, response.text
        after = await alice.finished(response.json()["job_id"], timeout_s=60)
        assert (after["status"], after["failed"]) == ("completed", 0), after
    finally:
        await alice.close()
