"""The store the project starts makes each single-document write atomic, as MongoDB does.

FerretDB 1.24 ran an update as a read, then a separate write: concurrent guarded
replaces all reported a match while only one took effect, and concurrent `$inc`s lost
increments (deploy/local/ferretdb-atomic-writes.patch). progress-svc's compare-and-set
on `seq`, the gateway's on `v` and `seq`, and every `$inc` rely on this; these writers
race on purpose, each on its own connection, as replicas do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

pytestmark = pytest.mark.system

WRITERS = 8
TRIES = 40


@pytest.fixture
async def collections(test_env: Any) -> AsyncIterator[list[AsyncCollection[Any]]]:
    """One collection, seen through one client per writer (a connection each)."""
    clients: list[AsyncMongoClient[Any]] = [
        AsyncMongoClient(test_env.mongo_url) for _ in range(WRITERS)
    ]
    name = f"{test_env.db_prefix}_atomic"
    try:
        yield [client[name]["docs"] for client in clients]
    finally:
        await clients[0].drop_database(name)
        for client in clients:
            await client.close()


async def test_guarded_replaces_lose_nothing_each_match_is_a_change(
    collections: list[AsyncCollection[Any]],
) -> None:
    await collections[0].insert_one({"_id": "job", "seq": 0, "changes": 0, "pad": "x" * 2000})
    reported = 0

    async def writer(collection: AsyncCollection[Any]) -> None:
        nonlocal reported
        for _ in range(TRIES):
            doc = await collection.find_one({"_id": "job"})
            assert doc is not None
            new = {**doc, "seq": doc["seq"] + 1, "changes": doc["changes"] + 1}
            result = await collection.replace_one({"_id": "job", "seq": doc["seq"]}, new)
            reported += result.matched_count

    await asyncio.gather(*(writer(c) for c in collections))
    stored = await collections[0].find_one({"_id": "job"})
    assert stored is not None
    # every replace that said it matched is one change in the document, no more
    assert stored["seq"] == stored["changes"] == reported
    assert reported >= TRIES  # the writers did get through, not only refuse each other


async def test_increments_by_id_and_by_another_field_are_all_counted(
    collections: list[AsyncCollection[Any]],
) -> None:
    await collections[0].insert_many(
        [{"_id": "by-id", "n": 0}, {"_id": "other", "name": "a", "n": 0}]
    )

    async def writer(collection: AsyncCollection[Any]) -> None:
        for _ in range(TRIES):
            await collection.update_one({"_id": "by-id"}, {"$inc": {"n": 1}})
            await collection.update_one({"name": "a"}, {"$inc": {"n": 1}})

    await asyncio.gather(*(writer(c) for c in collections))
    counts = {doc["_id"]: doc["n"] async for doc in collections[0].find({})}
    assert counts == {"by-id": WRITERS * TRIES, "other": WRITERS * TRIES}


async def test_concurrent_upserts_of_one_id_make_one_document_and_count_each(
    collections: list[AsyncCollection[Any]],
) -> None:
    await asyncio.gather(
        *(c.update_one({"_id": "new"}, {"$inc": {"n": 1}}, upsert=True) for c in collections)
    )
    assert await collections[0].find_one({"_id": "new"}) == {"_id": "new", "n": WRITERS}


async def test_find_and_modify_hands_out_each_number_once(
    collections: list[AsyncCollection[Any]],
) -> None:
    await collections[0].insert_one({"_id": "counter", "next": 0})

    async def taker(collection: AsyncCollection[Any]) -> list[int]:
        taken = []
        for _ in range(TRIES // 2):
            doc = await collection.find_one_and_update(
                {"_id": "counter"}, {"$inc": {"next": 1}}, return_document=ReturnDocument.AFTER
            )
            taken.append(doc["next"])
        return taken

    numbers = [n for taken in await asyncio.gather(*map(taker, collections)) for n in taken]
    assert sorted(numbers) == list(range(1, WRITERS * (TRIES // 2) + 1))


async def test_a_guarded_delete_and_a_guarded_replace_do_not_both_win(
    collections: list[AsyncCollection[Any]],
) -> None:
    for round_ in range(TRIES):
        key = f"doc-{round_}"
        await collections[0].insert_one({"_id": key, "seq": 1})
        deleted, replaced = await asyncio.gather(
            collections[1].delete_one({"_id": key, "seq": 1}),
            collections[2].replace_one({"_id": key, "seq": 1}, {"seq": 2}),
        )
        stored = await collections[0].find_one({"_id": key})
        assert deleted.deleted_count + replaced.matched_count == 1, round_
        assert (stored is None) == (deleted.deleted_count == 1), round_


async def test_hundreds_of_updates_at_once_all_end(test_env: Any) -> None:
    """More update statements at once than the store's pool of connections: FerretDB
    kept each statement's read open while its write waited for another connection, and
    400 connections sending 12 `$inc`s each stopped for good (the patch closes the read
    first: 5.4 s here)."""
    connections, each = 400, 12
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        test_env.mongo_url, maxPoolSize=connections + 10
    )
    name = f"{test_env.db_prefix}_pool"
    collection = client[name]["docs"]
    try:
        await collection.insert_many([{"_id": f"k{n}", "n": 0} for n in range(connections)])

        async def writer(n: int) -> None:
            for _ in range(each):
                await collection.update_one({"_id": f"k{n}"}, {"$inc": {"n": 1}})

        await asyncio.wait_for(asyncio.gather(*map(writer, range(connections))), 90)
        assert sum([doc["n"] async for doc in collection.find({})]) == connections * each
    finally:
        await client.drop_database(name)
        await client.close()
