"""Task ETAs from memory: the latest completions of each operation, the store read once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.durations import RecentDurations, Sample
from gateway.recent import Job

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
KINDS = ["colis.create", "colis.update"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def completed(job_id: str, seconds: float, duration: float, **fields: object) -> Job:
    finished = at(seconds).isoformat().replace("+00:00", "Z")
    return {
        "id": job_id,
        "kind": "colis.create",
        "step_status": "completed",
        "finished_at": finished,
        "duration_s": duration,
        **fields,
    }


class FakeStore:
    def __init__(self, samples: dict[str, list[Sample]]) -> None:
        self.samples = samples
        self.reads: list[str] = []
        self.fail_next = False

    async def latest(self, kind: str, n: int) -> list[Sample]:
        self.reads.append(kind)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("store away")
        return sorted(self.samples.get(kind, []), key=lambda s: s[1], reverse=True)[:n]


async def test_the_store_is_read_once_then_updates_keep_the_averages() -> None:
    store = FakeStore({"colis.create": [("old-1", at(1), 10.0), ("old-2", at(2), 20.0)]})
    durations = RecentDurations(KINDS, store.latest, sample=3)
    assert await durations.averages() == {"colis.create": 15.0}
    durations.update(completed("new-1", 3, 30.0))
    durations.update(completed("new-2", 4, 40.0))
    # the latest three: 20, 30, 40
    assert await durations.averages() == {"colis.create": 30.0}
    assert store.reads == KINDS


async def test_only_completed_tasks_with_a_duration_count_and_each_once() -> None:
    durations = RecentDurations(KINDS, FakeStore({}).latest, sample=5)
    durations.update(completed("a", 1, 10.0))
    durations.update(completed("a", 1, 10.0))  # redelivered
    durations.update(completed("b", 2, 99.0, step_status="failed_final"))
    durations.update(completed("c", 3, 99.0, kind="import.edi"))
    durations.update(completed("d", 4, 0.0))
    durations.update(completed("e", 5, 20.0, kind="colis.update"))
    assert await durations.averages() == {"colis.create": 10.0, "colis.update": 20.0}


async def test_many_completions_keep_only_the_latest_sample() -> None:
    durations = RecentDurations(KINDS, FakeStore({}).latest, sample=4)
    for i in range(100):
        durations.update(completed(f"t{i}", i, float(i)))
    assert await durations.averages() == {"colis.create": (96 + 97 + 98 + 99) / 4}
    assert len(durations._latest["colis.create"]) <= 8


async def test_a_failed_first_read_is_tried_again() -> None:
    store = FakeStore({"colis.create": [("old", at(1), 12.0)]})
    store.fail_next = True
    durations = RecentDurations(KINDS, store.latest, sample=3)
    with pytest.raises(ConnectionError):
        await durations.averages()
    assert await durations.averages() == {"colis.create": 12.0}
