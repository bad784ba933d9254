"""`jobs` snapshots from memory: newest first, each caller's own, the store read once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

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
    """What the progress collection would answer, counting the reads."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = jobs
        self.reads: list[dict[str, Any]] = []
        self.fail_next = False

    async def newest(self, query: dict[str, Any], n: int) -> list[Job]:
        self.reads.append(query)
        await asyncio.sleep(0)  # an update may arrive while the store is read
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("store away")
        found = [j for j in self.jobs if all(j.get(k) == v for k, v in query.items())]
        return sorted(found, key=lambda j: j["updated_at"], reverse=True)[:n]


def ids(jobs: list[Job]) -> list[str]:
    return [j["id"] for j in jobs]


async def test_each_caller_gets_his_newest_jobs_first_from_one_read() -> None:
    store = FakeStore([job("a1", "alice", 1), job("b1", "bob", 2), job("a2", "alice", 3)])
    recent = RecentJobs(store.newest, limit=2)
    assert ids(await recent.newest(ALICE)) == ["a2", "a1"]
    assert ids(await recent.newest(ALICE)) == ["a2", "a1"]
    assert ids(await recent.newest(BOB)) == ["b1"]
    assert ids(await recent.newest(ADMIN)) == ["a2", "b1"]
    assert store.reads == [{"owner": "alice"}, {"owner": "bob"}, {}]


async def test_updates_keep_each_view_the_newest_and_a_late_older_state_is_ignored() -> None:
    store = FakeStore([job("a1", "alice", 1, processed=1), job("b1", "bob", 2)])
    recent = RecentJobs(store.newest, limit=10)
    await recent.newest(ALICE)
    await recent.newest(ADMIN)
    recent.update(job("a1", "alice", 5, processed=5))
    recent.update(job("a1", "alice", 4, processed=4))  # redelivered late
    recent.update(job("a2", "alice", 3))
    recent.update(job("b2", "bob", 6))  # bob has no view yet: read when he comes
    assert [(j["id"], j.get("processed")) for j in await recent.newest(ALICE)] == [
        ("a1", 5),
        ("a2", None),
    ]
    assert ids(await recent.newest(ADMIN)) == ["b2", "a1", "a2", "b1"]
    store.jobs.append(job("b2", "bob", 6))  # progress-svc stores before it announces
    assert ids(await recent.newest(BOB)) == ["b2", "b1"]
    assert len(store.reads) == 3


async def test_an_agent_with_many_jobs_among_many_others_is_still_answered_from_memory() -> None:
    """The first version kept the newest jobs of everyone and read the store for an agent
    with fewer than `limit` of them there: with ten busy agents that was every read."""
    recent = RecentJobs(FakeStore([]).newest, limit=100)
    agents = [User(f"agent-{i}", Role.AGENT) for i in range(10)]
    for agent in agents:
        await recent.newest(agent)
    for n in range(3000):
        recent.update(job(f"j{n}", f"agent-{n % 10}", n))
    newest = await recent.newest(agents[3])
    assert len(newest) == 100
    assert newest[0]["id"] == "j2993" and newest[-1]["id"] == "j2003"
    assert all(len(view.jobs) <= 200 for view in recent._views.values())


async def test_times_are_compared_as_times_not_as_text() -> None:
    recent = RecentJobs(FakeStore([]).newest, limit=10)
    await recent.newest(ALICE)
    # as pydantic writes them: no fraction when it is zero; as text "05Z" > "05.5Z"
    recent.update({"id": "whole", "owner": "alice", "updated_at": "2026-12-01T08:00:05Z"})
    recent.update({"id": "later", "owner": "alice", "updated_at": "2026-12-01T08:00:05.500000Z"})
    assert ids(await recent.newest(ALICE)) == ["later", "whole"]


async def test_an_update_received_while_the_store_is_read_wins() -> None:
    store = FakeStore([job("a1", "alice", 1, processed=1)])
    recent = RecentJobs(store.newest, limit=10)
    first = asyncio.create_task(recent.newest(ALICE))
    second = asyncio.create_task(recent.newest(ALICE))
    await asyncio.sleep(0)
    recent.update(job("a1", "alice", 9, processed=9))
    assert [j["processed"] for j in await first] == [9]
    assert [j["processed"] for j in await second] == [9]
    assert len(store.reads) == 1


async def test_a_failed_read_is_tried_again_by_the_next_caller() -> None:
    store = FakeStore([job("a1", "alice", 1)])
    store.fail_next = True
    recent = RecentJobs(store.newest, limit=10)
    with pytest.raises(ConnectionError):
        await recent.newest(ALICE)
    assert ids(await recent.newest(ALICE)) == ["a1"]


async def test_views_of_callers_not_seen_for_a_while_are_dropped() -> None:
    store = FakeStore([job("a1", "alice", 1), job("b1", "bob", 2)])
    recent = RecentJobs(store.newest, limit=10, max_views=2)
    await recent.newest(ALICE)
    await recent.newest(BOB)
    await recent.newest(ALICE)  # alice is the most recent now
    await recent.newest(ADMIN)  # bob's view goes
    assert set(recent._views) == {"alice", "*"}
    assert ids(await recent.newest(BOB)) == ["b1"]
    assert store.reads[-1] == {"owner": "bob"}
