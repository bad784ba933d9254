"""The `progress` collection: read, and compare-and-set on `seq`.

Over 300 lines on purpose: the grouped writer, the guard and the cache of last-written
documents decide together whether a write was lost; apart, the rule would be split.

No transactions are needed: each change is a whole-document replace guarded by the
`seq` it was computed from, so concurrent replicas never lose each other's updates;
the loser reads again and recomputes. The guard is also the fence against a replica
that lost its turn: single active consumer decides who receives, not who writes, and
a replica frozen in the middle of a write (a pause, a stalled VM) that wakes after
another took over finds its `seq` gone and writes nothing.

On FerretDB the guard holds only with the project's build: FerretDB 1.24 otherwise
runs a replace as a read and a separate write, so two replicas writing one job at the
same instant (a partition moving between them) both "matched" and one change was lost
(deploy/local/ferretdb-atomic-writes.patch); and it reads the whole collection for any
filter but `_id` alone (ferretdb-sqlite-id-pushdown.patch, docs/decisions.md).

Writes are grouped: the documents of every job whose new state is ready while the
previous group is in the store go in the next one, as one `bulk_write` (unordered) of
guarded replaces and inserts, and their `progress_open` entries as one more before it
(`_GroupWriter`). With a thousand busy jobs, one round trip per document was most of
progress-svc's time (docs/performance.md, round three). The guard stays per document: a
replace whose `seq` is gone matches nothing, and the bulk's counts do not say which, so
each document carries the token of the write that stored it (`_w`) and a group with
fewer matches than replaces reads its documents back to tell the written from the lost.

The documents last written are kept in memory (`cached`), saving a read per write:
with a thousand jobs in flight the read was a third of the store's work. A stale copy
fails the guard and is read again; a partition's documents are also dropped whenever
its consumer changes channel or is made active again (another replica may have been
the active one meanwhile), the other partitions' staying.

The progress lists' entries (`progress_lists`, progress_svc/lists.py) are added with
the group before its documents and removed after, as `progress_open`'s are.

Beside it, `progress_open` lists the documents that are not terminal, by `_id`, for
the reconciler: an entry is added before a document opens and removed after it ends,
so a crash in between leaves an entry too many (pruned by the reconciler), never one
too few. On FerretDB a query on `status` would read every document ever kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import (
    ASCENDING,
    DESCENDING,
    AsyncMongoClient,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    UpdateOne,
)
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.contracts.progress import REPAIRS_COLLECTION
from jauge_shared.contracts.progress_lists import LISTS_COLLECTION
from jauge_shared.errors import TransientError
from jauge_shared.faults import FaultPoints
from jauge_shared.mongo import gather_in_chunks
from progress_svc import lists
from progress_svc.aggregate import TERMINAL, Document
from progress_svc.bulk import DUPLICATE_KEY, bulk

logger = logging.getLogger("progress_svc")

COLLECTION = "progress"
OPEN_COLLECTION = "progress_open"
MAX_CONFLICTS = 100
CACHED_DOCUMENTS = 2_000
CONCURRENT_READS = 16
WRITE_TOKEN = "_w"


@dataclass
class _Write:
    """One document's write waiting for its group: True once stored, False if another
    writer got there first (the caller reads again and recomputes)."""

    job_id: str
    current: Document | None
    new: Document
    opens: bool
    closes: bool
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _GroupWriter:
    """Sends the writes queued meanwhile as one group, one group at a time."""

    def __init__(self, repository: ProgressRepository) -> None:
        self.repository = repository
        self._queued: list[_Write] = []
        self._flusher: asyncio.Task[None] | None = None
        # unique across replicas and restarts: which write stored a document
        self._tokens = (f"{os.urandom(6).hex()}{n:x}" for n in itertools.count())

    async def write(self, write: _Write) -> bool:
        write.new[WRITE_TOKEN] = next(self._tokens)
        self._queued.append(write)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await write.done

    async def _flush(self) -> None:
        try:
            while self._queued:
                await asyncio.sleep(0)  # this loop iteration's writers join the group
                group, self._queued = self._queued, []
                try:
                    await self.repository._write_group(group)
                except Exception as e:
                    for write in group:
                        if not write.done.done():
                            write.done.set_exception(e)
        finally:
            self._flusher = None


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
        self.lists: AsyncCollection[Document] = client[database][LISTS_COLLECTION]
        self.faults = faults
        # job id -> (partition, document)
        self._cache: OrderedDict[str, tuple[str, Document]] = OrderedDict()
        self._cache_size = cached
        self._generation = 0
        self._partition_generations: dict[str, int] = {}
        self._group = _GroupWriter(self)
        self._reads = asyncio.Semaphore(CONCURRENT_READS)

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
        await self.repairs.create_index([("at", DESCENDING)])
        await lists.drop_retired_indexes(self.collection)

    async def list_open_documents(self) -> None:
        """Lists the open documents of a store written before `progress_open` existed
        (one query at start-up; entries for documents that ended are pruned later)."""
        query = {"status": {"$nin": sorted(TERMINAL)}}
        async for doc in self.collection.find(query, {"_id": True, "kind": True}):
            await self._open(doc["_id"], doc.get("kind", ""))

    async def list_documents(self) -> None:
        """Lists, once per store, the documents written before the progress lists."""
        await lists.backfill(self.collection, self.lists)

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

    async def _read(self, job_id: str) -> Document | None:
        # a thousand new jobs at once would otherwise be a thousand reads in flight:
        # FerretDB (SQLite) was seen hanging for good under that, every request of the
        # database waiting for a connection of its pool
        async with self._reads:
            return await self.get(job_id)

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
            current = entry[1] if entry is not None else await self._read(job_id)
            new = compute(current)
            if new is None:
                if current is not None:
                    self._remember(job_id, current, partition, generation)
                return current, False
            opens = _is_open(new) and (current is None or not _is_open(current))
            closes = not _is_open(new) and (current is None or _is_open(current))
            if self.faults:
                self.faults.hit("progress.before_write", f"{job_id}@{new['seq']}")
            if not await self._group.write(_Write(job_id, current, new, opens, closes)):
                continue  # another writer got there first: read again, recompute
            self._remember(job_id, new, partition, generation)
            return new, True
        raise TransientError(f"too many concurrent changes to progress document {job_id}")

    async def _write_group(self, group: list[_Write]) -> None:
        """Stores a group: the `progress_open` entries of the documents that open, the
        documents (each settled: written, lost to another writer, or its error), then
        the entries of those that ended (an entry too many after a crash, never one too
        few)."""
        opening = [
            UpdateOne(
                {"_id": w.job_id}, {"$setOnInsert": {"kind": w.new.get("kind", "")}}, upsert=True
            )
            for w in group
            if w.opens
        ]
        if opening:
            # two writers of one job for a moment (a partition handed over, a replica
            # frozen across a takeover): both upsert, and the store may refuse the
            # second insert (E11000) instead of matching the entry the first one made
            _, failed = await bulk(self.open, opening, tolerate=(DUPLICATE_KEY,))
            if failed:
                raise next(iter(failed.values()))  # no document written without its entry
        # the lists' entries of the new states, before the states (an entry too many
        # after a crash, never one too few)
        entries = [lists.EntryChange.of(w.current, w.new) for w in group]
        await lists.insert_entries(self.lists, set().union(*(e.added for e in entries)))
        ops = [
            InsertOne(w.new)
            if w.current is None
            else ReplaceOne({"_id": w.job_id, "seq": w.current["seq"]}, w.new)
            for w in group
        ]
        matched, errors = await bulk(self.collection, ops)
        # settled only at the end: a caller goes on once its document is written and
        # its `progress_open` entry removed, as when each was its own round trip
        outcomes: dict[int, bool | Exception] = {}
        unsure: list[int] = []
        for index, write in enumerate(group):
            error = errors.get(index)
            if error is not None and error.code == DUPLICATE_KEY and write.current is None:
                outcomes[index] = False  # another writer inserted it first
            elif error is not None:
                outcomes[index] = error
            elif write.current is None:
                outcomes[index] = True
            else:
                unsure.append(index)
        if matched < len(unsure):
            # some guard found its `seq` gone: which, only the documents say
            stored = await gather_in_chunks([group[i].job_id for i in unsure], self._read)
            for index, doc in zip(unsure, stored, strict=True):
                token = group[index].new[WRITE_TOKEN]
                outcomes[index] = doc is not None and doc.get(WRITE_TOKEN) == token
        else:
            outcomes.update(dict.fromkeys(unsure, True))
        closing = [
            DeleteOne({"_id": w.job_id})
            for i, w in enumerate(group)
            if w.closes and outcomes[i] is True
        ]
        if closing:
            try:
                _, failed = await bulk(self.open, closing)
                if failed:
                    raise next(iter(failed.values()))
            except Exception as e:  # written: the reconciler prunes the entry left
                logger.warning("progress_open entries not removed", extra={"error": repr(e)})
        written = [e.removed for i, e in enumerate(entries) if outcomes[i] is True]
        await lists.delete_entries(self.lists, set().union(*written))
        for index, write in enumerate(group):
            outcome = outcomes[index]
            if isinstance(outcome, Exception):
                write.done.set_exception(outcome)
            else:
                write.done.set_result(outcome)


def _is_open(doc: Any) -> bool:
    return doc.get("status") not in TERMINAL
