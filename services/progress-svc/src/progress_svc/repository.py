"""The `progress` collection: read, and compare-and-set on `seq`.

No transactions are needed: each change is a whole-document replace guarded by the
`seq` it was computed from, so concurrent replicas never lose each other's updates;
the loser reads again and recomputes.

On FerretDB the guard is left out. Its SQLite backend looks documents up by `_id`
only; a filter with `seq` as well reads the whole collection (measured: 3 s with a
thousand jobs under load, against milliseconds), and its replace is not atomic
anyway, so the guard would cost everything and protect nothing. There, the single
writer is what keeps updates from being lost: progress-svc's queue has a single
active consumer (see docs/decisions.md).
"""

from __future__ import annotations

from collections.abc import Callable

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.errors import TransientError
from progress_svc.aggregate import Document

COLLECTION = "progress"
MAX_CONFLICTS = 100


class ProgressRepository:
    def __init__(self, client: AsyncMongoClient[Document], database: str) -> None:
        self.client = client
        self.collection: AsyncCollection[Document] = client[database][COLLECTION]
        self.guard_with_seq = True

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
        for _ in range(MAX_CONFLICTS):
            current = await self.get(job_id)
            new = compute(current)
            if new is None:
                return current, False
            if current is None:
                try:
                    await self.collection.insert_one(new)
                except DuplicateKeyError:
                    continue
                return new, True
            guard = (
                {"_id": job_id, "seq": current["seq"]} if self.guard_with_seq else {"_id": job_id}
            )
            result = await self.collection.replace_one(guard, new)
            if result.matched_count == 1:
                return new, True
        raise TransientError(f"too many concurrent changes to progress document {job_id}")
