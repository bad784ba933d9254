"""A replica killed in the middle of an import: the others carry on, a fresh one takes the
lease over when none is left, and the job still ends with exact counts."""

from __future__ import annotations

import signal

import pytest
from system_imports_support import Api, start_import_stack, write_inbox

from jauge_testkit.import_files import make_interchange, sample_invoice

pytestmark = pytest.mark.system

FILES = 30


async def test_killed_replicas_lose_nothing_and_the_job_ends_exactly(make_stack, test_env) -> None:
    stack = start_import_stack(
        make_stack,
        test_env.env(),
        replicas=2,
        JAUGE_LOCK_LEASE_S="3",
        JAUGE_PREFETCH="1",
    )
    gateway = stack.service("gateway").url
    files = {
        f"f-{i:03d}.edi": make_interchange(
            [sample_invoice(i % 4 + 1, f"K{i}", n_lines=300)], ref=f"K{i}"
        )
        for i in range(FILES)
    }
    write_inbox(test_env.data_dir, "edi", files)
    alice = await Api.login(gateway, "alice")
    db = test_env.mongo()[f"{test_env.db_prefix}_import"]
    try:
        job_id = await alice.start("edi")
        await alice.until(job_id, lambda j: j["processed"] >= 3)
        # kill -9 the replica that took the lease, in the middle of its work
        lease = db["lock"].find_one(sort=[("generation", -1)])
        holder_pid = int(lease["taken_by"].rsplit(":", 1)[1])
        holder = next(r for r in stack.running if r.process.pid == holder_pid)
        stack.stop(holder, sig=signal.SIGKILL)
        await alice.until(job_id, lambda j: j["processed"] >= 10)
        # then the survivor too: nobody renews the lease until a fresh replica takes it
        survivor = next(r for r in stack.running if r.spec.name == "import-svc")
        stack.stop(survivor, sig=signal.SIGKILL)
        middle = await alice.job(job_id)
        assert middle is not None and middle["status"] == "running"
        fresh = stack.start("import-svc")
        stack.wait_ready([fresh])

        job = await alice.finished(job_id, timeout_s=120)
        assert job["status"] == "completed", job
        assert (job["total"], job["processed"], job["failed"]) == (FILES, FILES, 0)
        assert job["message"] == f"Import terminé : {FILES} fichiers traités"
        assert db["invoices"].count_documents({}) == FILES
        data = test_env.data_dir
        assert len(list((data / "archive" / "edi").rglob("*.edi"))) == FILES
        assert not any((data / "inbox" / "edi").iterdir())
        assert db["lock"].find_one(sort=[("generation", -1)])["released"]
        # the lock is free again: the next import runs (an empty inbox is refused at once)
        write_inbox(data, "edi", {"encore.edi": make_interchange([sample_invoice(1, "X-1", 1)])})
        again = await alice.finished(await alice.start("edi"))
        assert (again["status"], again["total"]) == ("completed", 1)
    finally:
        await alice.close()
        db.client.close()
