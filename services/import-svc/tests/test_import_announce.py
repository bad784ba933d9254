"""import-svc announces an import's stored state again, with the first event ids, when
the reconciler asks or when a redelivered file finds its job ended (real store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from import_svc.ending import UNKNOWN_FAILURE
from import_svc.files import FileStore
from import_svc.lock import ImportLock
from import_svc.repository import ImportRepository, JobState
from import_svc.service import ImportService
from jauge_shared.contracts import (
    FileImported,
    ImportFile,
    ImportFinished,
    ImportKind,
    ImportStarted,
    Message,
    stable_event_id,
)

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
NAMES = ["a.edi", "b.edi"]


class Announcer:
    def __init__(self, service: ImportService, repo: ImportRepository, lock: ImportLock) -> None:
        self.service, self.repo, self.lock = service, repo, lock
        self.emitted: list[Message] = []

    async def job(self, job_id: str, state: JobState, **extra: Any) -> None:
        await self.repo.add_job(
            {
                "_id": job_id,
                "kind": "edi",
                "user_id": "alice",
                "title": "Import des factures EDI",
                "state": state.value,
                "requested_at": NOW,
                "started_at": NOW,
                "names": NAMES,
                "total": len(NAMES),
                "dispatched": True,
                **extra,
            }
        )
        await self.repo.add_files(job_id, NAMES, NOW)
        for name in NAMES:
            ok = name == "a.edi"
            result = {"ok": ok, "error": None if ok else "Fichier illisible", "invoices": 1}
            await self.repo.finish_file(job_id, name, result)
            await self.repo.mark_announced(job_id, name)


@pytest.fixture
async def world(test_env: Any, tmp_path: Path) -> AsyncIterator[Announcer]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    repo = ImportRepository(client, f"{test_env.db_prefix}_import")
    lock = ImportLock(repo.lock, lease_s=3600)
    holder: list[Announcer] = []

    async def emit(message: Message) -> None:
        holder[0].emitted.append(message)

    service = ImportService(
        repo, lock, FileStore(tmp_path), emit, deadline_s=600, max_file_bytes=1 << 20
    )
    holder.append(Announcer(service, repo, lock))
    (tmp_path / "inbox" / "edi").mkdir(parents=True)
    yield holder[0]
    await asyncio.gather(*service.background)
    await client.close()


async def test_a_completed_import_is_announced_again_whole(world: Announcer) -> None:
    await world.job("j-done", JobState.COMPLETED)
    await world.service.announce("j-done", "asked")
    assert all(m.reannounced for m in world.emitted)  # type: ignore[attr-defined]
    started, *files, finished = world.emitted
    assert isinstance(started, ImportStarted) and started.total == 2
    assert started.event_id == stable_event_id("j-done", "started")
    assert [(f.item, f.ok) for f in files if isinstance(f, FileImported)] == [
        ("a.edi", True),
        ("b.edi", False),
    ]
    assert files[0].event_id == stable_event_id("j-done", "file", "a.edi")
    assert isinstance(finished, ImportFinished)
    assert (finished.status.value, finished.processed, finished.failed) == ("completed", 2, 1)
    assert finished.event_id == stable_event_id("j-done", "finished")


async def test_an_end_that_died_before_its_announcement_is_announced_by_a_redelivered_file(
    world: Announcer,
) -> None:
    """The last file's handler moved the job to `completed` and died: its message comes
    back, finds the job ended, announces import.finished and frees the lock."""
    await world.job("j-died", JobState.COMPLETED)
    assert await world.lock.acquire("j-died", NOW)  # never released: the end died first
    await world.service.import_file(
        ImportFile(producer="test", job_id="j-died", kind=ImportKind.EDI, item="b.edi", index=1)
    )
    (finished,) = world.emitted
    assert isinstance(finished, ImportFinished) and finished.reannounced
    lease = await world.lock.current()
    assert lease is not None and lease["released"]


async def test_a_lock_held_by_an_ended_import_does_not_hold_the_queue(world: Announcer) -> None:
    await world.job("j-ended", JobState.FAILED, error="Délai dépassé (10 min)")
    assert await world.lock.acquire("j-ended", NOW)
    await world.repo.add_job(
        {
            "_id": "j-next",
            "kind": "edi",
            "user_id": "bob",
            "upload_ids": [],
            "title": "Import des factures EDI",
            "state": JobState.QUEUED.value,
            "requested_at": NOW,
            "announced_position": None,
            "dispatched": False,
        }
    )
    await world.service.schedule()
    lease = await world.lock.current()
    assert lease is not None and lease["holder"] == "j-next"


async def test_a_failed_import_is_announced_with_its_stored_reason(world: Announcer) -> None:
    await world.job("j-failed", JobState.FAILED, error="Délai dépassé (10 min) : 1 fichier(s)")
    await world.service.announce("j-failed", "asked")
    finished = world.emitted[-1]
    assert isinstance(finished, ImportFinished)
    assert finished.status.value == "failed"
    assert finished.error == "Délai dépassé (10 min) : 1 fichier(s)"


async def test_a_file_finding_its_job_expired_a_moment_ago_leaves_the_end_to_the_expiry(
    world: Announcer,
) -> None:
    """The job has just been moved to `failed` by its deadline, and its reason is not
    stored yet (the expiry is still putting files back): a file's message arriving then
    announces nothing, or its "Import interrompu" would be the end shown instead of
    "Délai dépassé (…) : N fichier(s) non traité(s)"."""
    await world.job("j-expiring", JobState.FAILED, finished_at=datetime.now(UTC))
    await world.service.import_file(
        ImportFile(producer="test", job_id="j-expiring", kind=ImportKind.EDI, item="b.edi", index=1)
    )
    await world.service.announce("j-expiring", "asked")
    assert not any(isinstance(m, ImportFinished) for m in world.emitted)


async def test_an_expiry_that_died_before_storing_its_reason_is_announced_later(
    world: Announcer,
) -> None:
    expired = datetime.now(UTC) - timedelta(minutes=5)
    await world.job("j-expired", JobState.FAILED, finished_at=expired)
    await world.service.import_file(
        ImportFile(producer="test", job_id="j-expired", kind=ImportKind.EDI, item="b.edi", index=1)
    )
    (finished,) = world.emitted
    assert isinstance(finished, ImportFinished)
    assert (finished.status.value, finished.error) == ("failed", UNKNOWN_FAILURE)


async def running_undispatched(world: Announcer, dispatching_at: datetime) -> None:
    now = datetime.now(UTC)
    await world.repo.add_job(
        {
            "_id": "j-sending",
            "kind": "edi",
            "user_id": "alice",
            "title": "Import des factures EDI",
            "state": JobState.RUNNING.value,
            "requested_at": now,
            "started_at": now,
            "names": NAMES,
            "total": len(NAMES),
            "dispatched": False,
            "dispatching_at": dispatching_at,
        }
    )
    await world.repo.add_files("j-sending", NAMES, now)


async def test_a_job_whose_commands_are_being_sent_is_not_sent_again(world: Announcer) -> None:
    """Another replica's pass finds the job not yet `dispatched` while its starter is
    still sending (2,000 commands take seconds): it leaves them to the starter."""
    await running_undispatched(world, dispatching_at=datetime.now(UTC))
    await world.service.schedule()
    assert not [m for m in world.emitted if isinstance(m, ImportFile)]


async def test_a_dispatch_whose_sender_died_is_done_again(world: Announcer) -> None:
    await running_undispatched(world, dispatching_at=datetime.now(UTC) - timedelta(seconds=6))
    await world.service.schedule()
    sent = [m.item for m in world.emitted if isinstance(m, ImportFile)]
    assert sent == NAMES
    job = await world.repo.get_job("j-sending")
    assert job is not None and job["dispatched"]
