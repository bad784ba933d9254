"""With the store away, one authentication a second asks the driver; the others get the
same 503 at once (many server selections timing out together broke PyMongo's topology
lock and hung the gateway)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError

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
    repository = UserRepository.__new__(UserRepository)
    repository.collection = AwayCollection()  # type: ignore[assignment]
    repository.store_away_until = 0.0
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
