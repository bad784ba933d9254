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

from import_svc.totals import add_totals
from jauge_shared.mongo import gather_in_chunks

Doc = dict[str, Any]
STALE_TRANSITION = timedelta(seconds=60)
# what the supplier totals count of an invoice
TOTALS_FIELDS = {
    "supplier_id": True,
    "supplier_name": True,
    "type": True,
    "net": True,
    "tax": True,
    "gross": True,
}
# the last jobs whose change a supplier's totals hold: one import runs at a time, so a
# clean-up run again always finds its own job among them
KEEP_APPLIED_JOBS = 20


def invoice_key(supplier_id: str, number: str) -> str:
    return f"{supplier_id}:{number}"


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
        """`names=False` leaves out the file names (a 2,000-file job's are 40 KB), which
        the file worker reads twice per file and never needs."""
        return await self.jobs.find_one({"_id": job_id}, None if names else {"names": False})

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
        found = await gather_in_chunks(missing, lambda name: self.get_file(job["_id"], name))
        read = {doc["name"]: doc for doc in found if doc is not None}
        return [d for d in (known.get(name) or read.get(name) for name in names) if d is not None]

    async def recorded_results(self, job: Doc) -> list[Doc]:
        """Every result recorded for the job's files, done or not (by `_id`)."""
        names: list[str] = job.get("names") or []
        found = await gather_in_chunks(
            names, lambda name: self.results.find_one({"_id": f"{job['_id']}/{name}"})
        )
        return [doc for doc in found if doc is not None]

    # invoices
    async def save_invoice(self, invoice: Doc) -> str:
        """Keyed by supplier and number: importing the same invoice again updates it."""
        key = invoice_key(invoice["supplier_id"], invoice["number"])
        await self.invoices.replace_one({"_id": key}, {"_id": key, **invoice}, upsert=True)
        return key

    async def save_invoices(self, invoices: list[Doc]) -> None:
        """Several at once (one round trip), each keyed as `save_invoice` keys it."""
        if invoices:
            await self.invoices.bulk_write(
                [ReplaceOne({"_id": doc["_id"]}, doc, upsert=True) for doc in invoices],
                ordered=False,
            )

    async def stored_invoices(self, keys: list[str]) -> dict[str, Doc]:
        """The invoices stored under these keys now (by `_id`), with what the supplier
        totals count of them: their previous version, before a file replaces them."""
        found = await gather_in_chunks(
            keys,
            lambda key: self.invoices.find_one({"_id": key}, {**TOTALS_FIELDS, "job_id": True}),
        )
        return {doc["_id"]: doc for doc in found if doc is not None}

    async def search_invoices(
        self,
        *,
        supplier: str | None,
        number: str | None,
        job_id: str | None,
        job_ids: list[str] | None,
        limit: int,
        offset: int,
    ) -> tuple[int, list[Doc]]:
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
        total = await self.invoices.count_documents(query)
        cursor = (
            self.invoices.find(query, {"_id": False})
            .sort([("supplier_id", ASCENDING), ("number", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return total, [doc async for doc in cursor]

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

    async def drop_orphans(self, job_id: str, name: str, keys: list[str]) -> list[Doc]:
        """Delete the invoices a file no longer holds, unless this job stored them again
        from another file. Returns what the supplier totals counted of each dropped one.

        Each is recorded (first record wins) before it is deleted, so a clean-up run
        again after a crash still knows what it dropped, and takes it off the totals
        once: the totals' own marker says whether this job's change was applied.
        """
        dropped = []
        for key in keys:
            record_id = f"{job_id}\x1f{key}"
            doc = await self.invoices.find_one(
                {"_id": key}, {**TOTALS_FIELDS, "job_id": True, "source_file": True}
            )
            if doc is not None and doc["job_id"] != job_id and doc["source_file"] == name:
                kept = {k: doc.get(k) for k in TOTALS_FIELDS}
                with contextlib.suppress(DuplicateKeyError):
                    await self.dropped.insert_one({"_id": record_id, "job_id": job_id, **kept})
                await self.invoices.delete_one({"_id": key})
            record = await self.dropped.find_one({"_id": record_id})
            if record is not None:
                dropped.append({k: record.get(k) for k in TOTALS_FIELDS})
        return dropped

    async def record_source(self, job_id: str, name: str, supplier: str, keys: list[str]) -> None:
        record_id = f"{supplier}\x1f{name}"
        await self.source_files.replace_one(
            {"_id": record_id},
            {"_id": record_id, "keys": sorted(keys), "job_id": job_id},
            upsert=True,
        )

    async def apply_supplier_deltas(
        self, job_id: str, deltas: dict[str, Doc], now: datetime
    ) -> list[Doc]:
        """Add one job's change to each supplier's totals, once (docs/imports.md).

        The job's id goes into the totals document in the same write as the new figures,
        so a clean-up run again (a crash, a replica taking over) finds it there and adds
        nothing. Read then write by `_id`: one import runs at a time, and its clean-up
        once at a time (`JobEnd._finishing`, the `cleaning` transition's marker).
        """
        written = []
        for supplier, delta in sorted(deltas.items()):
            current = await self.supplier_totals.find_one({"_id": supplier})
            applied = (current or {}).get("applied_jobs", [])
            if job_id in applied:
                continue
            document = {
                "_id": supplier,
                **add_totals(current, delta),
                "updated_at": now,
                "applied_jobs": [*applied, job_id][-KEEP_APPLIED_JOBS:],
            }
            await self.supplier_totals.replace_one({"_id": supplier}, document, upsert=True)
            written.append(document)
        return written

    async def recompute_supplier_totals(
        self, suppliers: set[str], now: datetime, job_id: str | None = None
    ) -> list[Doc]:
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
            current = await self.supplier_totals.find_one({"_id": supplier}, {"applied_jobs": True})
            applied = (current or {}).get("applied_jobs", [])
            if job_id is not None and job_id not in applied:
                applied = [*applied, job_id][-KEEP_APPLIED_JOBS:]
            document = {
                "_id": supplier,
                **entry,
                **{f: str(entry[f]) for f in ("net", "tax", "gross")},
                "updated_at": now,
                "applied_jobs": applied,
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
