"""The progress lists' entries (jauge_shared.contracts.progress_lists), kept beside the
documents: added before a document is written, removed after, so a crash in between
leaves an entry too many (readers drop it), never one too few."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pymongo import DeleteOne, InsertOne
from pymongo.asynchronous.collection import AsyncCollection

from jauge_shared.contracts.progress_lists import LISTED_MARKER, list_keys
from progress_svc.aggregate import Document
from progress_svc.bulk import DUPLICATE_KEY, bulk

logger = logging.getLogger("progress_svc")

BACKFILLED = LISTED_MARKER
BACKFILL_BATCH = 500
# the fields list_keys reads: the rest of a document is not needed to list it
LISTED_FIELDS = {
    field: True
    for field in ("owner", "kind", "step_status", "created_at", "updated_at", "finished_at")
}


# the paged lists' indexes on `progress` before the list entries: nothing reads them,
# and each costs every write
RETIRED_LIST_INDEXES = frozenset(
    {
        "owner_1_kind_1_created_at_-1__id_-1",
        "kind_1_created_at_-1__id_-1",
        "owner_1_created_at_-1__id_-1",
        "created_at_-1__id_-1",
        "step_status_1_created_at_1__id_1",
        "step_status_1_updated_at_-1__id_-1",
        "step_status_1_finished_at_-1__id_-1",
    }
)


async def drop_retired_indexes(progress: AsyncCollection[Document]) -> None:
    for name in [ix["name"] async for ix in await progress.list_indexes()]:
        if name in RETIRED_LIST_INDEXES:
            await progress.drop_index(name)


def keys_of(doc: Document | None) -> set[str]:
    return list_keys(doc) if doc is not None else set()


@dataclass(frozen=True)
class EntryChange:
    """A write's entries to add before it and to remove after it."""

    added: frozenset[str]
    removed: frozenset[str]

    @classmethod
    def of(cls, current: Document | None, new: Document) -> EntryChange:
        before, after = keys_of(current), keys_of(new)
        return cls(frozenset(after - before), frozenset(before - after))


async def insert_entries(lists: AsyncCollection[Document], keys: set[str]) -> None:
    """Adds entries; one there already (a retried write, two writers of one job) is kept.
    Raises the first other error: no document may be written without its entries."""
    ops = [InsertOne({"_id": key}) for key in sorted(keys)]
    _, failed = await bulk(lists, ops, tolerate=(DUPLICATE_KEY,))
    if failed:
        raise next(iter(failed.values()))


async def delete_entries(lists: AsyncCollection[Document], keys: set[str]) -> None:
    """Removes entries a written document no longer has; a failure only leaves entries
    that readers drop, so it is logged, not raised."""
    try:
        _, failed = await bulk(lists, [DeleteOne({"_id": key}) for key in sorted(keys)])
        if failed:
            raise next(iter(failed.values()))
    except Exception as e:
        logger.warning("progress list entries not removed", extra={"error": repr(e)})


async def backfill(progress: AsyncCollection[Document], lists: AsyncCollection[Any]) -> int:
    """Lists the documents of a store written before the lists existed: one read of the
    collection, once per store (a marker says it was done); how many were listed."""
    if await lists.find_one({"_id": BACKFILLED}) is not None:
        return 0
    listed, keys = 0, set()
    async for doc in progress.find({}, LISTED_FIELDS):
        keys |= list_keys(doc)
        listed += 1
        if len(keys) >= BACKFILL_BATCH:
            await insert_entries(lists, keys)
            keys = set()
    await insert_entries(lists, keys)
    await insert_entries(lists, {BACKFILLED})
    if listed:
        logger.info("progress lists backfilled", extra={"documents": listed})
    return listed
