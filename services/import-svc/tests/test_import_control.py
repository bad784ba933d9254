"""Cancel an import, import again its failed files (control.py), on the real store.

The service is driven by hand (no broker): its emitted messages are collected, and each
`import.file` is handed to the worker when the test says, so a cancel can arrive before,
during or after a file is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.queries import ImportQueries
from import_svc.repository import FileFate, FileState, ImportRepository, JobState
from import_svc.service import ImportService
from jauge_shared.blobs import IMPORT_UPLOADS, Blobs
from jauge_shared.contracts import (
    CancelImport,
    ImportFile,
    ImportFinished,
    ImportKind,
    Message,
    RequestImport,
)
from jauge_shared.contracts.import_rpc import ImportReportRequest
from jauge_testkit.import_files import make_interchange, sample_invoice

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@dataclass
class Harness:
    service: ImportService
    repo: ImportRepository
    files: FileStore
    uploads: Blobs
    emitted: list[Message] = field(default_factory=list)

    def commands(self, job_id: str) -> list[ImportFile]:
        return [m for m in self.emitted if isinstance(m, ImportFile) and m.job_id == job_id]

    def finished(self, job_id: str) -> list[ImportFinished]:
        """The job's ends, one per event id (an end announced again is the same event)."""
        ends = {
            m.event_id: m
            for m in self.emitted
            if isinstance(m, ImportFinished) and m.job_id == job_id
        }
        return list(ends.values())

    async def request(self, job_id: str, **extra: Any) -> None:
        await self.service.request(
            RequestImport(
                producer="test", job_id=job_id, kind=ImportKind.EDI, user_id="alice", **extra
            )
        )

    async def cancel(self, job_id: str) -> None:
        await self.service.cancel(CancelImport(producer="test", job_id=job_id, user_id="alice"))


@pytest.fixture
async def harness(test_env: Any, tmp_path: Path) -> AsyncIterator[Harness]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    repo = ImportRepository(client, f"{test_env.db_prefix}_import")
    files = FileStore(tmp_path)
    files.ensure_layout()
    emitted: list[Message] = []

    async def emit(message: Message) -> None:
        emitted.append(message)

    uploads = Blobs(client[f"{test_env.db_prefix}_import"], IMPORT_UPLOADS)
    service = ImportService(
        repo,
        ImportLock(repo.lock, lease_s=30),
        files,
        emit,
        deadline_s=600,
        max_file_bytes=1 << 20,
        uploads=uploads,
    )
    try:
        yield Harness(service, repo, files, uploads, emitted)
    finally:
        for task in list(service.background):
            await task
        await client.close()


def good(n: int) -> bytes:
    return make_interchange([sample_invoice(1, f"F-{n}", n_lines=2)], ref=f"R{n}")


def fill_inbox(files: FileStore, names: list[str], bad: tuple[str, ...] = ()) -> None:
    for i, name in enumerate(names):
        data = b"pas un fichier EDI" if name in bad else good(i)
        (files.inbox(ImportKind.EDI) / name).write_bytes(data)


def inbox(files: FileStore) -> list[str]:
    return sorted(p.name for p in files.inbox(ImportKind.EDI).iterdir())


async def test_a_cancel_puts_the_unread_files_back_and_ends_with_exact_counts(
    harness: Harness,
) -> None:
    names = [f"f{i}.edi" for i in range(5)]
    fill_inbox(harness.files, names, bad=("f1.edi",))
    await harness.request("job-cancel")
    commands = harness.commands("job-cancel")
    assert len(commands) == 5 and inbox(harness.files) == []
    for command in commands[:2]:  # one good, one bad file read before the cancel
        await harness.service.import_file(command)

    await harness.cancel("job-cancel")

    job = await harness.repo.get_job("job-cancel")
    assert job is not None and job["state"] == JobState.CANCELLED.value
    assert inbox(harness.files) == ["f2.edi", "f3.edi", "f4.edi"]
    (finished,) = harness.finished("job-cancel")
    assert (finished.status, finished.processed, finished.failed) == ("cancelled", 2, 1)
    assert finished.message == (
        "Import annulé : 2 fichiers traités, 1 en erreur ; "
        "3 non traités, remis dans la boîte de réception"
    )
    # the leftover file commands read nothing; a second cancel changes nothing
    for command in commands[2:]:
        await harness.service.import_file(command)
    await harness.cancel("job-cancel")
    assert inbox(harness.files) == ["f2.edi", "f3.edi", "f4.edi"]
    (again,) = harness.finished("job-cancel")  # announced again, the same
    assert again.model_dump(exclude={"reannounced", "occurred_at"}) == finished.model_dump(
        exclude={"reannounced", "occurred_at"}
    )
    # the lock is free: the next import starts
    await harness.request("job-next")
    assert len(harness.commands("job-next")) == 3


