"""Supplier totals kept by deltas (totals.py) stay equal to a count of the stored
invoices, whatever is redelivered, read twice or cleaned up twice; and the end of an
import comes with its last file, not a scheduler pass later (on the real store)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.repository import ImportRepository, JobState
from import_svc.service import ImportService
from import_svc.totals import counted
from jauge_shared.contracts import (
    FileImported,
    ImportFile,
    ImportFinished,
    ImportKind,
    Message,
    RequestImport,
)
from jauge_testkit.import_files import make_interchange, sample_invoice


class Crash(Exception):
    """A replica dying at one point of a file's handling (its message is redelivered)."""


class Replica:
    def __init__(self, repo: ImportRepository, files: FileStore) -> None:
        self.emitted: list[tuple[float, Message]] = []
        self.fail_emit: Callable[[Message], bool] = lambda message: False
        self.service = ImportService(
            repo,
            ImportLock(repo.lock, lease_s=60),
            files,
            self.emit,
            deadline_s=600,
            max_file_bytes=1 << 20,
        )

    async def emit(self, message: Message) -> None:
        if self.fail_emit(message):
            raise Crash(f"{message.type} not confirmed")
        self.emitted.append((time.monotonic(), message))

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for _, m in self.emitted if isinstance(m, kind)]


@pytest.fixture
async def repo(test_env: Any):
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    yield ImportRepository(client, f"{test_env.db_prefix}_import")
    await client.close()


async def start(replica: Replica, files: FileStore, job_id: str, content: dict) -> list[ImportFile]:
    for name, specs in content.items():
        (files.inbox(ImportKind.EDI) / name).write_bytes(make_interchange(specs, ref=name[:5]))
    await replica.service.request(
        RequestImport(producer="gateway", job_id=job_id, kind=ImportKind.EDI, user_id="alice")
    )
    return [c for c in replica.of(ImportFile) if c.job_id == job_id]


async def deliver(replica: Replica, command: ImportFile) -> bool:
    """One delivery; False when the replica 'died' handling it."""
    try:
        await replica.service.import_file(command)
    except Crash:
        return False
    return True


def crash_once(repo: ImportRepository, method: str, name: str) -> None:
    """The repository's `method` dies once, for file `name`, before doing anything."""
    real = getattr(repo, method)
    done: list[bool] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        names = [a for a in args if isinstance(a, str)] + [
            d.get("source_file") for a in args if isinstance(a, list) for d in a
        ]
        if name in names and not done:
            done.append(True)
            raise Crash(f"{method} of {name}")
        return await real(*args, **kwargs)

    setattr(repo, method, flaky)


async def counted_from_invoices(repo: ImportRepository) -> dict[str, dict[str, Any]]:
    """The totals recomputed whole from the stored invoices: what the deltas must give."""
    totals: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "invoices": 0,
            "credit_notes": 0,
            **{f: Decimal(0) for f in ("net", "tax", "gross")},
        }
    )
    async for doc in repo.invoices.find({}):
        for k, v in counted(doc).items():
            totals[doc["supplier_id"]][k] += v
    return dict(totals)


async def stored_totals(repo: ImportRepository) -> dict[str, dict[str, Any]]:
    return {
        doc["_id"]: {
            "invoices": doc["invoices"],
            "credit_notes": doc["credit_notes"],
            **{f: Decimal(doc[f]) for f in ("net", "tax", "gross")},
        }
        async for doc in repo.supplier_totals.find({})
        if doc["invoices"] or doc["credit_notes"]
    }


