"""The reconciler on the real store: which gauges make it ask their owner, and what it
counts as a repair."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jauge_shared.contracts import (
    AnnounceColisTask,
    AnnounceImport,
    AnnounceState,
    ImportKind,
    ImportStarted,
)
from jauge_shared.metrics import RECONCILER_REPAIRS as REPAIRS
from progress_svc.aggregate import Document
from progress_svc.reconciler import STALE, Reconciler, record_if_repair, start_at_zero
from progress_svc.repository import ProgressRepository

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


class Asked:
    def __init__(self) -> None:
        self.commands: list[AnnounceState] = []

    async def __call__(self, command: AnnounceState) -> None:
        self.commands.append(command)


@pytest.fixture
async def repository(test_env: Any) -> AsyncIterator[ProgressRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    database = f"{test_env.db_prefix}_progress_reconciler"
    yield ProgressRepository(client, database)
    await client.drop_database(database)
    await client.close()


def doc(job_id: str, kind: str, status: str, age_s: float) -> Any:
    def compute(current: Document | None) -> Document:
        return {
            "_id": job_id,
            "seq": (current or {"seq": 0})["seq"] + 1,
            "kind": kind,
            "status": status,
            "updated_at": NOW - timedelta(seconds=age_s),
        }

    return compute


async def test_only_open_gauges_that_stopped_moving_make_their_owner_asked(
    repository: ProgressRepository,
) -> None:
    await repository.change("imp-stuck", doc("imp-stuck", "import.edi", "running", 120))
    await repository.change("task-stuck", doc("task-stuck", "colis.create", "running", 45))
    await repository.change("imp-moving", doc("imp-moving", "import.edi", "running", 2))
    await repository.change("task-done", doc("task-done", "colis.create", "completed", 500))
    asked = Asked()
    reconciler = Reconciler(repository, asked, after_s=30, producer="test", clock=lambda: NOW)

    assert await reconciler.run_once() == 2
    by_job = {c.job_id: c for c in asked.commands}
    assert isinstance(by_job["imp-stuck"], AnnounceImport)
    assert isinstance(by_job["task-stuck"], AnnounceColisTask)
    assert by_job["imp-stuck"].stale_s == 120

    # asked once per period, not at every pass
    assert await reconciler.run_once() == 0


async def test_the_stale_documents_are_the_backlog_counted_at_every_pass(
    repository: ProgressRepository,
) -> None:
    STALE.labels("import").set(7)  # a value left by a previous process's life
    start_at_zero()
    assert STALE.labels("import")._value.get() == 0
    assert STALE.labels("colis")._value.get() == 0
    await repository.change("imp-stuck", doc("imp-stuck", "import.edi", "running", 120))
    await repository.change("task-a", doc("task-a", "colis.create", "running", 45))
    await repository.change("task-b", doc("task-b", "colis.create", "running", 31))
    await repository.change("task-moving", doc("task-moving", "colis.create", "running", 3))
    await repository.change("task-done", doc("task-done", "colis.create", "completed", 500))
    reconciler = Reconciler(repository, Asked(), after_s=30, producer="test", clock=lambda: NOW)

    await reconciler.run_once()
    assert STALE.labels("import")._value.get() == 1
    assert STALE.labels("colis")._value.get() == 2
    # asked already, not yet answered: still in the backlog at the next pass
    assert await reconciler.run_once() == 0
    assert STALE.labels("colis")._value.get() == 2
    # one moves again, one ends: the backlog shrinks
    await repository.change("task-a", doc("task-a", "colis.create", "running", 0))
    await repository.change("task-b", doc("task-b", "colis.create", "completed", 0))
    await repository.change("imp-stuck", doc("imp-stuck", "import.edi", "completed", 0))
    await reconciler.run_once()
    assert STALE.labels("import")._value.get() == 0
    assert STALE.labels("colis")._value.get() == 0


async def test_an_entry_left_by_a_crash_after_the_end_is_pruned(
    repository: ProgressRepository,
) -> None:
    await repository.change("j", doc("j", "import.edi", "running", 100))
    # the document ended and the process died before its entry was removed
    await repository.collection.update_one({"_id": "j"}, {"$set": {"status": "completed"}})
    repository.forget_all()
    asked = Asked()
    reconciler = Reconciler(repository, asked, after_s=30, producer="test", clock=lambda: NOW)
    assert await reconciler.run_once() == 0
    assert await repository.open_ids() == []


async def test_an_event_announced_again_that_changes_a_document_is_a_repair(
    repository: ProgressRepository,
) -> None:
    started = ImportStarted(
        producer="import-svc",
        job_id="j-lost",
        kind=ImportKind.EDI,
        user_id="alice",
        title="Import des factures EDI",
        total=3,
    )
    before = REPAIRS.labels("import")._value.get()
    await record_if_repair(repository, started, changed=True)  # first time: no repair
    await record_if_repair(repository, started.again(), changed=False)  # had it: no repair
    assert REPAIRS.labels("import")._value.get() == before
    await record_if_repair(repository, started.again(), changed=True)
    await record_if_repair(repository, started.again(), changed=True)  # recorded once
    assert REPAIRS.labels("import")._value.get() == before + 2
    (repair,) = await repository.recent_repairs(NOW - timedelta(days=1), 10)
    assert repair["job_id"] == "j-lost" and repair["event"] == "import.started"
