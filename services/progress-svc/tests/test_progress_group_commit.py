"""Group commit: a burst of one job's events is one write and one announcement."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable

import pytest

from jauge_shared.contracts import (
    FileImported,
    ImportFinished,
    ImportKind,
    ImportStarted,
    ImportStatus,
    ProgressUpdated,
    stable_event_id,
)
from progress_svc.aggregate import Document, ItemsStillInFlightError, Limits
from progress_svc.service import ProgressService


def started(total: int = 3) -> ImportStarted:
    return ImportStarted(
        producer="t", job_id="j1", kind=ImportKind.EDI, user_id="a", title="t", total=total
    )


def file(job: str, name: str) -> FileImported:
    event_id = stable_event_id(job, "file", name)
    return FileImported(event_id=event_id, producer="t", job_id=job, item=name, ok=True)


def finished() -> ImportFinished:
    return ImportFinished(producer="t", job_id="j1", status=ImportStatus.COMPLETED)


class MemoryRepository:
    def __init__(self, delay: float = 0.01) -> None:
        self.docs: dict[str, Document] = {}
        self.writes = 0
        self.delay = delay

    async def change(
        self,
        job_id: str,
        compute: Callable[[Document | None], Document | None],
        partition: str = "",
    ) -> tuple[Document | None, bool]:
        current = copy.deepcopy(self.docs.get(job_id))
        await asyncio.sleep(self.delay)  # the store's round trip: events pile up meanwhile
        new = compute(current)
        if new is None:
            return current, False
        self.docs[job_id] = new
        self.writes += 1
        return new, True


async def test_a_burst_is_applied_in_few_writes_and_every_sender_learns_its_outcome() -> None:
    repository = MemoryRepository()
    announced: list[ProgressUpdated] = []

    async def announce(event: ProgressUpdated) -> None:
        announced.append(event)

    service = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    await service.handle(started(total=50))
    files = [file("j1", f"f{i}") for i in range(50)]
    results = await asyncio.gather(*(service.handle(f) for f in files), service.handle(files[0]))
    assert results[:50] == [True] * 50
    assert results[50] is False  # the duplicate changed nothing
    assert repository.docs["j1"]["processed"] == 50
    assert repository.writes < 10
    assert announced[-1].job.processed == 50


async def test_one_bad_event_does_not_fail_its_batch() -> None:
    repository = MemoryRepository()

    async def announce(event: ProgressUpdated) -> None:
        return None

    service = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    await service.handle(started(total=3))
    early_end = finished()
    early_end = early_end.model_copy(update={"processed": 3})
    outcomes = await asyncio.gather(
        service.handle(file("j1", "a")), service.handle(early_end), return_exceptions=True
    )
    assert outcomes[0] is True
    assert isinstance(outcomes[1], ItemsStillInFlightError)
    assert repository.docs["j1"]["processed"] == 1


async def test_a_failed_write_fails_every_sender_of_the_batch() -> None:
    class Broken(MemoryRepository):
        async def change(self, job_id, compute, partition=""):  # type: ignore[no-untyped-def]
            raise ConnectionError("store away")

    async def announce(event: ProgressUpdated) -> None:
        return None

    service = ProgressService(Broken(), announce, Limits())  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await service.handle(started())


class SharingRepository(MemoryRepository):
    """Hands the next batch the very document the last one wrote, as the real one does."""

    async def change(
        self,
        job_id: str,
        compute: Callable[[Document | None], Document | None],
        partition: str = "",
    ) -> tuple[Document | None, bool]:
        current = self.docs.get(job_id)
        new = compute(current)
        if new is None:
            return current, False
        self.docs[job_id] = new
        return new, True


async def test_the_service_hands_a_job_s_next_batch_the_ids_its_last_batch_saw(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cache of `_seen` sets is the service's own (issue 17: not the pure module's)."""
    import progress_svc.service as service_module
    from progress_svc.aggregate import apply_batch

    given: list[set[bytes] | None] = []

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        known = args[3] if len(args) > 3 else kwargs.get("known_ids")
        given.append(set(known) if known is not None else None)  # as it was given
        return apply_batch(*args, **kwargs)

    monkeypatch.setattr(service_module, "apply_batch", spy)
    repository = SharingRepository()

    async def announce(event: ProgressUpdated) -> None:
        pass

    service = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    other = ProgressService(repository, announce, Limits())  # type: ignore[arg-type]
    await service.handle(started(total=3))
    await service.handle(file("j1", "a"))
    await service.handle(file("j1", "b"))
    assert given[-1] == {stable_event_id("j1", "file", "a").bytes}
    await other.handle(file("j1", "c"))  # another service: its own cache, rebuilt
    assert given[-1] is None
    assert repository.docs["j1"]["processed"] == 3


def test_a_batch_trusts_the_ids_it_is_given() -> None:
    from progress_svc.aggregate import apply_batch

    doc = apply_batch(None, [started(total=3)]).doc
    applied = apply_batch(
        doc, [file("j1", "a")], known_ids={stable_event_id("j1", "file", "a").bytes}
    )
    assert applied.doc is None and applied.outcomes == [False]