async def test_a_file_being_read_when_the_cancel_arrives_is_finished_and_counted(
    harness: Harness,
) -> None:
    fill_inbox(harness.files, ["a.edi", "b.edi", "c.edi"])
    await harness.request("job-inflight")
    first, second, third = harness.commands("job-inflight")
    await harness.service.import_file(first)
    # a worker has taken b.edi and is reading it when the cancel arrives
    assert await harness.repo.take_file("job-inflight", "b.edi", FileFate.READ)

    await harness.cancel("job-inflight")

    job = await harness.repo.get_job("job-inflight")
    assert job is not None and job["state"] == JobState.CANCELLING.value
    assert harness.finished("job-inflight") == []  # it waits for b.edi
    assert inbox(harness.files) == ["c.edi"]
    # the worker ends its file (a redelivery after its crash would do the same)
    await harness.service.import_file(second)
    await harness.service.import_file(third)  # returned: not read
    (finished,) = harness.finished("job-inflight")
    assert (finished.status, finished.processed, finished.failed) == ("cancelled", 2, 0)
    file = await harness.repo.get_file("job-inflight", "b.edi")
    assert file is not None and file["state"] == FileState.ANNOUNCED.value
    assert inbox(harness.files) == ["c.edi"]


async def test_a_worker_leaves_a_cancelling_imports_untaken_files_to_the_cancel(
    harness: Harness,
) -> None:
    fill_inbox(harness.files, ["a.edi", "b.edi", "c.edi"])
    await harness.request("job-race")
    first, second, third = harness.commands("job-race")
    await harness.service.import_file(first)
    assert await harness.repo.take_file("job-race", "b.edi", FileFate.READ)  # in flight
    # the cancel has moved the job on and not yet put c.edi back: c.edi's command arrives
    moved = await harness.repo.move_job("job-race", JobState.RUNNING, JobState.CANCELLING, NOW)
    assert moved is not None

    await harness.service.import_file(third)

    assert await harness.repo.fate_of("job-race", "c.edi") is None  # not taken, not read
    file = await harness.repo.get_file("job-race", "c.edi")
    assert file is not None and file["state"] == FileState.PENDING.value
    await harness.service.import_file(second)  # the file taken before goes on to its end
    await harness.cancel("job-race")  # a redelivered cancel finishes the put-back
    assert inbox(harness.files) == ["c.edi"]
    (finished,) = harness.finished("job-race")
    assert (finished.status, finished.processed) == ("cancelled", 2)
    # the queued command of a file put back, once the import has ended: dropped, unsaid
    ends = len([m for m in harness.emitted if isinstance(m, ImportFinished)])
    await harness.service.import_file(third)
    assert len([m for m in harness.emitted if isinstance(m, ImportFinished)]) == ends


async def test_a_cancel_that_died_half_way_is_finished_by_the_scheduler(
    harness: Harness,
) -> None:
    fill_inbox(harness.files, ["a.edi", "b.edi"])
    await harness.request("job-crash")
    job = await harness.repo.get_job("job-crash")
    assert job is not None
    # the cancel stored `cancelling` and died before putting the files back
    await harness.repo.move_job("job-crash", JobState.RUNNING, JobState.CANCELLING, NOW)
    await harness.service.schedule()
    job = await harness.repo.get_job("job-crash")
    assert job is not None and job["state"] == JobState.CANCELLED.value
    assert inbox(harness.files) == ["a.edi", "b.edi"]
    (finished,) = harness.finished("job-crash")
    assert (finished.processed, finished.failed) == (0, 0)