async def test_totals_by_deltas_survive_redelivery_crashes_and_a_second_clean_up(
    repo: ImportRepository, tmp_path: Path
) -> None:
    files = FileStore(tmp_path)
    files.ensure_layout()
    replica = Replica(repo, files)
    f0, f1, f2 = (sample_invoice(1, f"F{n}", n_lines=2) for n in range(3))
    credit = sample_invoice(1, "AV1", n_lines=1, credit_note=True)
    x1 = sample_invoice(2, "X1", n_lines=1)
    x2 = sample_invoice(2, "X2", n_lines=1)

    first = await start(
        replica, files, "job-1", {"a.edi": [f0, f1, f2, credit], "b.edi": [x1], "g.edi": [x2]}
    )
    for command in [*first, first[0]]:  # a.edi delivered twice, the second after the end
        assert await deliver(replica, command)
    # the redelivery after the end announces the same end again
    assert {(f.event_id, f.status) for f in replica.of(ImportFinished)} == {
        (replica.of(ImportFinished)[0].event_id, "completed")
    }
    assert await stored_totals(repo) == await counted_from_invoices(repo)

    # job 2: a.edi again with F0 amended and F1, F2 gone (orphans), F1 moved to c.edi;
    # Y1 written by two files of the job; b.edi's X1 amended
    content = {
        "a.edi": [sample_invoice(1, "F0", n_lines=3, seed=7), credit],
        "b.edi": [sample_invoice(2, "X1", n_lines=2, seed=7)],
        "c.edi": [f1],
        "d.edi": [sample_invoice(3, "Y1", n_lines=1)],
        "e.edi": [sample_invoice(3, "Y1", n_lines=2, seed=3)],
        "g.edi": [sample_invoice(2, "X2", n_lines=4, seed=5)],
    }
    crash_once(repo, "record_result", "g.edi")  # read, nothing stored yet
    crash_once(repo, "save_invoices", "a.edi")  # result recorded, invoices not written
    crash_once(repo, "mark_done", "b.edi")  # invoices written, the file not marked done
    replica.fail_emit = lambda m: isinstance(m, FileImported) and m.item == "c.edi"
    second = await start(replica, files, "job-2", content)
    by_name = {c.item: c for c in second}
    assert not await deliver(replica, by_name["a.edi"])
    assert not await deliver(replica, by_name["b.edi"])
    assert not await deliver(replica, by_name["c.edi"])  # stored, not announced
    assert not await deliver(replica, by_name["g.edi"])
    replica.fail_emit = lambda m: False
    for name in ["a.edi", "b.edi", "c.edi", "g.edi", "d.edi", "e.edi", "d.edi"]:  # again
        assert await deliver(replica, by_name[name])
    await asyncio.gather(*replica.service.background)
    ends = {(f.job_id, f.status) for f in replica.of(ImportFinished)}
    assert ends == {("job-1", "completed"), ("job-2", "completed")}
    assert await repo.invoices.find_one({"_id": f"{f2.supplier_id}:F2"}) is None
    expected = await counted_from_invoices(repo)
    assert await stored_totals(repo) == expected
    assert expected[f0.supplier_id]["invoices"] == 2  # F0 amended, F1 moved; F2 dropped

    # a replica taking the clean-up over runs it again: nothing is added twice
    job = await repo.get_job("job-2")
    assert job is not None and job["state"] == JobState.COMPLETED.value
    await replica.service.end._clean_up(job, await repo.file_results(job))
    assert await stored_totals(repo) == expected


async def test_the_end_comes_with_the_last_file_across_two_replicas(
    repo: ImportRepository, tmp_path: Path
) -> None:
    """No scheduler pass here: import.finished must come from the files' own handlers,
    each replica with many files in hand (the benchmark's 17 s wait, issue 18)."""
    files = FileStore(tmp_path)
    files.ensure_layout()
    replicas = [Replica(repo, files), Replica(repo, files)]
    content = {f"f{i:03d}.edi": [sample_invoice(i % 4 + 1, f"N{i}", n_lines=1)] for i in range(120)}
    commands = await start(replicas[0], files, "job-end", content)
    assert len(commands) == 120
    slots = asyncio.Semaphore(16)

    async def one(i: int, command: ImportFile) -> float:
        async with slots:
            assert await deliver(replicas[i % 2], command)
            return time.monotonic()

    handled = await asyncio.gather(*(one(i, c) for i, c in enumerate(commands)))
    finished = [(at, m) for r in replicas for at, m in r.emitted if isinstance(m, ImportFinished)]
    assert len(finished) == 1, "exactly one end, from a file's handler"
    at, message = finished[0]
    assert (message.status, message.processed, message.failed) == ("completed", 120, 0)
    # the clean-up and the end ran in the last handler: the end is there when it returns
    assert at <= max(handled)
    assert await stored_totals(repo) == await counted_from_invoices(repo)
