"""`jobs` snapshots from memory: newest first, each caller's own, the store read once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from gateway.recent import Job, RecentJobs
from gateway.users import Role, User

ALICE = User("alice", Role.AGENT)
BOB = User("bob", Role.AGENT)
ADMIN = User("root", Role.ADMIN)
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def job(job_id: str, owner: str, seconds: float, **fields: object) -> Job:
    at = (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")
    return {"id": job_id, "owner": owner, "updated_at": at, **fields}


class FakeStore:
    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.reads = 0

    async def newest(self, n: int) -> list[Job]:
        self.reads += 1
        await asyncio.sleep(0)  # an update may arrive while the store is read
        return sorted(self.jobs, key=lambda j: j["updated_at"], reverse=True)[:n]


async def test_each_caller_gets_his_newest_jobs_first() -> None:
    store = FakeStore([job("a1", "alice", 1), job("b1", "bob", 2), job("a2", "alice", 3)])
    recent = RecentJobs(store.newest, capacity=10)
    assert [j["id"] for j in await recent.newest(ALICE, 10) or []] == ["a2", "a1"]
    assert [j["id"] for j in await recent.newest(BOB, 10) or []] == ["b1"]
    assert [j["id"] for j in await recent.newest(ADMIN, 2) or []] == ["a2", "b1"]
    assert store.reads == 1


async def test_updates_are_seen_and_a_late_older_state_is_ignored() -> None:
    recent = RecentJobs(FakeStore([job("a1", "alice", 1, processed=1)]).newest, capacity=10)
    await recent.newest(ADMIN, 10)
    recent.update(job("a1", "alice", 5, processed=5))
    recent.update(job("a1", "alice", 4, processed=4))  # redelivered late
    recent.update(job("a2", "alice", 2))
    newest = await recent.newest(ALICE, 10) or []
    assert [(j["id"], j.get("processed")) for j in newest] == [("a1", 5), ("a2", None)]


async def test_times_are_compared_as_times_not_as_text() -> None:
    recent = RecentJobs(FakeStore([]).newest, capacity=10)
    # as pydantic writes them: no fraction when it is zero; as text "05Z" > "05.5Z"
    recent.update({"id": "whole", "owner": "alice", "updated_at": "2026-12-01T08:00:05Z"})
    recent.update({"id": "later", "owner": "alice", "updated_at": "2026-12-01T08:00:05.500000Z"})
    assert [j["id"] for j in await recent.newest(ALICE, 10) or []] == ["later", "whole"]


async def test_an_update_received_while_the_store_is_read_wins() -> None:
    store = FakeStore([job("a1", "alice", 1, processed=1)])
    recent = RecentJobs(store.newest, capacity=10)
    first = asyncio.create_task(recent.newest(ALICE, 10))
    second = asyncio.create_task(recent.newest(ALICE, 10))
    await asyncio.sleep(0)
    recent.update(job("a1", "alice", 9, processed=9))
    assert [j["processed"] for j in await first or []] == [9]
    assert [j["processed"] for j in await second or []] == [9]
    assert store.reads == 1


async def test_without_all_of_a_callers_jobs_in_memory_it_defers_to_the_store() -> None:
    stored = [job(f"b{i}", "bob", i) for i in range(5)] + [job("a-old", "alice", -1)]
    recent = RecentJobs(FakeStore(stored).newest, capacity=5)
    # the store held more than memory keeps: alice's old job may be beyond it
    assert await recent.newest(ALICE, 10) is None
    assert len(await recent.newest(ADMIN, 5) or []) == 5
    # while nothing was ever dropped, a short list is the whole truth
    small = RecentJobs(FakeStore([job("a1", "alice", 1)]).newest, capacity=5)
    assert [j["id"] for j in await small.newest(ALICE, 10) or []] == ["a1"]


async def test_memory_stays_bounded_and_keeps_the_newest() -> None:
    recent = RecentJobs(FakeStore([]).newest, capacity=100)
    await recent.newest(ADMIN, 1)
    for i in range(1000):
        recent.update(job(f"j{i}", "alice", i))
    assert len(recent._jobs) <= 200
    newest = await recent.newest(ADMIN, 100) or []
    assert [j["id"] for j in newest[:2]] == ["j999", "j998"]
    assert len(newest) == 100
