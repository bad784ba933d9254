"""The progress lists' entries on the real store: each written document has exactly its
entries; a crash between a document and the removal of its old entries leaves an entry
too many, never one too few; a store written before the lists is listed once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from jauge_shared.contracts.progress_lists import job_id_of, list_keys
from progress_svc import lists
from progress_svc.aggregate import Document
from progress_svc.repository import ProgressRepository

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
async def repository(test_env) -> AsyncIterator[ProgressRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(test_env.mongo_url, tz_aware=True)
    database = f"{test_env.db_prefix}_progress_lists"
    yield ProgressRepository(client, database)
    await client.drop_database(database)
    await client.close()


def task(step_status: str, seq: int, **fields: Any):  # type: ignore[no-untyped-def]
    def compute(current: Document | None) -> Document:
        return {
            "_id": "t1",
            "kind": "colis.create",
            "owner": "alice|bob",  # a separator in a name is quoted
            "status": "failed" if step_status.startswith("failed") else "running",
            "step_status": step_status,
            "created_at": NOW,
            "updated_at": NOW + timedelta(seconds=seq),
            "seq": seq,
            **fields,
        }

    return compute


async def stored_keys(repository: ProgressRepository) -> set[str]:
    return {str(entry["_id"]) async for entry in repository.lists.find({})}


async def test_a_task_has_exactly_the_entries_of_its_state(repository) -> None:
    doc, _ = await repository.change("t1", task("pending", 1))
    assert doc is not None
    assert await stored_keys(repository) == list_keys(doc)
    assert {k.split("|")[1] for k in list_keys(doc)} == {"all", "colis", "active", "busy"}
    assert "tasks|active|alice%7Cbob|2026-12-07T10:00:00.000000Z|t1" in list_keys(doc)
    doc, _ = await repository.change("t1", task("failed", 2))
    assert doc is not None and await stored_keys(repository) == list_keys(doc)
    doc, _ = await repository.change("t1", task("failed", 3))  # updated: the entry moves
    assert doc is not None and await stored_keys(repository) == list_keys(doc)
    finished = task("completed", 4, status="completed", finished_at=NOW + timedelta(minutes=1))
    doc, _ = await repository.change("t1", finished)
    assert doc is not None and await stored_keys(repository) == list_keys(doc)
    assert {k.split("|")[1] for k in list_keys(doc)} == {"all", "colis", "completed"}


async def test_a_crash_before_old_entries_go_leaves_one_too_many_never_too_few(
    repository, monkeypatch
) -> None:
    await repository.change("t1", task("pending", 1))

    async def crashed(*_: Any) -> None:  # the process died right after the write
        return None

    monkeypatch.setattr(lists, "delete_entries", crashed)
    doc, _ = await repository.change("t1", task("failed", 2))
    assert doc is not None
    kept = await stored_keys(repository)
    assert list_keys(doc) < kept  # its new entries, and the active ones left behind
    assert {k.split("|")[1] for k in kept - list_keys(doc)} == {"active", "busy"}


async def test_entries_go_in_before_the_document(repository, monkeypatch) -> None:
    """A store that refuses the document after its entries: the entries stay (readers
    drop them), the document is not written, the write fails whole (and is retried)."""
    seen: list[set[str]] = []

    async def refused(*_: Any, **__: Any) -> None:
        seen.append(await stored_keys(repository))
        raise ConnectionError("store gone")

    monkeypatch.setattr(repository.collection, "bulk_write", refused)
    with pytest.raises(ConnectionError):
        await repository.change("t1", task("pending", 1))
    monkeypatch.undo()
    assert seen and {k.split("|")[1] for k in seen[0]} == {"all", "colis", "active", "busy"}
    assert await repository.get("t1") is None


async def test_a_store_written_before_the_lists_is_listed_once(repository) -> None:
    older = [task("pending", 1)(None), {**task("completed", 2)(None), "_id": "t2"}]
    older[1]["finished_at"] = NOW
    await repository.collection.insert_many(older)
    await repository.list_documents()
    assert await stored_keys(repository) == list_keys(older[0]) | list_keys(older[1]) | {
        lists.BACKFILLED
    }
    await repository.collection.insert_one({**older[0], "_id": "t3"})
    await repository.list_documents()  # done once: the marker says so
    assert not any(k.endswith("|t3") for k in await stored_keys(repository))


async def test_the_list_indexes_of_before_the_entries_are_dropped(repository) -> None:
    await repository.collection.create_index([("step_status", 1), ("updated_at", -1), ("_id", -1)])
    await repository.ensure_indexes()
    names = [ix["name"] async for ix in await repository.collection.list_indexes()]
    assert "step_status_1_updated_at_-1__id_-1" not in names
    assert "owner_1_updated_at_-1" in names  # the others stay


def test_an_id_or_owner_with_characters_json_escapes_is_quoted_in_its_keys() -> None:
    doc = task("pending", 1)(None)
    doc.update(_id='a&b"c<\\d', owner="<é>")
    for key in list_keys(doc):
        assert not any(c in key for c in '&"<>\\') and key.isascii()
        assert job_id_of(key) == 'a&b"c<\\d'
