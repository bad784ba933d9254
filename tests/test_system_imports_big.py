"""Big batches: 5,000 files on two replicas, bad files among them, and 5,000 cancelled
mid-way (slow: `-m slow`).

JAUGE_BIG_BATCH_FILES sets the size (default 5000), to try the test quickly.
"""

from __future__ import annotations

import os

import pytest
from system_imports_support import Api, bad_edi_files, start_import_stack, write_inbox

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = [pytest.mark.system, pytest.mark.slow]


@pytest.mark.timeout(3600)
async def test_a_5000_file_batch_with_bad_files_is_counted_exactly(make_stack, test_env) -> None:
    count = int(os.environ.get("JAUGE_BIG_BATCH_FILES", "5000"))
    stack = start_import_stack(make_stack, test_env.env(), replicas=2)
    gateway = stack.service("gateway").url
    good = {
        f"f-{i:05d}.edi": make_interchange(
            [sample_invoice(i % 7 + 1, f"BIG-{i}", n_lines=2)], ref=f"B{i}"
        )
        for i in range(count)
    }
    bad = bad_edi_files()
    write_inbox(test_env.data_dir, "edi", good)
    write_inbox(test_env.data_dir, "edi", bad)
    alice = await Api.login(gateway, "alice")
    try:
        job = await alice.finished(await alice.start("edi"), timeout_s=3000)
        total = count + len(bad)
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (total, total, len(bad))
        with test_env.mongo() as client:
            assert client[f"{test_env.db_prefix}_import"]["invoices"].count_documents({}) == count
        data = test_env.data_dir
        assert len(list((data / "archive" / "edi").rglob("*.edi"))) == count
        assert len(list((data / "errors" / "edi").glob("*.error.txt"))) == len(bad)
        answer = await alice.client.get(f"/api/imports/{job['id']}/report")
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["files"]) == total
    finally:
        await alice.close()


@pytest.mark.timeout(3600)
async def test_a_5000_file_batch_cancelled_mid_way_gives_back_exactly_what_it_did_not_read(
    make_stack, test_env
) -> None:
    count = int(os.environ.get("JAUGE_BIG_BATCH_FILES", "5000"))
    stack = start_import_stack(make_stack, test_env.env(), replicas=2)
    gateway = stack.service("gateway").url
    good = {
        f"c-{i:05d}.edi": make_interchange(
            [sample_invoice(i % 7 + 1, f"CAN-{i}", n_lines=1)], ref=f"C{i}"
        )
        for i in range(count)
    }
    write_inbox(test_env.data_dir, "edi", good)
    alice = await Api.login(gateway, "alice")
    try:
        job_id = await alice.start("edi")
        await alice.until(job_id, lambda j: j["processed"] >= count // 10, timeout_s=600)
        cancel = await alice.client.post(f"/api/imports/{job_id}/cancel")
        assert cancel.status_code == 202, cancel.text
        job = await alice.finished(job_id, timeout_s=600)

        assert job["status"] == "cancelled", job
        answer = await alice.client.get(f"/api/imports/{job_id}/report")
        assert answer.status_code == 200, answer.text
        files = answer.json()["files"]
        read = {f["item"] for f in files if f["state"] == "announced"}
        returned = {f["item"] for f in files if f["state"] == "returned"}
        left = {p.name for p in (test_env.data_dir / "inbox" / "edi").iterdir()}
        assert len(files) == count and read | returned == set(good) and not read & returned
        assert returned == left
        assert (job["processed"], job["failed"]) == (len(read), 0)
        assert count // 10 <= len(read) < count
        with test_env.mongo() as client:
            invoices = client[f"{test_env.db_prefix}_import"]["invoices"]
            assert invoices.count_documents({}) == len(read)
        archived = {p.name for p in (test_env.data_dir / "archive" / "edi").rglob("*.edi")}
        assert archived == read
    finally:
        await alice.close()
