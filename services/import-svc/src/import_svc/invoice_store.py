"""import-svc's invoices and supplier totals: the queries on them, apart from the jobs'.

A mixin of `ImportRepository` (one repository for the service's callers): the rules are
the same (lookups by `_id` only where FerretDB would scan; totals by deltas, once per
job, totals.py).
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from import_svc.totals import add_totals
from jauge_shared.mongo import gather_in_chunks, upsert_one

Doc = dict[str, Any]

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


# invoices looked at for one page at most, and read at once
INVOICES_EXAMINED = 5_000
INVOICE_BATCH = 500


def _public(docs: list[Doc]) -> list[Doc]:
    return [{k: v for k, v in doc.items() if k != "_id"} for doc in docs]


def invoice_key(supplier_id: str, number: str) -> str:
    return f"{supplier_id}:{number}"


class InvoiceQueries:
    invoices: AsyncCollection[Doc]
    supplier_totals: AsyncCollection[Doc]
    source_files: AsyncCollection[Doc]
    dropped: AsyncCollection[Doc]
    results: AsyncCollection[Doc]

    # invoices
    async def save_invoice(self, invoice: Doc) -> str:
        """Keyed by supplier and number: importing the same invoice again updates it."""
        key = invoice_key(invoice["supplier_id"], invoice["number"])
        await upsert_one(self.invoices, {"_id": key}, {"_id": key, **invoice}, replace=True)
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
        after: str | None,
    ) -> tuple[list[Doc], str | None]:
        """One page of the invoices matching, in key order (supplier, then number), and
        the key to start the next page after (None at the end).

        Read as a range of `_id` only, which FerretDB answers from its index, limit
        included (the project's build); the filters are applied here. A page that finds
        few (an agent's few imports in a big history, a rare name) ends after
        `INVOICES_EXAMINED` invoices with the key to go on from: a page costs a bounded
        read, never the whole history after the cursor."""
        allowed = None
        if job_ids is not None:
            allowed = {j for j in job_ids if job_id is None or j == job_id}
            if not allowed:
                return [], None
        elif job_id:
            allowed = {job_id}
        pattern = re.compile(re.escape(supplier), re.IGNORECASE) if supplier else None

        def wanted(doc: Doc) -> bool:
            by_id = doc.get("supplier_id") == supplier
            by_name = pattern is not None and pattern.search(str(doc.get("supplier_name") or ""))
            if pattern is not None and not (by_id or by_name):
                return False
            if number and doc.get("number") != number:
                return False
            return allowed is None or doc.get("job_id") in allowed

        shown: list[Doc] = []
        examined, last = 0, after
        while examined < INVOICES_EXAMINED:
            # a lower bound only: every key is above "" (an upper bound would have to be
            # a string above every key, which no text is)
            bound = {"$gt": last} if last is not None else {"$gte": ""}
            batch_size = min(INVOICE_BATCH, INVOICES_EXAMINED - examined)
            found = self.invoices.find({"_id": bound}).sort("_id", ASCENDING).limit(batch_size)
            docs = [doc async for doc in found]
            for doc in docs:
                examined += 1
                if wanted(doc):
                    if len(shown) == limit:
                        return _public(shown), last
                    shown.append(doc)
                last = doc["_id"]
            if len(docs) < batch_size:
                return _public(shown), None
        return _public(shown), last  # examined enough: the page ends early, with a cursor

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
        await upsert_one(
            self.source_files,
            {"_id": record_id},
            {"_id": record_id, "keys": sorted(keys), "job_id": job_id},
            replace=True,
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
