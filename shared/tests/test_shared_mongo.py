"""The store client every service opens: its round trips counted on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import OperationFailure

from jauge_shared.mongo import make_mongo_client
from jauge_shared.settings import ServiceSettings

COUNTED = (("insert", "ok"), ("find", "ok"), ("update", "ok"), ("find", "failed"))


def counts() -> dict[tuple[str, str], float]:
    return {
        (command, outcome): REGISTRY.get_sample_value(
            "jauge_store_commands_total", {"command": command, "outcome": outcome}
        )
        or 0.0
        for command, outcome in COUNTED
    }


async def test_every_command_sent_to_the_store_is_counted_by_name_and_outcome(
    test_env: Any,
) -> None:
    client = make_mongo_client(ServiceSettings(mongo_url=test_env.mongo_url), "test")
    collection = client[f"{test_env.db_prefix}_counted"]["things"]
    before = counts()
    try:
        await collection.insert_one({"_id": 1})
        for _ in range(3):
            await collection.find_one({"_id": 1})
        await collection.update_one({"_id": 1}, {"$set": {"seen": True}})
        with pytest.raises(OperationFailure):  # answered, but refused: counted apart
            await collection.find_one({"seen": {"$no_such_operator": 1}})
    finally:
        await client.close()
    after = counts()
    assert {key: after[key] - before[key] for key in COUNTED} == {
        ("insert", "ok"): 1,
        ("find", "ok"): 3,
        ("update", "ok"): 1,
        ("find", "failed"): 1,
    }
