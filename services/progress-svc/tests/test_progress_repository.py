"""The progress collection on the real store: the copies kept in memory are never trusted
past another writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError

from progress_svc.aggregate import Document
from progress_svc.bulk import BULK_OPS
from progress_svc.repository import ProgressRepository


@pytest.fixture
async def repository(test_env) -> AsyncIterator[ProgressRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url)
    database = f"{test_env.db_prefix}_progress_repository"
    repo = ProgressRepository(client, database, cached=2)
    yield repo
    await client.drop_database(database)
    await client.close()


def counting(step: int = 1):  # type: ignore[no-untyped-def]
    def compute(current: Document | None) -> Document:
        seq = (current or {"seq": 0})["seq"] + step
        return {"_id": "j", "seq": seq, "count": seq}

    return compute


async def test_a_document_written_is_read_from_memory_next_time(repository) -> None:
    await repository.change("j", counting())
    await repository.collection.update_one({"_id": "j"}, {"$set": {"count": 99}})
    doc, changed = await repository.change("j", lambda current: None)
    assert not changed
    assert doc is not None and doc["count"] == 1  # the store was not read


async def test_after_forget_all_the_store_is_read_again(repository) -> None:
    await repository.change("j", counting())
    # another replica, active while this one was away, moved the document on
    await repository.collection.replace_one({"_id": "j"}, {"_id": "j", "seq": 5, "count": 5})
    repository.forget_all()
    doc, _ = await repository.change("j", counting())
    assert doc is not None and doc["seq"] == 6
    assert (await repository.get("j"))["seq"] == 6


async def test_the_cache_keeps_only_the_newest_documents(repository) -> None:
    for job in ("a", "b", "c"):
        await repository.change(job, lambda current, job=job: {"_id": job, "seq": 1})
    await repository.collection.update_one({"_id": "a"}, {"$set": {"seq": 7}})
    doc, _ = await repository.change("a", lambda current: None)
    assert doc is not None and doc["seq"] == 7  # "a" had been evicted: read from the store


async def test_a_failed_write_leaves_no_copy_behind(repository) -> None:
    await repository.change("j", counting())

    def broken(current: Document | None) -> Document:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await repository.change("j", broken)
    await repository.collection.update_one({"_id": "j"}, {"$set": {"seq": 41}})
    doc, _ = await repository.change("j", counting())
    assert doc is not None and doc["seq"] == 42


async def test_a_write_in_flight_across_forget_all_is_not_kept(repository) -> None:
    await repository.change("j", counting())
    original = repository.collection.bulk_write

    async def replace_then_reconnect(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = await original(*args, **kwargs)
        repository.forget_all()  # the channel changed while this write was in flight
        return result

    repository.collection.bulk_write = replace_then_reconnect
    try:
        await repository.change("j", counting())
    finally:
        repository.collection.bulk_write = original
    # the other replica, active meanwhile, moved the document on
    await repository.collection.update_one({"_id": "j"}, {"$set": {"seq": 10}})
    doc, _ = await repository.change("j", counting())
    assert doc is not None and doc["seq"] == 11


async def test_a_stale_copy_never_overwrites_a_newer_document(repository) -> None:
    """The fence: a replica that computed from seq 1 while another wrote seq 2 and 3
    (it was frozen, then woke after a takeover) writes nothing, and recomputes."""
    await repository.change("j", counting())
    # another writer moved the document on; this replica's copy in memory still says 1
    await repository.collection.replace_one({"_id": "j"}, {"_id": "j", "seq": 3, "count": 3})
    doc, changed = await repository.change("j", counting())
    assert changed
    assert doc is not None and doc["seq"] == 4  # from 3, not 2 over the newer document
    assert (await repository.get("j"))["count"] == 4


def status_doc(status: str, kind: str = "import.edi"):  # type: ignore[no-untyped-def]
    def compute(current: Document | None) -> Document:
        seq = (current or {"seq": 0})["seq"] + 1
        return {"_id": "j", "seq": seq, "status": status, "kind": kind}

    return compute


async def test_open_documents_are_listed_until_they_end(repository) -> None:
    await repository.change("j", status_doc("running"))
    assert [e["_id"] for e in await repository.open_ids()] == ["j"]
    await repository.change("j", status_doc("running"))
    assert len(await repository.open_ids()) == 1
    await repository.change("j", status_doc("completed"))
    assert await repository.open_ids() == []


async def test_a_document_that_opens_again_is_listed_again(repository) -> None:
    """A parcel task failed for good and retried by hand opens again."""
    await repository.change("j", status_doc("failed", "colis.create"))
    assert await repository.open_ids() == []
    await repository.change("j", status_doc("queued", "colis.create"))
    assert [e["kind"] for e in await repository.open_ids()] == ["colis.create"]


async def test_open_documents_of_an_older_store_are_found_at_start_up(repository) -> None:
    await repository.collection.insert_many(
        [
            {"_id": "a", "seq": 1, "status": "running", "kind": "import.edi"},
            {"_id": "b", "seq": 1, "status": "completed", "kind": "import.edi"},
        ]
    )
    await repository.list_open_documents()
    assert [e["_id"] for e in await repository.open_ids()] == ["a"]


async def test_forgetting_a_partition_keeps_the_other_partitions_copies(repository) -> None:
    await repository.change("a", lambda current: {"_id": "a", "seq": 1}, "p0")
    await repository.change("b", lambda current: {"_id": "b", "seq": 1}, "p1")
    # another replica was p0's active consumer meanwhile and moved "a" on
    await repository.collection.update_one({"_id": "a"}, {"$set": {"seq": 5}})
    await repository.collection.update_one({"_id": "b"}, {"$set": {"seq": 9}})
    repository.forget("p0")
    assert repository.cached("a") is None
    a, _ = await repository.change("a", lambda current: None, "p0")
    b, _ = await repository.change("b", lambda current: None, "p1")
    assert a is not None and a["seq"] == 5  # read again
    assert b is not None and b["seq"] == 1  # still from memory (p1 kept its consumer)


async def test_a_write_in_flight_across_its_partitions_forget_is_not_kept(repository) -> None:
    await repository.change("j", counting(), "p0")
    original = repository.collection.bulk_write

    async def replace_then_take_over(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = await original(*args, **kwargs)
        repository.forget("p0")  # the partition's channel changed meanwhile
        return result

    repository.collection.bulk_write = replace_then_take_over
    try:
        await repository.change("j", counting(), "p0")
    finally:
        repository.collection.bulk_write = original
    await repository.collection.update_one({"_id": "j"}, {"$set": {"seq": 10}})
    doc, _ = await repository.change("j", counting(), "p0")
    assert doc is not None and doc["seq"] == 11


async def test_an_open_entry_upserted_by_another_writer_meanwhile_is_no_error(
    repository,
) -> None:
    """Two writers of one job (a partition handed over): the other's upsert of the
    `progress_open` entry won, and the store refuses this one's insert with E11000."""
    original = repository.open.bulk_write

    async def lost_the_race(ops, **kwargs):  # type: ignore[no-untyped-def]
        if not isinstance(ops[0], UpdateOne):
            return await original(ops, **kwargs)
        await original(ops, **kwargs)
        raise BulkWriteError(
            {
                "writeErrors": [
                    {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error"}
                ],
                "nMatched": 0,
            }
        )

    repository.open.bulk_write = lost_the_race
    try:
        doc, changed = await repository.change("j", lambda current: {"_id": "j", "seq": 1})
    finally:
        repository.open.bulk_write = original
    assert changed and doc is not None
    assert [d["_id"] for d in await repository.open_ids()] == ["j"]


def job_counting(job: str):  # type: ignore[no-untyped-def]
    def compute(current: Document | None) -> Document:
        seq = (current or {"seq": 0})["seq"] + 1
        return {"_id": job, "seq": seq, "count": seq, "status": "running", "kind": "import"}

    return compute


@pytest.mark.timeout(120)
async def test_many_jobs_written_at_once_go_to_the_store_together(repository) -> None:
    """150 jobs: more than FerretDB 1.24's pool of 100 connections, which one update
    command of 100 statements exhausted by itself (the store then hung for good)."""
    calls: list[int] = []
    original = repository.collection.bulk_write

    async def counted(ops, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(len(ops))
        return await original(ops, **kwargs)

    repository.collection.bulk_write = counted
    jobs = [f"j{i}" for i in range(150)]
    await asyncio.gather(*(repository.change(j, job_counting(j)) for j in jobs))
    await asyncio.gather(*(repository.change(j, job_counting(j)) for j in jobs))
    assert sum(calls) == 300
    assert max(calls) <= BULK_OPS
    # what is ready while a group is in the store goes in the next one (the reads of
    # documents not in memory end at different times): far fewer writes than documents
    assert len(calls) <= 60, calls
    assert sorted(e["_id"] for e in await repository.open_ids()) == sorted(jobs)
    for job in jobs:
        assert (await repository.get(job))["seq"] == 2


async def test_in_a_group_only_the_write_whose_seq_is_gone_is_computed_again(
    repository,
) -> None:
    """The fence inside a group: the bulk's count says one guard failed, not which; the
    documents read back tell (each carries the token of the write that stored it)."""
    jobs = ["a", "b"]  # both kept in memory (the fixture's cache holds two)
    await asyncio.gather(*(repository.change(j, job_counting(j)) for j in jobs))
    assert repository.cached("b") is not None
    # another writer moved "b" on while this replica's copy still says seq 1
    await repository.collection.update_one({"_id": "b"}, {"$set": {"seq": 7}})
    computed: list[str] = []

    def tracing(job: str):  # type: ignore[no-untyped-def]
        def compute(current: Document | None) -> Document:
            computed.append(job)
            return job_counting(job)(current)

        return compute

    results = await asyncio.gather(*(repository.change(j, tracing(j)) for j in jobs))
    assert computed.count("a") == 1
    assert computed.count("b") == 2  # lost once to the other writer, computed again
    assert [doc["seq"] for doc, _ in results] == [2, 8]
    assert (await repository.get("b"))["seq"] == 8
