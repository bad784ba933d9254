"""The file worker: one `import.file` command in, the file read, its results stored,
the file moved to the archive or the errors folder, its gauge items announced.

Replicas share the files of the running import; each file is read once (its state
moves from pending to done to announced), and a redelivered command announces again
what is stored rather than reading the file twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from import_svc.context import ENDED, Workflow
from import_svc.ending import JobEnd
from import_svc.events import PRODUCER, file_result, item_events
from import_svc.processing import FileOutcome, process_file, row_key
from import_svc.repository import FileFate, FileState, JobState, invoice_key
from import_svc.totals import snapshot
from jauge_shared.contracts import ImportFile, ImportKind
from jauge_shared.identity import connection_name

logger = logging.getLogger("import_svc")
# a cancelled import's files being read are finished and counted (control.py)
MAY_READ = (JobState.RUNNING.value, JobState.CANCELLING.value)


class FileWorker:
    def __init__(
        self,
        flow: Workflow,
        end: JobEnd,
        on_settled: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.flow = flow
        self.end = end
        # a file announced: a cancelled import may now end (control.py)
        self.on_settled = on_settled
        self._test_gate = asyncio.Lock()
        self._renewed: tuple[str, datetime] | None = None  # job, when this replica renewed

    async def import_file(self, command: ImportFile) -> None:
        flow = self.flow
        job = await flow.repo.get_job(command.job_id, names=False)
        file = await flow.repo.get_file(command.job_id, command.item)
        if job is None or file is None:
            logger.warning("file of an unknown job", extra={"job_id": command.job_id})
            return
        if job["state"] in ENDED:
            # this file's handler may be the one that ended the job and died before
            # announcing the end: announce it again (a duplicate if it was). Only a file
            # announced can have ended it: the queued files of a cancelled import (a
            # 5,000-file one's thousands) are dropped without a word
            if file["state"] == FileState.ANNOUNCED.value:
                await self.end.announce_end(job, "redelivered")
            return
        if job["state"] not in MAY_READ or file["state"] == FileState.RETURNED.value:
            return  # a returned file is back where it came from (control.py)
        await self._renew(job["_id"])
        if file["state"] == FileState.PENDING.value:
            if job["state"] == JobState.CANCELLING.value and (
                await flow.repo.fate_of(job["_id"], command.item) != FileFate.READ
            ):
                # cancelled before a worker took it: the cancel puts it back (control.py).
                # Taking it here raced the cancel for every queued file of a big import,
                # and read most of them (a 5,000-file import went on for minutes)
                return
            if flow.file_delay_s:  # tests only (settings.test_file_delay_s): one at a time
                async with self._test_gate:
                    await asyncio.sleep(flow.file_delay_s)
            if not await flow.repo.take_file(job["_id"], command.item, FileFate.READ):
                return  # a cancel put it back where it came from, unread (control.py)
            path = flow.files.work(job["_id"]) / command.item
            outcome = await asyncio.to_thread(process_file, command.kind, path, flow.max_file_bytes)
            invoices = {
                invoice_key(i["supplier_id"], i["number"]): {
                    "_id": invoice_key(i["supplier_id"], i["number"]),
                    **i,
                    "job_id": job["_id"],
                    "source_file": command.item,
                }
                for i in outcome.invoices  # the last of a number twice in one file wins
            }
            sources = await self._sources(job["_id"], command.item, list(invoices.values()))
            # which replica did the work: shows in the report that replicas share files
            result = {
                **file_result(outcome),
                "worker": connection_name(PRODUCER),
                "finished_at": flow.clock(),
                **sources,
            }
            # recorded before the invoices are written: a file read again after a crash
            # keeps its first reading's `before`s, not its own writes (totals.py)
            stored = await flow.repo.record_result(job["_id"], command.item, result)
            await flow.repo.save_invoices(list(invoices.values()))
            await self._save_rows(command.kind, job["_id"], command.item, outcome)
            await flow.repo.mark_done(job["_id"], command.item, stored)
            flow.faults.hit("import.file_stored")
            file = {**file, **stored, "state": FileState.DONE.value}
            current = await flow.repo.get_job(command.job_id, names=False)
            if current is None or current["state"] not in MAY_READ:
                # the job ran out of time while this file was read: it went back to the
                # inbox with the others and was counted as not processed, so say nothing
                # (a cancel waits for this file instead: it is read, so it is counted)
                return
        moved = self._settle(command.kind, job["_id"], file)
        if moved is not None and not file["ok"]:  # where its copy is kept, for downloads
            await flow.repo.set_file_fields(job["_id"], command.item, rejected_as=moved.name)
        for event in item_events(job["_id"], file):
            await flow.emit(event)
        await flow.repo.mark_announced(job["_id"], command.item)
        await self.end.check_completion(job["_id"], announced=command.item, file=file)
        if self.on_settled is not None:
            await self.on_settled(job["_id"])

    async def _renew(self, job_id: str) -> None:
        """The lease, renewed at most ten times per lease: at 100 files a second, once
        per file was 100 scans of the lock's generations a second, for nothing (the
        scheduler's pass renews it too, every `scheduler_interval_s`)."""
        flow = self.flow
        now = flow.clock()
        last = self._renewed
        if last is not None and last[0] == job_id and now - last[1] < flow.lock.lease / 10:
            return
        await flow.lock.renew(job_id, now)
        self._renewed = (job_id, now)

    async def _sources(
        self, job_id: str, name: str, invoices: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Per supplier, the file's invoice keys, what the clean-up must do (orphans),
        and each invoice's change for the totals: as stored before, as written now."""
        repo = self.flow.repo
        before = await repo.stored_invoices([doc["_id"] for doc in invoices])
        by_supplier: dict[str, list[dict[str, Any]]] = {}
        for doc in invoices:
            by_supplier.setdefault(doc["supplier_id"], []).append(doc)
        sources = []
        for supplier, docs in sorted(by_supplier.items()):
            keys = [doc["_id"] for doc in docs]
            previous = await repo.previous_keys(job_id, name, supplier, keys)
            changes = [
                {
                    "key": doc["_id"],
                    "before": snapshot(before.get(doc["_id"])),
                    "after": snapshot(doc),
                }
                for doc in docs
            ]
            sources.append({"supplier": supplier, "keys": keys, **previous, "changes": changes})
        return {"sources": sources} if sources else {}

    async def _save_rows(
        self, kind: ImportKind, job_id: str, name: str, outcome: FileOutcome
    ) -> None:
        now = self.flow.clock()
        docs = [
            {
                "_id": row_key(kind, row.values),
                **row.values,
                "source_file": name,
                "line_no": row.line_no,
                "job_id": job_id,
                "imported_at": now,
            }
            for row in outcome.rows
            if row.error is None
        ]
        await self.flow.repo.save_bbgr_rows(kind.value, docs)

    def _settle(self, kind: ImportKind, job_id: str, file: dict[str, Any]) -> Path | None:
        """Move the file to where its result says, if an earlier try did not already."""
        files, clock = self.flow.files, self.flow.clock
        if file["ok"]:
            return files.archive_file(kind, job_id, file["name"], clock())
        return files.reject_file(kind, job_id, file["name"], file.get("error") or "")
