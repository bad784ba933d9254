"""With the store away, one authentication a second asks the driver; the others get the
same 503 at once (many server selections timing out together broke PyMongo's topology
lock and hung the gateway)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import NetworkTimeout, ServerSelectionTimeoutError

from gateway import users as users_module
from gateway.users import UserRepository


class AwayCollection:
    def __init__(self) -> None:
        self.asked = 0

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        self.asked += 1
        raise ServerSelectionTimeoutError("no server")


async def test_after_a_store_failure_the_next_callers_are_refused_without_asking_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repository = UserRepository({"jauge": {"users": AwayCollection()}}, "jauge")  # type: ignore[arg-type]
    now = [100.0]
    monkeypatch.setattr(users_module, "monotonic", lambda: now[0])

    for _ in range(3):
        with pytest.raises(ServerSelectionTimeoutError):
            await repository.get("alice")
    assert repository.collection.asked == 1  # type: ignore[attr-defined]

    now[0] += users_module.STORE_AWAY_RECHECK_S + 0.1  # a second later, one asks again
    with pytest.raises(ServerSelectionTimeoutError):
        await repository.get("alice")
    assert repository.collection.asked == 2  # type: ignore[attr-defined]


class HealingCollection:
    """A read sent into the hang fails only once a later read has been answered."""

    def __init__(self) -> None:
        self.healed = asyncio.Event()

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        if not self.healed.is_set():
            await self.healed.wait()
            raise NetworkTimeout("timed out")
        return {"_id": query["_id"], "password_hash": "x", "role": "agent"}


async def test_a_read_sent_into_the_hang_failing_after_the_heal_refuses_nothing_after() -> None:
    store = HealingCollection()
    repository = UserRepository({"jauge": {"users": store}}, "jauge")  # type: ignore[arg-type]
    sent_into_the_hang = asyncio.ensure_future(repository.get("alice"))
    await asyncio.sleep(0)
    store.healed.set()
    assert (await repository.get("bob")).username == "bob"  # type: ignore[union-attr]
    with pytest.raises(NetworkTimeout):
        await sent_into_the_hang
    # the late failure is not taken for the store being away now
    assert (await repository.get("carol")).username == "carol"  # type: ignore[union-attr]