async def test_a_queued_import_cancelled_never_touches_its_files(harness: Harness) -> None:
    fill_inbox(harness.files, ["a.edi"])
    await harness.request("job-running")
    await harness.request("job-queued")
    await harness.cancel("job-queued")
    (finished,) = harness.finished("job-queued")
    assert finished.status == "cancelled"
    assert finished.message.startswith("Import annulé avant son démarrage")
    job = await harness.repo.get_job("job-queued")
    assert job is not None and job["state"] == JobState.CANCELLED.value


async def test_retry_failed_imports_only_the_failed_files_and_takes_an_uploaded_one_instead(
    harness: Harness,
) -> None:
    fill_inbox(harness.files, ["ok.edi", "bad1.edi", "bad2.edi"], bad=("bad1.edi", "bad2.edi"))
    await harness.request("job-first")
    for command in harness.commands("job-first"):
        await harness.service.import_file(command)
    errors = harness.files.errors(ImportKind.EDI)
    assert sorted(p.name for p in errors.iterdir()) == [
        "bad1.edi",
        "bad1.edi.error.txt",
        "bad2.edi",
        "bad2.edi.error.txt",
    ]
    # bad1 corrected in place by an operator; bad2 replaced by an upload
    (errors / "bad1.edi").write_bytes(good(10))
    upload = harness.files.uploads("0123456789abcdef0123456789abcdef")
    upload.mkdir(parents=True)
    (upload / "bad2.edi").write_bytes(good(11))

    await harness.request("job-retry", retry_of="job-first", upload_ids=[upload.name])
    commands = harness.commands("job-retry")
    assert sorted(c.item for c in commands) == ["bad1.edi", "bad2.edi"]
    for command in commands:
        await harness.service.import_file(command)

    (finished,) = harness.finished("job-retry")
    assert (finished.status, finished.processed, finished.failed) == ("completed", 2, 0)
    assert list(errors.iterdir()) == []  # the rejected copy and its note are gone
    first = await harness.repo.get_job("job-first")
    assert first is not None and first["retried_by"] == "job-retry"
    report = await ImportQueries(harness.repo, harness.files).report(
        ImportReportRequest(job_id="job-retry")
    )
    assert report.retry_of == "job-first"


async def test_a_cancelled_import_of_uploads_puts_the_unread_files_back_in_the_bucket(
    harness: Harness,
) -> None:
    upload_a, upload_b = "a" * 32, "b" * 32
    await harness.uploads.put(f"{upload_a}.0", good(1), upload_id=upload_a)
    await harness.uploads.put(f"{upload_b}.0", good(2), upload_id=upload_b)
    await harness.uploads.put(f"{upload_b}.1", good(3), upload_id=upload_b)
    # the blobs' file names: put() names a blob by its id, so rename them as the gateway does
    for blob_id, name in (
        (f"{upload_a}.0", "un.edi"),
        (f"{upload_b}.0", "deux.edi"),
        (f"{upload_b}.1", "trois.edi"),
    ):
        await harness.uploads.files.update_one({"_id": blob_id}, {"$set": {"filename": name}})
    await harness.request("job-uploads", upload_ids=[upload_a, upload_b])
    assert await harness.uploads.find(upload_id=upload_a) == []  # taken by the job
    commands = {c.item: c for c in harness.commands("job-uploads")}
    await harness.service.import_file(commands["deux.edi"])

    await harness.cancel("job-uploads")

    (finished,) = harness.finished("job-uploads")
    assert (finished.status, finished.processed) == ("cancelled", 1)
    assert finished.message.endswith("2 non traités, à envoyer de nouveau")
    assert inbox(harness.files) == []  # never into the shared inbox
    back_a = await harness.uploads.find(upload_id=upload_a)
    back_b = await harness.uploads.find(upload_id=upload_b)
    assert [name for _, name in back_a] == ["un.edi"]
    assert [name for _, name in back_b] == ["trois.edi"]
    assert await harness.uploads.read(back_b[0][0]) == good(3)
