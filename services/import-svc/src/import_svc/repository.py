"""import-svc's own database: jobs, their files, the invoices they produced.

The invoices' and supplier totals' queries are in `invoice_store.py` (a mixin), under
the same rules: lookups by `_id` only where FerretDB would scan, states moved by
compare-and-set.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from import_svc.invoice_store import KEEP_APPLIED_JOBS as KEEP_APPLIED_JOBS
from import_svc.invoice_store import TOTALS_FIELDS as TOTALS_FIELDS
from import_svc.invoice_store import InvoiceQueries
from import_svc.invoice_store import invoice_key as invoice_key
from jauge_shared.mongo import read_keyed

Doc = dict[str, Any]
STALE_TRANSITION = timedelta(seconds=60)
# a job's field: its file names are in `job_names` (ImportRepository.get_job)
NAMES_APART = "names_apart"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    CLEANING = "cleaning"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"  # asked to stop: its unread files go back (control.py)
    CANCELLED = "cancelled"


class FileState(StrEnum):
    """pending → done (result stored) → announced (its file.imported is confirmed).

    The job completes only when every file is announced, so import.finished is always
    published after the last file.imported.
    """

    PENDING = "pending"
    DONE = "done"
    ANNOUNCED = "announced"
    RETURNED = "returned"  # not read: a cancel put it back where it came from


class FileFate(StrEnum):
    """Who has a pending file of a cancelled import: the worker reading it, or the
    cancel putting it back. The first to record its fate wins (`take_file`)."""

    READ = "read"
    RETURNED = "returned"


class ImportRepository(InvoiceQueries):
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.db: AsyncDatabase[Doc] = client[database]
        self.jobs = self.db["jobs"]
        self.job_names = self.db["job_names"]
        self.files = self.db["files"]
        self.invoices = self.db["invoices"]
        self.supplier_totals = self.db["supplier_totals"]
        self.lock = self.db["lock"]
        self.transitions = self.db["job_transitions"]
        self.results = self.db["file_results"]
        self.source_files = self.db["source_files"]
        self.dropped = self.db["dropped_invoices"]

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

    async def get_job(self, job_id: str, *, names: bool = True) -> Doc | None:
        """The job; with `names=False`, without its file names, which the file worker
        reads twice per file and never needs.

        A job's names (a 2,000-file job's are 40 KB) are kept in `job_names`, beside
        the job, not in it: FerretDB decodes a whole document for any read of it, even
        a projection, and reading a job with its names cost 11 ms of the store's CPU
        against 0.9 ms without (docs/performance.md). Jobs stored with their names
        inside (before) still read as they are.
        """
        job = await self.jobs.find_one({"_id": job_id}, None if names else {"names": False})
        if job is None or not names:
            return job
        return await self._with_names(job)

    async def _with_names(self, job: Doc) -> Doc:
        if job.get(NAMES_APART) and "names" not in job:
            kept = await self.job_names.find_one({"_id": job["_id"]})
            if kept is not None:
                job["names"] = kept["names"]
        return job

    async def set_job_fields(self, job_id: str, **fields: Any) -> None:
        """Facts about a job that are not a transition (its files, its queue position
        announced, its commands dispatched, its error): written by their one owner.

        `names` go to `job_names` first; the job says where they are in the same write
        as the other fields (its total), so a reader sees both or neither.
        """
        if "names" in fields:
            names = fields.pop("names")
            await self.job_names.replace_one(
                {"_id": job_id}, {"_id": job_id, "names": names}, upsert=True
            )
            fields[NAMES_APART] = True
        await self.jobs.update_one({"_id": job_id}, {"$set": fields})

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
        return [await self._with_names(doc) async for doc in cursor]

    async def jobs_in(self, *states: JobState) -> list[Doc]:
        cursor = self.jobs.find({"state": {"$in": [s.value for s in states]}})
        return [await self._with_names(doc) async for doc in cursor]

    # files
    async def add_files(
        self, job_id: str, names: list[str], now: datetime, units: list[int] | None = None
    ) -> None:
        """`units`: gauge items per file (1, or its rows for a BBGR import)."""
        if not names:
            return
        docs = [
            {
                "_id": f"{job_id}/{name}",
                "job_id": job_id,
                "name": name,
                "index": i,
                "units": units[i] if units else 1,
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
        stored = await self.record_result(job_id, name, result)
        await self.mark_done(job_id, name, stored)
        return stored

    async def take_file(self, job_id: str, name: str, fate: FileFate) -> bool:
        """Whether the file is `fate`'s: recorded now, or earlier by the same fate (a
        redelivery); False when the other fate has it. A unique `_id` decides."""
        marker = {"_id": f"{job_id}/{name}:fate", "job_id": job_id, "fate": fate.value}
        try:
            await self.transitions.insert_one(marker)
        except DuplicateKeyError:
            existing = await self.transitions.find_one({"_id": marker["_id"]})
            return existing is not None and existing["fate"] == fate.value
        return True

    async def fate_of(self, job_id: str, name: str) -> FileFate | None:
        """Who took the file, if anyone has yet (`take_file`); records nothing."""
        marker = await self.transitions.find_one({"_id": f"{job_id}/{name}:fate"})
        return FileFate(marker["fate"]) if marker is not None else None

    async def mark_returned(self, job_id: str, name: str) -> None:
        key = f"{job_id}/{name}"
        await self._advance(key, FileState.PENDING, {"state": FileState.RETURNED.value})

    async def set_file_fields(self, job_id: str, name: str, **fields: Any) -> None:
        await self.files.update_one({"_id": f"{job_id}/{name}"}, {"$set": fields})

    async def record_result(self, job_id: str, name: str, result: Doc) -> Doc:
        """The file's result, recorded once: the first recorded wins and is returned
        (read back only when an earlier delivery recorded it first)."""
        key = f"{job_id}/{name}"
        try:
            await self.results.insert_one({"_id": key, **result})
        except DuplicateKeyError:
            stored = await self.results.find_one({"_id": key})
            assert stored is not None
            stored.pop("_id")
            return stored
        return dict(result)

    async def mark_done(self, job_id: str, name: str, stored: Doc) -> None:
        key = f"{job_id}/{name}"
        await self._advance(key, FileState.PENDING, {"state": FileState.DONE.value, **stored})

    async def mark_announced(self, job_id: str, name: str) -> None:
        key = f"{job_id}/{name}"
        await self._advance(key, FileState.DONE, {"state": FileState.ANNOUNCED.value})

    async def _advance(self, key: str, from_state: FileState, fields: Doc) -> None:
        """Move a file's state forward, never back: one update guarded by the state.

        One round trip where it was a read then a write (two of a file's ~18 commands,
        on a store that is the import's bottleneck: docs/performance.md). The project's
        FerretDB reads `{_id, state}` by the `_id` index and makes the update atomic, as
        MongoDB does (deploy/local/ferretdb-sqlite-id-pushdown.patch,
        ferretdb-atomic-writes.patch). Both writers of one file would write the same
        first-recorded result anyway.
        """
        await self.files.update_one({"_id": key, "state": from_state.value}, {"$set": fields})

    async def count_files(self, job: Doc, *states: FileState) -> int:
        """How many of the job's files are in one of `states` (all when none given)."""
        wanted = {s.value for s in states}
        files = await self.file_results(job)
        return sum(1 for f in files if not wanted or f["state"] in wanted)

    async def file_results(self, job: Doc, known: dict[str, Doc] | None = None) -> list[Doc]:
        """The job's files in index order, read by `_id` from the job's `names`.

        FerretDB scans the collection for a filter on `job_id`, and this runs several
        times per import, so the files are read by `_id`, a bounded number at a time.
        Only a job whose start failed before recording `names` (see the service's
        `_prepare`) falls back to the query; a name without its file is skipped.
        `known`: files already in hand, by name, final (announced), not read again.
        """
        names: list[str] | None = job.get("names")
        if names is None:
            cursor = self.files.find({"job_id": job["_id"]}).sort("index", ASCENDING)
            return [doc async for doc in cursor]
        known = known or {}
        missing = [name for name in names if name not in known]
        read = await read_keyed(self.files, f"{job['_id']}/", missing, of_prefix=len(names))
        return [d for d in (known.get(name) or read.get(name) for name in names) if d is not None]

    async def recorded_results(self, job: Doc) -> list[Doc]:
        """Every result recorded for the job's files, done or not (by `_id`)."""
        names: list[str] = job.get("names") or []
        read = await read_keyed(self.results, f"{job['_id']}/", names, of_prefix=len(names))
        return [read[name] for name in names if name in read]

    # BBGR rows
    async def save_bbgr_rows(self, kind: str, rows: list[Doc]) -> None:
        """Keyed by each kind's natural key: importing the same rows again updates them."""
        if rows:
            collection = self.db[f"bbgr_{kind.removeprefix('bbgr_')}"]
            await collection.bulk_write(
                [ReplaceOne({"_id": row["_id"]}, row, upsert=True) for row in rows], ordered=False
            )
