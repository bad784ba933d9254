"""Big batches: 5,000 files on two replicas, bad files among them (slow: `-m slow`).

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
