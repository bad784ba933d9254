"""The import lock: a lease in MongoDB, so one import runs at a time across replicas.

Each taking of the lock inserts the next *generation* document. The unique `_id` makes
that insert the compare-and-set: exactly one replica wins it, on MongoDB and on
FerretDB alike (whose conditional updates are not atomic, see docs/decisions.md).
The lease names the job that holds it and when it expires; whoever works on that job
renews it. If every worker dies, it expires and the next scheduler pass takes it over,
so it never deadlocks.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from jauge_shared.identity import connection_name

Doc = dict[str, Any]
KEEP_GENERATIONS = 1000


class ImportLock:
    def __init__(self, collection: AsyncCollection[Doc], lease_s: float) -> None:
        self.collection = collection
        self.lease = timedelta(seconds=lease_s)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("generation", DESCENDING)])

    async def current(self) -> Doc | None:
        return await self.collection.find_one({}, sort=[("generation", DESCENDING)])

    async def acquire(self, job_id: str, now: datetime) -> bool:
        """Take the lock for `job_id` if it is free, expired, or already the job's."""
        current = await self.current()
        if current is not None and not current["released"]:
            if current["holder"] == job_id:
                await self._extend(current, now)
                return True
            if current["expires_at"] > now:
                return False
        generation = current["generation"] + 1 if current else 1
        try:
            await self.collection.insert_one(
                {
                    "_id": f"lease-{generation:012d}",
                    "generation": generation,
                    "holder": job_id,
                    "since": now,
                    "expires_at": now + self.lease,
                    "released": False,
                    "took_over": current["holder"] if current and not current["released"] else None,
                    # which replica took it: for ops, and for the crash tests
                    "taken_by": connection_name("import-svc"),
                }
            )
        except DuplicateKeyError:
            return False  # another replica took this generation first
        await self.collection.delete_many({"generation": {"$lte": generation - KEEP_GENERATIONS}})
        return True

    async def renew(self, job_id: str, now: datetime) -> bool:
        current = await self.current()
        if current is None or current["released"] or current["holder"] != job_id:
            return False
        await self._extend(current, now)
        return True

    async def release(self, job_id: str) -> None:
        current = await self.current()
        if current is not None and current["holder"] == job_id:
            await self.collection.update_one({"_id": current["_id"]}, {"$set": {"released": True}})

    async def _extend(self, lease: Doc, now: datetime) -> None:
        await self.collection.update_one(
            {"_id": lease["_id"]}, {"$set": {"expires_at": now + self.lease}}
        )
