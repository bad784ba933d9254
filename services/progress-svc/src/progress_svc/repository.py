"""The `progress` collection: read, and compare-and-set on `seq`.

No transactions are needed: each change is a whole-document replace guarded by the
`seq` it was computed from, so concurrent replicas never lose each other's updates;
the loser reads again and recomputes.

The documents last written are kept in memory (`cached`), saving a read per write:
with a thousand jobs in flight the read was a third of the store's work. Safe because
progress-svc is the only writer and its queue has a single active consumer; the cache
is dropped whenever the consumer's channel changes (another replica may have been the
active one meanwhile), and on MongoDB a stale copy fails the `seq` guard and is read
again.

On FerretDB the guard is left out. Its SQLite backend looks documents up by `_id`
only; a filter with `seq` as well reads the whole collection (measured: 3 s with a
thousand jobs under load, against milliseconds), and its replace is not atomic
anyway, so the guard would cost everything and protect nothing. There, the single
writer is what keeps updates from being lost: progress-svc's queue has a single
active consumer (see docs/decisions.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.errors import TransientError
from progress_svc.aggregate import Document

COLLECTION = "progress"
MAX_CONFLICTS = 100
CACHED_DOCUMENTS = 2_000


class ProgressRepository:
    def __init__(
        self, client: AsyncMongoClient[Document], database: str, cached: int = CACHED_DOCUMENTS
    ) -> None:
        self.client = client
        self.collection: AsyncCollection[Document] = client[database][COLLECTION]
        self.guard_with_seq = True
        self._cache: OrderedDict[str, Document] = OrderedDict()
        self._cache_size = cached
        self._generation = 0

    def forget_all(self) -> None:
        """Read every document from the store again (another writer may have run).

        A change begun before this call (a write still in flight from the previous
        channel) is not kept either: its copy may already be stale.
        """
        self._cache.clear()
        self._generation += 1

    def _remember(self, job_id: str, doc: Document, generation: int) -> None:
        if generation != self._generation:
            return
        self._cache[job_id] = doc
        self._cache.move_to_end(job_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def detect_store(self) -> None:
        info = await self.client.admin.command("buildInfo")
        self.guard_with_seq = "ferretdbVersion" not in info

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("owner", ASCENDING), ("updated_at", DESCENDING)])
        await self.collection.create_index([("status", ASCENDING)])
        await self.collection.create_index([("kind", ASCENDING)])

    async def get(self, job_id: str) -> Document | None:
        return await self.collection.find_one({"_id": job_id})

    async def change(
        self, job_id: str, compute: Callable[[Document | None], Document | None]
    ) -> tuple[Document | None, bool]:
        """Apply `compute` atomically; returns (document now, whether it changed)."""
        generation = self._generation
        for _ in range(MAX_CONFLICTS):
            # popped: whatever happens below, the copy is only kept again once written
            current = self._cache.pop(job_id, None) or await self.get(job_id)
            new = compute(current)
            if new is None:
                if current is not None:
                    self._remember(job_id, current, generation)
                return current, False
            if current is None:
                try:
                    await self.collection.insert_one(new)
                except DuplicateKeyError:
                    continue
                self._remember(job_id, new, generation)
                return new, True
            guard = (
                {"_id": job_id, "seq": current["seq"]} if self.guard_with_seq else {"_id": job_id}
            )
            result = await self.collection.replace_one(guard, new)
            if result.matched_count == 1:
                self._remember(job_id, new, generation)
                return new, True
        raise TransientError(f"too many concurrent changes to progress document {job_id}")
