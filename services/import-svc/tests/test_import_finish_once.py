"""The end of an import runs once, though the last file's handler and a scheduler pass
both reach it (on the real store)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.repository import FileState, ImportRepository, JobState
from import_svc.service import ImportService
from jauge_shared.contracts import ImportCleanupStarted, ImportFinished, Message
from jauge_testkit.import_files import sample_invoice

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


async def test_the_last_file_and_a_scheduler_pass_clean_up_and_finish_a_job_once(
    test_env: Any, tmp_path: Path
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    repo = ImportRepository(client, f"{test_env.db_prefix}_import")
    lock = ImportLock(repo.lock, lease_s=60)
    emitted: list[Message] = []

    async def emit(message: Message) -> None:
        emitted.append(message)
        await asyncio.sleep(0.05)  # a confirm takes a round trip: both get under way

    service = ImportService(
        repo, lock, FileStore(tmp_path), emit, deadline_s=600, max_file_bytes=1 << 20
    )
    job_id = "job-ends-once"
    names = [f"f{i}.edi" for i in range(3)]
    try:
        await repo.add_job(
            {
                "_id": job_id,
                "kind": "edi",
                "user_id": "alice",
                "title": "Import des factures EDI",
                "state": JobState.CLEANING.value,
                "requested_at": NOW,
                "started_at": NOW,
                "names": names,
                "total": len(names),
                "dispatched": True,
            }
        )
        await repo.add_files(job_id, names, NOW)
        for i, name in enumerate(names):
            invoice = sample_invoice(i + 1, f"F{i}", n_lines=1).expected().to_document()
            key = await repo.save_invoice({**invoice, "job_id": job_id, "source_file": name})
            source = {"supplier": invoice["supplier_id"], "keys": [key], "update": False}
            await repo.finish_file(job_id, name, {"ok": True, "invoices": 1, "sources": [source]})
            await repo.mark_announced(job_id, name)
        assert await lock.acquire(job_id, NOW)
        job = await repo.get_job(job_id)
        assert job is not None
        assert await repo.count_files(job, FileState.ANNOUNCED) == len(names)

        # the handler of the last file, and the scheduler finding the job in `cleaning`
        await asyncio.gather(service.end.clean_up_and_finish(job), service.schedule())
        await asyncio.gather(*service.background)

        assert [type(m) for m in emitted] == [ImportCleanupStarted, ImportFinished]
        finished = await repo.get_job(job_id)
        assert finished is not None and finished["state"] == JobState.COMPLETED.value
        totals = [doc async for doc in repo.supplier_totals.find({})]
        assert sorted((t["_id"], t["invoices"]) for t in totals) == sorted(
            (sample_invoice(i + 1, f"F{i}", n_lines=1).supplier_id, 1) for i in range(3)
        )
    finally:
        await client.close()
