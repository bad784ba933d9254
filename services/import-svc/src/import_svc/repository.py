"""import-svc's own database: jobs, their files, the invoices they produced.

Over 300 lines on purpose: every query on import-svc's collections stays in this one
module, so the rules about them (lookups by `_id` only where FerretDB would scan, states
moved by compare-and-set) are checked in one place.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from jauge_shared.mongo import gather_in_chunks

Doc = dict[str, Any]
STALE_TRANSITION = timedelta(seconds=60)


def invoice_key(supplier_id: str, number: str) -> str:
    return f"{supplier_id}:{number}"


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
        self.source_files = self.db["source_files"]

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

    async def set_job_fields(self, job_id: str, **fields: Any) -> None:
        """Facts about a job that are not a transition (its files, its queue position
        announced, its commands dispatched, its error): written by their one owner."""
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
        return [doc async for doc in cursor]

    async def jobs_in(self, *states: JobState) -> list[Doc]:
        return [doc async for doc in self.jobs.find({"state": {"$in": [s.value for s in states]}})]

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
        key = f"{job_id}/{name}"
        with contextlib.suppress(DuplicateKeyError):  # an earlier delivery recorded it first
            await self.results.insert_one({"_id": key, **result})
        stored = await self.results.find_one({"_id": key})
        assert stored is not None
        stored.pop("_id")
        await self._advance(key, FileState.PENDING, {"state": FileState.DONE.value, **stored})
        return stored

    async def mark_announced(self, job_id: str, name: str) -> None:
        key = f"{job_id}/{name}"
        await self._advance(key, FileState.DONE, {"state": FileState.ANNOUNCED.value})

    async def _advance(self, key: str, from_state: FileState, fields: Doc) -> None:
        """Move a file's state forward, never back.

        Read then write, both by `_id` alone: FerretDB scans the collection for a filter
        with any other field, once per file. Not atomic, and neither would the filtered
        update be on FerretDB (docs/decisions.md); both writers of one file write the
        same first-recorded result, so the only race is a redelivery overlapping the
        original, which a broker redelivers only once the original's consumer is gone.
        """
        current = await self.files.find_one({"_id": key}, {"state": True})
        if current is not None and current["state"] == from_state.value:
            await self.files.update_one({"_id": key}, {"$set": fields})

    async def count_files(self, job: Doc, *states: FileState) -> int:
        """How many of the job's files are in one of `states` (all when none given)."""
        wanted = {s.value for s in states}
        files = await self.file_results(job)
        return sum(1 for f in files if not wanted or f["state"] in wanted)

    async def file_results(self, job: Doc) -> list[Doc]:
        """The job's files in index order, read by `_id` from the job's `names`.

        FerretDB scans the collection for a filter on `job_id`, and this runs several
        times per import, so the files are read by `_id`, a bounded number at a time.
        Only a job whose start failed before recording `names` (see the service's
        `_prepare`) falls back to the query; a name without its file is skipped.
        """
        names: list[str] | None = job.get("names")
        if names is None:
            cursor = self.files.find({"job_id": job["_id"]}).sort("index", ASCENDING)
            return [doc async for doc in cursor]
        found = await gather_in_chunks(names, lambda name: self.get_file(job["_id"], name))
        return [doc for doc in found if doc is not None]

    # invoices
    async def save_invoice(self, invoice: Doc) -> str:
        """Keyed by supplier and number: importing the same invoice again updates it."""
        key = invoice_key(invoice["supplier_id"], invoice["number"])
        await self.invoices.replace_one({"_id": key}, {"_id": key, **invoice}, upsert=True)
        return key

    async def search_invoices(
        self,
        *,
        supplier: str | None,
        number: str | None,
        job_id: str | None,
        job_ids: list[str] | None,
        limit: int,
        after: str | None,
    ) -> tuple[list[Doc], str | None]:
        """One page of the invoices matching, in key order (supplier, then number), and
        the key to start the next page after (None at the end): a range on `_id`, never
        a skip over the pages before, nor a count of them all."""
        query: Doc = {}
        if supplier:
            pattern = re.escape(supplier)
            query["$or"] = [
                {"supplier_id": supplier},
                {"supplier_name": {"$regex": pattern, "$options": "i"}},
            ]
        if number:
            query["number"] = number
        if job_ids is not None:
            allowed = [j for j in job_ids if job_id is None or j == job_id]
            query["job_id"] = {"$in": allowed}
        elif job_id:
            query["job_id"] = job_id
        if after is not None:
            query["_id"] = {"$gt": after}
        found = self.invoices.find(query).sort("_id", ASCENDING).limit(limit + 1)
        docs = [doc async for doc in found]
        next_after = str(docs[limit - 1]["_id"]) if len(docs) > limit else None
        page = [{k: v for k, v in doc.items() if k != "_id"} for doc in docs[:limit]]
        return page, next_after

    # what each supplier's file held when it was last imported, to find orphans
    async def previous_keys(self, job_id: str, name: str, supplier: str, keys: list[str]) -> Doc:
        """What the last import of `name` held for `supplier`.

        Returns `{orphans, update}`: the keys it held that this version no longer does,
        and whether the record must be rewritten at clean-up. A first import records
        itself at once (it can orphan nothing); a changed file is rewritten only at
        clean-up, after its orphans are gone, so a failed job leaves the old record.
        Every read and write is by `_id`: on FerretDB, a filter on another field scans.
        """
        record_id = f"{supplier}\x1f{name}"
        previous = await self.source_files.find_one({"_id": record_id})
        if previous is None:
            with contextlib.suppress(DuplicateKeyError):
                await self.source_files.insert_one(
                    {"_id": record_id, "keys": sorted(keys), "job_id": job_id}
                )
            return {"orphans": [], "update": False}
        if sorted(previous["keys"]) == sorted(keys):
            return {"orphans": [], "update": False}
        kept = set(keys)
        return {"orphans": [k for k in previous["keys"] if k not in kept], "update": True}

    async def drop_orphans(self, job_id: str, name: str, keys: list[str]) -> list[str]:
        """Delete the invoices a file no longer holds, unless this job stored them again
        from another file. Returns their suppliers."""
        suppliers = []
        for key in keys:
            doc = await self.invoices.find_one(
                {"_id": key}, {"job_id": True, "source_file": True, "supplier_id": True}
            )
            if doc is None or doc["job_id"] == job_id or doc["source_file"] != name:
                continue
            await self.invoices.delete_one({"_id": key})
            suppliers.append(doc["supplier_id"])
        return suppliers

    async def record_source(self, job_id: str, name: str, supplier: str, keys: list[str]) -> None:
        record_id = f"{supplier}\x1f{name}"
        await self.source_files.replace_one(
            {"_id": record_id},
            {"_id": record_id, "keys": sorted(keys), "job_id": job_id},
            upsert=True,
        )

    async def recompute_supplier_totals(self, suppliers: set[str], now: datetime) -> list[Doc]:
        """Counts and sums of these suppliers' documents, recomputed from scratch.

        One pass over the invoices (FerretDB scans for any filter but `_id`, so one scan
        for all suppliers rather than one each). Summed with Decimal (amounts are stored
        as strings, never floats) and written whole, so a replay gives the same result.
        """
        if not suppliers:
            return []
        zero = {
            "invoices": 0,
            "credit_notes": 0,
            "net": Decimal(0),
            "tax": Decimal(0),
            "gross": Decimal(0),
            "supplier_name": None,
        }
        totals: dict[str, Doc] = {s: dict(zero) for s in suppliers}
        projection = {
            "supplier_id": True,
            "supplier_name": True,
            "type": True,
            "net": True,
            "tax": True,
            "gross": True,
        }
        query = {"supplier_id": {"$in": sorted(suppliers)}}
        async for doc in self.invoices.find(query, projection):
            entry = totals[doc["supplier_id"]]
            credit = doc["type"] == "credit_note"
            entry["credit_notes" if credit else "invoices"] += 1
            sign = -1 if credit else 1  # credit notes carry positive amounts
            for field in ("net", "tax", "gross"):
                entry[field] += sign * Decimal(doc.get(field) or "0")
            entry["supplier_name"] = entry["supplier_name"] or doc.get("supplier_name")
        written = []
        for supplier, entry in sorted(totals.items()):
            if not entry["invoices"] and not entry["credit_notes"]:
                await self.supplier_totals.delete_one({"_id": supplier})
                continue
            document = {
                "_id": supplier,
                **entry,
                **{f: str(entry[f]) for f in ("net", "tax", "gross")},
                "updated_at": now,
            }
            await self.supplier_totals.replace_one({"_id": supplier}, document, upsert=True)
            written.append(document)
        return written

    # BBGR rows
    async def save_bbgr_rows(self, kind: str, rows: list[Doc]) -> None:
        """Keyed by each kind's natural key: importing the same rows again updates them."""
        if rows:
            collection = self.db[f"bbgr_{kind.removeprefix('bbgr_')}"]
            await collection.bulk_write(
                [ReplaceOne({"_id": row["_id"]}, row, upsert=True) for row in rows], ordered=False
            )
