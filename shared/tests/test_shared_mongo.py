"""The store client every service opens: its round trips counted on /metrics."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY
from pymongo.errors import OperationFailure

from jauge_shared.mongo import RANGE_READ_FROM, make_mongo_client, read_keyed
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


async def test_keyed_documents_are_read_as_one_range_when_many_one_by_one_when_few(
    test_env: Any,
) -> None:
    client = make_mongo_client(ServiceSettings(mongo_url=test_env.mongo_url), "test")
    collection = client[f"{test_env.db_prefix}_keyed"]["files"]
    keys = [f"k{i:03d}" for i in range(RANGE_READ_FROM * 2)]
    try:
        await collection.insert_many(
            [{"_id": f"job-1/{key}", "n": i} for i, key in enumerate(keys)]
        )
        # ids just beside the prefix: never read as the job's
        await collection.insert_many([{"_id": f"{other}/k000"} for other in ("job-10", "job-1.x")])
        finds = (
            REGISTRY.get_sample_value(
                "jauge_store_commands_total", {"command": "find", "outcome": "ok"}
            )
            or 0.0
        )

        many = await read_keyed(collection, "job-1/", [*keys, "gone"], of_prefix=len(keys))
        after_many = REGISTRY.get_sample_value(
            "jauge_store_commands_total", {"command": "find", "outcome": "ok"}
        )
        few = await read_keyed(collection, "job-1/", keys[:3], of_prefix=len(keys))
        after_few = REGISTRY.get_sample_value(
            "jauge_store_commands_total", {"command": "find", "outcome": "ok"}
        )
    finally:
        await client.close()
    assert {key: doc["n"] for key, doc in many.items()} == {k: i for i, k in enumerate(keys)}
    assert after_many - finds == 2  # the range, and the key it did not find, by `_id`
    assert list(few) == keys[:3] and after_few - after_many == 3  # a few: by `_id`
    with pytest.raises(ValueError, match="ends with '/'"):
        await read_keyed(collection, "job-1", keys, of_prefix=len(keys))
