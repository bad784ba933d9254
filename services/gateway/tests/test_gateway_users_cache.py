"""Users read lately are not read again for `user_cache_s` (issue 18, item 1); a change
made through this process is seen at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import users as users_module
from gateway.users import UserRepository


class CountingCollection:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {
            "alice": {"_id": "alice", "role": "agent", "disabled": False}
        }
        self.reads = 0
        self.delay = 0.0

    async def find_one(self, query: dict[str, Any], *_: Any) -> dict[str, Any] | None:
        self.reads += 1
        await asyncio.sleep(self.delay)
        doc = self.docs.get(query["_id"])
        return dict(doc) if doc else None

    async def update_one(self, query: dict[str, Any], change: dict[str, Any]) -> Any:
        self.docs[query["_id"]].update(change["$set"])

        class Result:
            matched_count = 1

        return Result()


def repository(cache_s: float) -> tuple[UserRepository, CountingCollection]:
    collection = CountingCollection()
    repo = UserRepository({"jauge": {"users": collection}}, "jauge", cache_s=cache_s)  # type: ignore[arg-type]
    return repo, collection


async def test_a_user_is_read_once_while_cached_and_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(users_module, "monotonic", lambda: now[0])
    repo, collection = repository(cache_s=1.0)
    for _ in range(5):
        assert (await repo.get("alice")) is not None
    assert collection.reads == 1
    assert await repo.get("nobody") is None and await repo.get("nobody") is None
    assert collection.reads == 3  # an unknown name is asked each time
    now[0] += 1.1
    await repo.get("alice")
    assert collection.reads == 4


async def test_a_disable_or_logout_through_this_process_applies_at_once() -> None:
    repo, _collection = repository(cache_s=60.0)
    assert (await repo.get("alice")).disabled is False  # type: ignore[union-attr]
    await repo.disable("alice")
    assert (await repo.get("alice")).disabled is True  # type: ignore[union-attr]
    await repo.revoke("alice", "token-1", datetime(2999, 1, 1, tzinfo=UTC))
    user = await repo.get("alice")
    assert user is not None and "token-1" in user.revoked_tokens


async def test_with_no_cache_every_request_reads_the_store() -> None:
    repo, collection = repository(cache_s=0.0)
    for _ in range(3):
        await repo.get("alice")
    assert collection.reads == 3


async def test_requests_arriving_together_share_one_read_kept_from_its_answer() -> None:
    repo, collection = repository(cache_s=0.2)
    collection.delay = 0.3  # the store answers slower than the cache keeps a user
    users = await asyncio.gather(*(repo.get("alice") for _ in range(20)))
    assert all(u is not None for u in users) and collection.reads == 1
    await repo.get("alice")  # kept from the answer's time, not the question's
    assert collection.reads == 1


async def test_a_read_on_its_way_during_a_logout_is_neither_kept_nor_joined() -> None:
    repo, collection = repository(cache_s=60.0)
    collection.delay = 0.2
    before = asyncio.ensure_future(repo.get("alice"))
    await asyncio.sleep(0.05)
    collection.delay = 0.0
    await repo.revoke("alice", "token-1", datetime(2999, 1, 1, tzinfo=UTC))
    after = await repo.get("alice")  # a read of its own, after the logout
    assert after is not None and "token-1" in after.revoked_tokens
    await before
    user = await repo.get("alice")
    assert user is not None and "token-1" in user.revoked_tokens
