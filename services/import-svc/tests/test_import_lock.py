"""The import lock on the real store: one winner, expiry, take-over, release."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from import_svc.lock import ImportLock

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@pytest.fixture
async def lock(test_env):
    client = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    collection = client[f"{test_env.db_prefix}_import"]["lock"]
    lock = ImportLock(collection, lease_s=30)
    await lock.ensure_indexes()
    yield lock
    await client.close()


async def test_only_one_of_many_concurrent_takers_wins(lock: ImportLock) -> None:
    results = await asyncio.gather(*(lock.acquire(f"job-{i}", T0) for i in range(20)))
    assert sum(results) == 1
    holder = await lock.current()
    assert holder is not None and results[int(holder["holder"].split("-")[1])]


async def test_a_held_lock_is_refused_then_taken_over_once_expired(lock: ImportLock) -> None:
    assert await lock.acquire("a", T0)
    assert not await lock.acquire("b", T0 + timedelta(seconds=10))
    assert await lock.acquire("a", T0 + timedelta(seconds=10))  # the holder renews
    later = T0 + timedelta(seconds=41)
    results = await asyncio.gather(*(lock.acquire(f"c{i}", later) for i in range(10)))
    assert sum(results) == 1
    current = await lock.current()
    assert current is not None and current["took_over"] == "a"


async def test_a_released_lock_is_free_at_once(lock: ImportLock) -> None:
    assert await lock.acquire("a", T0)
    await lock.release("a")
    assert await lock.acquire("b", T0)
    assert not await lock.renew("a", T0)
