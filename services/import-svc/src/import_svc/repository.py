"""import-svc's own database: jobs, their files, the invoices they produced."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]
STALE_TRANSITION = timedelta(seconds=60)


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CLEANING = "cleaning"
    COMPLETED = "completed"
    FAILED = "failed"


class FileState(StrEnum):
    """pending → done (result stored) → announced (its file.imported is confirmed).

    The job completes only when every file is announced, so import.finished is always
    published after the last file.imported.
    """

    PENDING = "pending"
    DONE = "done"
    ANNOUNCED = "announced"


class ImportRepository:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.db: AsyncDatabase[Doc] = client[database]
        self.jobs = self.db["jobs"]
        self.files = self.db["files"]
        self.invoices = self.db["invoices"]
        self.supplier_totals = self.db["supplier_totals"]
        self.lock = self.db["lock"]
        self.transitions = self.db["job_transitions"]
        self.results = self.db["file_results"]

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index([("state", ASCENDING), ("requested_at", ASCENDING)])
        await self.files.create_index([("job_id", ASCENDING), ("state", ASCENDING)])
        await self.invoices.create_index([("job_id", ASCENDING)])
        await self.invoices.create_index([("supplier_id", ASCENDING)])
        await self.invoices.create_index([("source_file", ASCENDING)])

    # jobs
    async def add_job(self, job: Doc) -> bool:
        """False when the job was already recorded (a redelivered request)."""
        try:
            await self.jobs.insert_one(job)
        except DuplicateKeyError:
            return False
        return True

    async def get_job(self, job_id: str) -> Doc | None:
        return await self.jobs.find_one({"_id": job_id})

    async def move_job(
        self, job_id: str, from_state: JobState, to_state: JobState, now: datetime, **fields: Any
    ) -> Doc | None:
        """Move a job from one state to the next; only one replica wins each transition.

        The winner is whoever inserts the transition's marker (a unique `_id`), since an
        update's filter is no compare-and-set on FerretDB. A winner that died before
        recording the new state is taken over once its marker is stale.
        """
        marker = {"_id": f"{job_id}:{to_state.value}", "job_id": job_id, "at": now}
        try:
            await self.transitions.insert_one(marker)
        except DuplicateKeyError:
            existing = await self.transitions.find_one({"_id": marker["_id"]})
            job = await self.get_job(job_id)
            stale = existing is None or now - existing["at"] > STALE_TRANSITION
            if job is None or job["state"] != from_state.value or not stale:
                return None
        job = await self.get_job(job_id)
        if job is None or job["state"] != from_state.value:
            return None
        await self.jobs.update_one({"_id": job_id}, {"$set": {"state": to_state.value, **fields}})
        return await self.get_job(job_id)

    async def queued_jobs(self) -> list[Doc]:
        cursor = self.jobs.find({"state": JobState.QUEUED.value}).sort("requested_at", ASCENDING)
        return [doc async for doc in cursor]

    async def jobs_in(self, *states: JobState) -> list[Doc]:
        return [doc async for doc in self.jobs.find({"state": {"$in": [s.value for s in states]}})]

    # files
    async def add_files(self, job_id: str, names: list[str], now: datetime) -> None:
        if not names:
            return
        docs = [
            {
                "_id": f"{job_id}/{name}",
                "job_id": job_id,
                "name": name,
                "index": i,
                "state": FileState.PENDING.value,
                "created_at": now,
            }
            for i, name in enumerate(names)
        ]
        try:
            await self.files.insert_many(docs, ordered=False)
        except Exception as e:
            if "duplicate key" not in str(e).lower() and "E11000" not in str(e):
                raise

    async def get_file(self, job_id: str, name: str) -> Doc | None:
        return await self.files.find_one({"_id": f"{job_id}/{name}"})

    async def finish_file(self, job_id: str, name: str, result: Doc) -> Doc:
        """Record a file's result once; the first recorded result wins and is returned."""
        key = f"{job_id}/{name}"
        with contextlib.suppress(DuplicateKeyError):  # an earlier delivery recorded it first
            await self.results.insert_one({"_id": key, **result})
        stored = await self.results.find_one({"_id": key})
        assert stored is not None
        stored.pop("_id")
        await self.files.update_one(
            {"_id": key, "state": FileState.PENDING.value},
            {"$set": {"state": FileState.DONE.value, **stored}},
        )
        return stored

    async def mark_announced(self, job_id: str, name: str) -> None:
        await self.files.update_one(
            {"_id": f"{job_id}/{name}", "state": FileState.DONE.value},
            {"$set": {"state": FileState.ANNOUNCED.value}},
        )

    async def count_files(self, job_id: str, *states: FileState) -> int:
        query: Doc = {"job_id": job_id}
        if states:
            query["state"] = {"$in": [s.value for s in states]}
        return await self.files.count_documents(query)

    async def file_results(self, job_id: str) -> list[Doc]:
        return [doc async for doc in self.files.find({"job_id": job_id}).sort("index", ASCENDING)]

    # invoices
    async def save_invoice(self, invoice: Doc) -> None:
        """Keyed by supplier and number: importing the same invoice again updates it."""
        key = f"{invoice['supplier_id']}:{invoice['number']}"
        await self.invoices.replace_one({"_id": key}, {"_id": key, **invoice}, upsert=True)
