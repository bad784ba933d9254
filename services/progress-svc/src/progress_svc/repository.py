"""The `progress` collection: read, and compare-and-set on `seq`.

No transactions are needed (FerretDB has none): each change is a whole-document
replace guarded by the `seq` it was computed from, so concurrent replicas never
lose each other's updates; the loser reads again and recomputes.
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
        self.collection: AsyncCollection[Document] = client[database][COLLECTION]

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
            result = await self.collection.replace_one({"_id": job_id, "seq": current["seq"]}, new)
            if result.matched_count == 1:
                return new, True
        raise TransientError(f"too many concurrent changes to progress document {job_id}")
