"""The `progress` collection: read, and compare-and-set on `seq`.

No transactions are needed: each change is a whole-document replace guarded by the
`seq` it was computed from, so concurrent replicas never lose each other's updates;
the loser reads again and recomputes. The guard is also the fence against a replica
that lost its turn: single active consumer decides who receives, not who writes, and
a replica frozen in the middle of a write (a pause, a stalled VM) that wakes after
another took over finds its `seq` gone and writes nothing.

On FerretDB the guard costs what a lookup by `_id` costs only with the project's
build (deploy/local/ferretdb-sqlite-id-pushdown.patch): FerretDB 1.24 otherwise reads
the whole collection for any filter but `_id` alone (docs/decisions.md).

The documents last written are kept in memory (`cached`), saving a read per write:
with a thousand jobs in flight the read was a third of the store's work. A stale copy
fails the guard and is read again; a partition's documents are also dropped whenever
its consumer changes channel or is made active again (another replica may have been
the active one meanwhile), the other partitions' staying.

Beside it, `progress_open` lists the documents that are not terminal, by `_id`, for
the reconciler: an entry is added before a document opens and removed after it ends,
so a crash in between leaves an entry too many (pruned by the reconciler), never one
too few. On FerretDB a query on `status` would read every document ever kept.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.contracts.progress import PROGRESS_LIST_INDEXES, REPAIRS_COLLECTION
from jauge_shared.errors import TransientError
from jauge_shared.faults import FaultPoints
from progress_svc.aggregate import TERMINAL, Document

COLLECTION = "progress"
OPEN_COLLECTION = "progress_open"
MAX_CONFLICTS = 100
CACHED_DOCUMENTS = 2_000


class ProgressRepository:
    def __init__(
        self,
        client: AsyncMongoClient[Document],
        database: str,
        cached: int = CACHED_DOCUMENTS,
        faults: FaultPoints | None = None,
    ) -> None:
        self.client = client
        self.collection: AsyncCollection[Document] = client[database][COLLECTION]
        self.open: AsyncCollection[Document] = client[database][OPEN_COLLECTION]
        self.repairs: AsyncCollection[Document] = client[database][REPAIRS_COLLECTION]
        self.faults = faults
        # job id -> (partition, document)
        self._cache: OrderedDict[str, tuple[str, Document]] = OrderedDict()
        self._cache_size = cached
        self._generation = 0
        self._partition_generations: dict[str, int] = {}

    def forget_all(self) -> None:
        """Read every document from the store again (another writer may have run).

        A change begun before this call (a write still in flight from the previous
        channel) is not kept either: its copy may already be stale.
        """
        self._cache.clear()
        self._generation += 1

    def forget(self, partition: str) -> None:
        """`forget_all`, for the documents of one partition only."""
        for job_id in [j for j, (p, _) in self._cache.items() if p == partition]:
            del self._cache[job_id]
        self._partition_generations[partition] = self._generation_of(partition) + 1

    def _generation_of(self, partition: str) -> int:
        return self._partition_generations.get(partition, 0)

    def _remember(
        self, job_id: str, doc: Document, partition: str, generation: tuple[int, int]
    ) -> None:
        if generation != (self._generation, self._generation_of(partition)):
            return
        self._cache[job_id] = (partition, doc)
        self._cache.move_to_end(job_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("owner", ASCENDING), ("updated_at", DESCENDING)])
        await self.collection.create_index([("status", ASCENDING)])
        await self.collection.create_index([("kind", ASCENDING)])
        for keys in PROGRESS_LIST_INDEXES:  # the gateway's paged lists
            await self.collection.create_index(list(keys))
        await self.repairs.create_index([("at", DESCENDING)])

    async def list_open_documents(self) -> None:
        """Lists the open documents of a store written before `progress_open` existed
        (one query at start-up; entries for documents that ended are pruned later)."""
        query = {"status": {"$nin": sorted(TERMINAL)}}
        async for doc in self.collection.find(query, {"_id": True, "kind": True}):
            await self._open(doc["_id"], doc.get("kind", ""))

    async def open_ids(self) -> list[Document]:
        return [doc async for doc in self.open.find({})]

    async def close_open(self, job_id: str) -> None:
        await self.open.delete_one({"_id": job_id})

    def cached(self, job_id: str) -> Document | None:
        entry = self._cache.get(job_id)
        return entry[1] if entry is not None else None

    async def record_repair(self, repair: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):  # the same event applied once
            await self.repairs.insert_one(repair)

    async def recent_repairs(self, since: datetime, limit: int) -> list[Document]:
        cursor = self.repairs.find({"at": {"$gte": since}}).sort("at", DESCENDING).limit(limit)
        return [doc async for doc in cursor]

    async def _open(self, job_id: str, kind: str) -> None:
        # two writers of one job for a moment (a partition handed over, a replica frozen
        # across a takeover): both upsert, and the store may refuse the second insert
        # (E11000) instead of matching the entry the first one just made
        with contextlib.suppress(DuplicateKeyError):
            await self.open.update_one(
                {"_id": job_id}, {"$setOnInsert": {"kind": kind}}, upsert=True
            )

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def change(
        self,
        job_id: str,
        compute: Callable[[Document | None], Document | None],
        partition: str = "",
    ) -> tuple[Document | None, bool]:
        """Apply `compute` atomically; returns (document now, whether it changed).

        `partition`: where the job's events come from, whose cache it is kept in."""
        generation = (self._generation, self._generation_of(partition))
        for _ in range(MAX_CONFLICTS):
            # popped: whatever happens below, the copy is only kept again once written
            entry = self._cache.pop(job_id, None)
            current = entry[1] if entry is not None else await self.get(job_id)
            new = compute(current)
            if new is None:
                if current is not None:
                    self._remember(job_id, current, partition, generation)
                return current, False
            opens = _is_open(new) and (current is None or not _is_open(current))
            if opens:
                await self._open(job_id, new.get("kind", ""))
            if self.faults:
                self.faults.hit("progress.before_write", f"{job_id}@{new['seq']}")
            if current is None:
                try:
                    await self.collection.insert_one(new)
                except DuplicateKeyError:
                    continue
            else:
                guard = {"_id": job_id, "seq": current["seq"]}
                result = await self.collection.replace_one(guard, new)
                if result.matched_count != 1:
                    continue  # another writer got there first: read again, recompute
            self._remember(job_id, new, partition, generation)
            if not _is_open(new) and (current is None or _is_open(current)):
                await self.close_open(job_id)
            return new, True
        raise TransientError(f"too many concurrent changes to progress document {job_id}")


def _is_open(doc: Any) -> bool:
    return doc.get("status") not in TERMINAL
